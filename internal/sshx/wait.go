package sshx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/clock-app/clock/internal/progress"
)

// retryInterval is the pause between two attempts while the host is not up yet.
const retryInterval = time.Second

// progressEvery spaces out the "still waiting" lines.
const progressEvery = 10 * time.Second

// Wait says what WaitForSSH waits for and what it may trust.
type Wait struct {
	Addr       string // host or host:port; port 22 when none is given
	User       string
	Signer     ssh.Signer
	KnownHosts string // path of the known_hosts file the key is checked against or pinned in

	// JustCreated says the machine was created by this run (a fresh disk): it has new host
	// keys, so whatever is pinned for its address belongs to an earlier machine.
	JustCreated bool
	// Booting says the machine is starting: a refused or unreachable address means "not
	// up yet" and is retried. A host that should already run gets one try at those.
	Booting bool
	// ConsoleKeys, when set, returns the host keys the machine printed on its serial
	// console (ConsoleHostKeys): a channel from the hypervisor, not the network, so it is
	// trusted over anything pinned. Nil or empty: the machine prints none (a classic image,
	// a remote host).
	ConsoleKeys func() []ssh.PublicKey
	// Progress, when set, gets a line about every ten seconds with the elapsed time and
	// the last reason, and one when SSH answers.
	Progress progress.Func
}

// WaitForSSH retries TCP connect, SSH handshake and public key login until one succeeds or
// ctx ends, and decides about the host key it is shown with DecideHostKey: an address with
// no pinned key, or a machine just created, gets the key pinned; otherwise the pinned key
// must match, and a mismatch fails at once with ErrHostKeyChanged. A server that answers
// but refuses the deploy key fails at once with ErrAuthRejected. When nothing answered in
// time the error is a *NotAnsweringError saying why (refused, silent, ...), for the caller
// to add the hint that fits its path.
//
// Readiness is this login, not a DHCP lease: dnsmasq hands an old lease back for a re-used
// MAC before the new VM has even booted.
func WaitForSSH(ctx context.Context, w Wait) error {
	if w.Signer == nil {
		return errors.New("sshx: WaitForSSH needs a private key")
	}
	say := w.Progress.Printf
	addr := withPort(w.Addr)
	start := time.Now()
	lastReport := start
	var prevErr error // the last attempt that ctx did not cut short says more than the cut one
	for attempt := 1; ; attempt++ {
		key, action, err := tryLogin(ctx, addr, w)
		if err == nil {
			how := "matches the pinned key"
			if action == HostKeyPin {
				if err := PinHostKey(w.KnownHosts, addr, key); err != nil {
					return err
				}
				how = "pinned in " + w.KnownHosts
			}
			say("SSH answered on %s after %.0fs (%s %s %s)",
				addr, time.Since(start).Seconds(), key.Type(), ssh.FingerprintSHA256(key), how)
			return nil
		}
		kind := Classify(err)
		switch {
		case errors.Is(err, ErrAuthRejected), errors.Is(err, ErrHostKeyChanged):
			return err
		case !w.Booting && (kind == KindRefused || kind == KindUnreachable || kind == KindNoSuchHost):
			return &NotAnsweringError{Addr: addr, Kind: kind, Err: err, Waited: time.Since(start), Attempts: attempt}
		case ctx.Err() != nil:
			if prevErr != nil {
				err, kind = prevErr, Classify(prevErr)
			}
			return &NotAnsweringError{Addr: addr, Kind: kind, Err: err, Waited: time.Since(start), Attempts: attempt}
		}
		prevErr = err
		if time.Since(lastReport) >= progressEvery {
			lastReport = time.Now()
			say("waiting for SSH on %s (%.0fs): %v", addr, time.Since(start).Seconds(), err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(retryInterval):
		}
	}
}

// tryLogin makes one connect + handshake + login attempt. The host key is decided during
// the handshake, before the deploy key signs anything for that server.
func tryLogin(ctx context.Context, addr string, w Wait) (ssh.PublicKey, HostKeyAction, error) {
	var (
		seen     ssh.PublicKey
		action   HostKeyAction
		checkErr error
	)
	decide := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		seen = key
		facts, err := hostKeyFacts(w, hostname, remote, key)
		if err != nil {
			checkErr = err
			return err
		}
		action, checkErr = DecideHostKey(facts, key)
		if checkErr != nil {
			checkErr = fmt.Errorf("%s: %w", hostname, checkErr)
		}
		return checkErr
	}
	client, err := dial(ctx, addr, clientConfig(w.User, w.Signer, decide))
	if err != nil {
		if checkErr != nil {
			return nil, 0, checkErr
		}
		if isAuthRejected(err) && seen != nil {
			return nil, 0, authRejected(w.User, addr)
		}
		return nil, 0, err
	}
	client.Close()
	return seen, action, nil
}

// hostKeyFacts gathers what DecideHostKey needs for one key shown by hostname.
func hostKeyFacts(w Wait, hostname string, remote net.Addr, key ssh.PublicKey) (HostKeyFacts, error) {
	f := HostKeyFacts{JustCreated: w.JustCreated}
	if w.ConsoleKeys != nil {
		f.Console = w.ConsoleKeys()
	}
	check, err := knownhosts.New(w.KnownHosts)
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return f, fmt.Errorf("read known_hosts %s: %w", w.KnownHosts, err)
	}
	err = check(hostname, remote, key)
	var keyErr *knownhosts.KeyError
	switch {
	case err == nil:
		f.Pinned = []ssh.PublicKey{key}
	case errors.As(err, &keyErr):
		for _, k := range keyErr.Want {
			f.Pinned = append(f.Pinned, k.Key)
		}
	default:
		return f, err
	}
	return f, nil
}

// HostKeyAction is what to do with the host key a machine shows.
type HostKeyAction int

// The actions DecideHostKey chooses between (a refusal is its error).
const (
	HostKeyAccept HostKeyAction = iota // it is the pinned key: nothing to write
	HostKeyPin                         // record it as the address's only key
)

// HostKeyFacts is what a host key decision rests on.
type HostKeyFacts struct {
	JustCreated bool            // the machine was created by this run
	Pinned      []ssh.PublicKey // the keys known_hosts holds for the address
	Console     []ssh.PublicKey // the keys the machine printed on its serial console
}

// ErrNotConsoleKey means the key shown over the network is not one the machine printed
// on its console: another machine answers at that address (an old lease, say).
var ErrNotConsoleKey = errors.New("host key is not the one on the VM's serial console")

// DecideHostKey is the host key policy. Keys printed on the machine's console decide when
// there are any: one of them is pinned (or accepted when already pinned), any other key
// is refused with ErrNotConsoleKey. Without them it is trust on first use, and only then:
// a machine just created or an address with no pinned key gets the key pinned; otherwise
// the key must be a pinned one, or the error is ErrHostKeyChanged.
func DecideHostKey(f HostKeyFacts, shown ssh.PublicKey) (HostKeyAction, error) {
	pinnedAlone := len(f.Pinned) == 1 && sameKey(f.Pinned[0], shown)
	if len(f.Console) > 0 {
		if !containsKey(f.Console, shown) {
			return 0, fmt.Errorf("%w: it shows %s %s", ErrNotConsoleKey, shown.Type(), ssh.FingerprintSHA256(shown))
		}
		if pinnedAlone {
			return HostKeyAccept, nil
		}
		return HostKeyPin, nil
	}
	switch {
	case pinnedAlone:
		return HostKeyAccept, nil
	case f.JustCreated, len(f.Pinned) == 0:
		return HostKeyPin, nil
	case containsKey(f.Pinned, shown):
		return HostKeyAccept, nil
	}
	return 0, fmt.Errorf("%w: it now shows %s %s, not the pinned key: if the VM was re-created, vm:destroy and vm:up re-pin it; a target host's line is removed from known_hosts by hand once you have checked it; otherwise someone may be intercepting the connection",
		ErrHostKeyChanged, shown.Type(), ssh.FingerprintSHA256(shown))
}

func sameKey(a, b ssh.PublicKey) bool { return bytes.Equal(a.Marshal(), b.Marshal()) }

func containsKey(keys []ssh.PublicKey, k ssh.PublicKey) bool {
	for _, c := range keys {
		if sameKey(c, k) {
			return true
		}
	}
	return false
}

// ErrorKind is why a connection attempt failed, as far as the caller's hint is concerned.
type ErrorKind int

// The kinds Classify tells apart.
const (
	KindOther         ErrorKind = iota // the SSH handshake failed some other way
	KindRefused                        // nothing listens on the port (TCP RST)
	KindTimeout                        // no answer at all: a firewall dropping, or a host still booting
	KindUnreachable                    // no route to the host or its network
	KindNoSuchHost                     // the name does not resolve
	KindClosed                         // the port accepted, then closed before SSH spoke (sshd starting, or not SSH)
	KindNotConsoleKey                  // another machine answers (ErrNotConsoleKey)
)

func (k ErrorKind) String() string {
	return [...]string{"failed", "connection refused", "timed out", "unreachable", "no such host", "closed before the SSH banner", "another machine answers"}[k]
}

// Classify maps a connection error to its kind.
func Classify(err error) ErrorKind {
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case err == nil:
		return KindOther
	case errors.Is(err, ErrNotConsoleKey):
		return KindNotConsoleKey
	case errors.Is(err, syscall.ECONNREFUSED):
		return KindRefused
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return KindUnreachable
	case errors.As(err, &dnsErr):
		return KindNoSuchHost
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		return KindTimeout
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF):
		return KindClosed
	}
	return KindOther
}

// NotAnsweringError is WaitForSSH giving up on a machine that did not let it log in.
type NotAnsweringError struct {
	Addr     string
	Kind     ErrorKind
	Err      error // the last attempt's error
	Waited   time.Duration
	Attempts int
}

func (e *NotAnsweringError) Error() string {
	if e.Attempts <= 1 {
		return fmt.Sprintf("SSH on %s did not answer (%s: %v)", e.Addr, e.Kind, e.Err)
	}
	return fmt.Sprintf("SSH on %s did not answer within %.0fs (%d attempts; last: %s: %v)",
		e.Addr, e.Waited.Seconds(), e.Attempts, e.Kind, e.Err)
}

func (e *NotAnsweringError) Unwrap() error { return e.Err }
