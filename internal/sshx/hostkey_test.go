package sshx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func TestDecideHostKey(t *testing.T) {
	shown := newHostSigner(t).PublicKey()
	other := newHostSigner(t).PublicKey()
	keys := func(k ...ssh.PublicKey) []ssh.PublicKey { return k }
	tests := []struct {
		name    string
		facts   HostKeyFacts
		want    HostKeyAction
		wantErr error
	}{
		{"just created, nothing pinned", HostKeyFacts{JustCreated: true}, HostKeyPin, nil},
		{"just created, an old VM's key pinned", HostKeyFacts{JustCreated: true, Pinned: keys(other)}, HostKeyPin, nil},
		{"just created, its key already pinned", HostKeyFacts{JustCreated: true, Pinned: keys(shown)}, HostKeyAccept, nil},
		{"running, nothing pinned", HostKeyFacts{}, HostKeyPin, nil},
		{"running, pinned and matches", HostKeyFacts{Pinned: keys(shown)}, HostKeyAccept, nil},
		{"running, one of two pinned keys", HostKeyFacts{Pinned: keys(other, shown)}, HostKeyAccept, nil},
		{"running, pinned and differs", HostKeyFacts{Pinned: keys(other)}, 0, ErrHostKeyChanged},
		{"console shows it, nothing pinned", HostKeyFacts{Console: keys(shown)}, HostKeyPin, nil},
		{"console shows it, pinned", HostKeyFacts{Console: keys(shown), Pinned: keys(shown)}, HostKeyAccept, nil},
		{"console shows it, another pinned", HostKeyFacts{Console: keys(shown), Pinned: keys(other)}, HostKeyPin, nil},
		{"console shows another, just created", HostKeyFacts{JustCreated: true, Console: keys(other)}, 0, ErrNotConsoleKey},
		{"console shows another, it is pinned", HostKeyFacts{Console: keys(other), Pinned: keys(shown)}, 0, ErrNotConsoleKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecideHostKey(tt.facts, shown)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("DecideHostKey = %v, %v; want error %v", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("DecideHostKey = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestConsoleHostKeys(t *testing.T) {
	a, b := newHostSigner(t).PublicKey(), newHostSigner(t).PublicKey()
	line := func(k ssh.PublicKey) string { return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) }
	log := "SeaBIOS\r\n[    0.000000] Linux version 6.1.0\r\n" +
		"\x1b[0;32m  OK  \x1b[0m] Started ssh.service\r" + ConsoleHostKeyMarker + line(a) + " root@debian\r\n" +
		ConsoleHostKeyMarker + "not a key\r\n" +
		ConsoleHostKeyMarker + line(b) + "\r\n" +
		ConsoleHostKeyMarker + line(a) + " root@debian\r\n" + // a reboot prints it again
		"debian login: "
	got := ConsoleHostKeys([]byte(log))
	if len(got) != 2 || !sameKey(got[0], a) || !sameKey(got[1], b) {
		t.Errorf("ConsoleHostKeys = %d keys, want a then b", len(got))
	}
	if got := ConsoleHostKeys([]byte("SeaBIOS\r\nDebian GNU/Linux 10 debian ttyS0\r\n")); len(got) != 0 {
		t.Errorf("ConsoleHostKeys(classic image) = %d keys, want none", len(got))
	}
}

// TestWaitForSSHChecksARunningMachine is vm:up against a VM that was already running: the
// pinned key must match, and a different key is refused without re-pinning.
func TestWaitForSSHChecksARunningMachine(t *testing.T) {
	ctx := testContext(t)
	client := newClientKey(t)
	srv := startServer(t, "127.0.0.1:0", newHostSigner(t), client.PublicKey())
	known := filepath.Join(t.TempDir(), "known_hosts")
	pinned := newHostSigner(t).PublicKey()
	if err := PinHostKey(known, srv.addr, pinned); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(known)
	err := WaitForSSH(ctx, Wait{Addr: srv.addr, User: "root", Signer: client, KnownHosts: known, Booting: true})
	if !errors.Is(err, ErrHostKeyChanged) {
		t.Fatalf("WaitForSSH(running VM, other key pinned) = %v, want ErrHostKeyChanged", err)
	}
	if after, _ := os.ReadFile(known); string(after) != string(before) {
		t.Errorf("known_hosts changed after a refused key:\n%s", after)
	}

	// The same machine with its own key pinned is accepted as it is.
	if err := PinHostKey(known, srv.addr, srv.hostKey.PublicKey()); err != nil {
		t.Fatal(err)
	}
	if err := WaitForSSH(ctx, Wait{Addr: srv.addr, User: "root", Signer: client, KnownHosts: known, Booting: true}); err != nil {
		t.Errorf("WaitForSSH(running VM, its key pinned) = %v", err)
	}
}

// TestWaitForSSHTrustsTheConsole is a just-created VM whose console printed its key: an
// impostor at the address is not pinned, the real key is.
func TestWaitForSSHTrustsTheConsole(t *testing.T) {
	ctx := testContext(t)
	client := newClientKey(t)
	srv := startServer(t, "127.0.0.1:0", newHostSigner(t), client.PublicKey())
	known := filepath.Join(t.TempDir(), "known_hosts")
	console := []ssh.PublicKey{newHostSigner(t).PublicKey()}
	w := Wait{Addr: srv.addr, User: "root", Signer: client, KnownHosts: known, JustCreated: true, Booting: true,
		ConsoleKeys: func() []ssh.PublicKey { return console }}
	short, cancel := context.WithTimeout(ctx, 2500*time.Millisecond)
	defer cancel()
	err := WaitForSSH(short, w)
	var na *NotAnsweringError
	if !errors.As(err, &na) || na.Kind != KindNotConsoleKey {
		t.Fatalf("WaitForSSH(key not on the console) = %v, want a NotAnsweringError of kind %v", err, KindNotConsoleKey)
	}
	if _, err := os.Stat(known); err == nil {
		t.Error("an impostor's key was pinned")
	}
	if n := srv.execCount(); n != 0 {
		t.Errorf("%d commands ran on the impostor", n)
	}

	console = []ssh.PublicKey{srv.hostKey.PublicKey()}
	if err := WaitForSSH(ctx, w); err != nil {
		t.Fatalf("WaitForSSH(key on the console) = %v", err)
	}
	if got, _ := os.ReadFile(known); string(got) != HostKeyLine(srv.addr, srv.hostKey.PublicKey())+"\n" {
		t.Errorf("known_hosts = %q, want the console's key", got)
	}
}

func dialErr(errno syscall.Errno) error {
	return &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: errno}}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		want ErrorKind
	}{
		{errors.New("ssh: handshake failed: ssh: no common algorithm"), KindOther},
		{fmt.Errorf("h: %w", ErrNotConsoleKey), KindNotConsoleKey},
		{dialErr(syscall.ECONNREFUSED), KindRefused},
		{dialErr(syscall.EHOSTUNREACH), KindUnreachable},
		{dialErr(syscall.ENETUNREACH), KindUnreachable},
		{dialErr(syscall.ECONNRESET), KindClosed},
		{&net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "nohost.invalid", IsNotFound: true}}, KindNoSuchHost},
		{&net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}, KindTimeout},
		{context.DeadlineExceeded, KindTimeout},
		{fmt.Errorf("ssh: handshake failed: %w", io.EOF), KindClosed},
	}
	for _, tt := range tests {
		if got := Classify(tt.err); got != tt.want {
			t.Errorf("Classify(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
