package sshx

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/clock-app/clock/internal/fsx"
)

// PinHostKey records key as the only host key of addr (host or host:port) in the
// known_hosts file at path, replacing every earlier line for that host: a re-created VM
// re-uses its IP with a new host key. Lines for other hosts are kept as they are.
func PinHostKey(path, addr string, key ssh.PublicKey) error {
	host := knownhosts.Normalize(addr)
	kept, err := linesWithout(path, host)
	if err != nil {
		return err
	}
	kept = append(kept, knownhosts.Line([]string{host}, key))
	return writeKnownHosts(path, kept)
}

// ForgetHost removes every line for addr from the known_hosts file at path. A missing file
// is fine.
func ForgetHost(path, addr string) error {
	host := knownhosts.Normalize(addr)
	kept, err := linesWithout(path, host)
	if err != nil {
		return err
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return writeKnownHosts(path, kept)
}

// HostKeyCallback returns a callback that accepts only host keys recorded in the known_hosts
// file at path, with errors that say how to fix a mismatch.
func HostKeyCallback(path string) (ssh.HostKeyCallback, error) {
	check, err := knownhosts.New(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no known_hosts file at %s: nothing was pinned yet; vm:up pins the local VM's host key, deploy a CLOCK_TARGET_HOST's on first contact", path)
	}
	if err != nil {
		return nil, fmt.Errorf("read known_hosts %s: %w", path, err)
	}
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := check(hostname, remote, key)
		var keyErr *knownhosts.KeyError
		if errors.As(err, &keyErr) {
			if len(keyErr.Want) > 0 {
				return fmt.Errorf("%w: %s now shows %s %s, %s pins another key: if the VM was re-created by hand, vm:destroy and vm:up make one whose key is pinned; for a target host, check it, then delete its line from that file; otherwise someone may be intercepting the connection",
					ErrHostKeyChanged, hostname, key.Type(), ssh.FingerprintSHA256(key), path)
			}
			return fmt.Errorf("%w: %s is not in %s: vm:up pins the local VM's host key, deploy a CLOCK_TARGET_HOST's on first contact", ErrUnknownHost, hostname, path)
		}
		return err
	}, nil
}

// ErrHostKeyChanged and ErrUnknownHost are the two ways a host key check fails.
var (
	ErrHostKeyChanged = errors.New("host key changed")
	ErrUnknownHost    = errors.New("unknown host")
)

// linesWithout returns the lines of the known_hosts file at path, minus host (normalized)
// in each line's host list; a line whose list becomes empty is dropped.
func linesWithout(path, host string) ([]string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read known_hosts %s: %w", path, err)
	}
	var kept []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if line, ok := withoutHost(sc.Text(), host); ok {
			kept = append(kept, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read known_hosts %s: %w", path, err)
	}
	return kept, nil
}

// withoutHost removes host from one known_hosts line; ok is false when nothing is left of
// the line. Comments, blank lines and lines it does not understand are kept unchanged.
func withoutHost(line, host string) (string, bool) {
	trimmed := strings.TrimSpace(line)
	if trimmed == "" || strings.HasPrefix(trimmed, "#") {
		return line, true
	}
	fields := strings.Fields(trimmed)
	hostField := 0
	if strings.HasPrefix(fields[0], "@") { // @cert-authority / @revoked
		hostField = 1
	}
	if len(fields) <= hostField {
		return line, true
	}
	var rest []string
	for _, pattern := range strings.Split(fields[hostField], ",") {
		if !hostMatches(pattern, host) {
			rest = append(rest, pattern)
		}
	}
	if len(rest) == 0 {
		return "", false
	}
	fields[hostField] = strings.Join(rest, ",")
	return strings.Join(fields, " "), true
}

// hostMatches reports whether one host pattern of a known_hosts line is exactly host, in
// plain or hashed (|1|salt|hash) form. Wildcard patterns are left alone.
func hostMatches(pattern, host string) bool {
	if !strings.HasPrefix(pattern, "|1|") {
		return pattern == host
	}
	parts := strings.Split(pattern[len("|1|"):], "|")
	if len(parts) != 2 {
		return false
	}
	salt, err1 := base64.StdEncoding.DecodeString(parts[0])
	want, err2 := base64.StdEncoding.DecodeString(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	mac := hmac.New(sha1.New, salt)
	mac.Write([]byte(host))
	return hmac.Equal(mac.Sum(nil), want)
}

func writeKnownHosts(path string, lines []string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	// Public keys only, and the Ansible runner reads the file as its own non-root user
	// through a bind mount: world-readable, like ~/.ssh/known_hosts.
	if err := fsx.WriteFileAtomic(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write known_hosts %s: %w", path, err)
	}
	return nil
}
