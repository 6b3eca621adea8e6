package sshx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Target says where and as whom to log in, and which known_hosts file vouches for the host.
type Target struct {
	Addr       string // host or host:port; port 22 when none is given
	User       string
	Signer     ssh.Signer
	KnownHosts string // path of the known_hosts file
}

// NeedsSudo reports whether commands that need root run through sudo on t: the deploy logs
// in as root or as a user with passwordless sudo.
func (t Target) NeedsSudo() bool { return t.User != "root" }

// hostPort returns Addr with the default port filled in.
func (t Target) hostPort() string { return withPort(t.Addr) }

func withPort(addr string) string {
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr
	}
	return net.JoinHostPort(strings.Trim(addr, "[]"), "22")
}

// handshakeTimeout bounds one TCP connect plus SSH handshake when the context allows more.
const handshakeTimeout = 15 * time.Second

// Dial opens an SSH connection to t, accepting only the host key pinned in t.KnownHosts
// (never any key: a VM's host key is pinned by WaitForSSH). The connection is closed when
// ctx ends before the handshake does.
func Dial(ctx context.Context, t Target) (*ssh.Client, error) {
	if t.Signer == nil {
		return nil, errors.New("sshx: no private key for " + t.User + "@" + t.Addr)
	}
	check, err := HostKeyCallback(t.KnownHosts)
	if err != nil {
		return nil, err
	}
	client, err := dial(ctx, t.hostPort(), clientConfig(t.User, t.Signer, check))
	if err != nil {
		return nil, explain(err, t.User, t.hostPort())
	}
	return client, nil
}

func clientConfig(user string, signer ssh.Signer, check ssh.HostKeyCallback) *ssh.ClientConfig {
	return &ssh.ClientConfig{
		User:            user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: check,
		Timeout:         handshakeTimeout,
	}
}

// dial connects and handshakes within ctx (and at most handshakeTimeout).
func dial(ctx context.Context, addr string, cfg *ssh.ClientConfig) (*ssh.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	}
	// Close the socket if ctx ends mid-handshake; the deadline alone misses a cancel.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if !stop() || err != nil {
		conn.Close()
		if err == nil {
			err = ctx.Err()
		}
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
}

// ErrAuthRejected means the server answered but refused the key: retrying cannot help.
var ErrAuthRejected = errors.New("SSH authentication rejected")

// isAuthRejected reports whether a handshake error is the server refusing every key. The
// ssh package has no typed error for it, only this message.
func isAuthRejected(err error) bool {
	return err != nil && strings.Contains(err.Error(), "unable to authenticate")
}

// explain turns a dial error into one that says what to do.
func explain(err error, user, addr string) error {
	switch {
	case errors.Is(err, ErrHostKeyChanged), errors.Is(err, ErrUnknownHost):
		return err
	case isAuthRejected(err):
		return authRejected(user, addr)
	default:
		return fmt.Errorf("ssh %s@%s: %w", user, addr, err)
	}
}

func authRejected(user, addr string) error {
	return fmt.Errorf("%w: %s does not accept this key for user %s: the key is not authorized for %s on that host (check the key setting, e.g. CLOCK_VM_KEY, or rebuild the image with this key)",
		ErrAuthRejected, addr, user, user)
}

// Result is the output of a remote command.
type Result struct {
	Stdout, Stderr []byte
	ExitStatus     int
}

// Run runs cmd on t over a host-key-verified connection and returns its output. A non-zero
// exit is an error that quotes the end of stderr; the Result is filled either way.
func Run(ctx context.Context, t Target, cmd string) (Result, error) {
	client, err := Dial(ctx, t)
	if err != nil {
		return Result{}, err
	}
	defer client.Close()
	return RunOn(ctx, client, cmd)
}

// RunOn runs cmd in a new session of an open client (see Run).
func RunOn(ctx context.Context, client *ssh.Client, cmd string) (Result, error) {
	sess, err := client.NewSession()
	if err != nil {
		return Result{}, fmt.Errorf("open SSH session: %w", err)
	}
	defer sess.Close()
	var stdout, stderr bytes.Buffer
	sess.Stdout = &stdout
	sess.Stderr = &stderr
	stop := context.AfterFunc(ctx, func() { client.Close() })
	defer stop()
	err = sess.Run(cmd)
	res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	var exit *ssh.ExitError
	switch {
	case errors.As(err, &exit):
		res.ExitStatus = exit.ExitStatus()
		return res, fmt.Errorf("remote command %q exited with status %d: %s", cmd, res.ExitStatus, lastLines(stderr.String(), 5))
	case ctx.Err() != nil:
		return res, fmt.Errorf("remote command %q: %w", cmd, ctx.Err())
	case err != nil:
		return res, fmt.Errorf("remote command %q: %w", cmd, err)
	}
	return res, nil
}

// Stream runs cmd on an open client with stdin as its input (nil: none), copying its
// output to stdout and stderr as it comes: for remote work that reports progress.
func Stream(ctx context.Context, client *ssh.Client, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	sess, err := client.NewSession()
	if err != nil {
		return fmt.Errorf("open SSH session: %w", err)
	}
	defer sess.Close()
	var tail bytes.Buffer
	sess.Stdin, sess.Stdout, sess.Stderr = stdin, stdout, io.MultiWriter(stderr, &tailWriter{&tail})
	stop := context.AfterFunc(ctx, func() { client.Close() })
	defer stop()
	err = sess.Run(cmd)
	var exit *ssh.ExitError
	switch {
	case errors.As(err, &exit):
		return &ExitError{Cmd: cmd, Status: exit.ExitStatus(), Stderr: lastLines(tail.String(), 5)}
	case ctx.Err() != nil:
		return fmt.Errorf("remote command %q: %w", cmd, ctx.Err())
	case err != nil:
		return fmt.Errorf("remote command %q: %w", cmd, err)
	}
	return nil
}

// ExitError is a remote command of Stream that exited non-zero.
type ExitError struct {
	Cmd    string
	Status int
	Stderr string // its last lines
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("remote command %q exited with status %d: %s", e.Cmd, e.Status, e.Stderr)
}

// tailWriter keeps the last 64 KiB written to it.
type tailWriter struct{ b *bytes.Buffer }

func (w *tailWriter) Write(p []byte) (int, error) {
	w.b.Write(p)
	if over := w.b.Len() - 64<<10; over > 0 {
		w.b.Next(over)
	}
	return len(p), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// CommandArgs returns the ssh(1) command line that logs in to t with the private key file
// keyPath, trusting only the pinned host key: what `mage vm:ssh` prints or runs.
func CommandArgs(t Target, keyPath string) []string {
	host, port, err := net.SplitHostPort(t.hostPort())
	if err != nil {
		host, port = t.Addr, "22"
	}
	args := []string{"ssh", "-i", keyPath,
		"-o", "IdentitiesOnly=yes",
		"-o", "UserKnownHostsFile=" + t.KnownHosts,
		"-o", "StrictHostKeyChecking=yes",
	}
	if port != "22" {
		args = append(args, "-p", port)
	}
	return append(args, t.User+"@"+host)
}

// HostKeyLine is the known_hosts line for addr and key (handy in messages and tests).
func HostKeyLine(addr string, key ssh.PublicKey) string {
	return knownhosts.Line([]string{knownhosts.Normalize(addr)}, key)
}
