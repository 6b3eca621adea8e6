package sshx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/crypto/ssh"
)

// retryInterval is the pause between two attempts while the host is not up yet.
const retryInterval = time.Second

// progressEvery spaces out the "still waiting" lines.
const progressEvery = 10 * time.Second

// WaitForSSH retries TCP connect, SSH handshake and public key login to addr as user until
// one succeeds or ctx ends. The host key it sees on success is pinned in the known_hosts
// file at knownHostsPath, replacing any older key for that host (a fresh VM re-uses the IP
// of the one before it). A server that answers but refuses the key fails at once with
// ErrAuthRejected; anything else counts as "not up yet". progress, when not nil, gets a
// line about every ten seconds with the elapsed time and the last reason.
//
// Readiness is this login, not a DHCP lease: dnsmasq hands an old lease back for a re-used
// MAC before the new VM has even booted.
func WaitForSSH(ctx context.Context, addr, user string, signer ssh.Signer, knownHostsPath string, progress func(format string, args ...any)) error {
	if signer == nil {
		return errors.New("sshx: WaitForSSH needs a private key")
	}
	if progress == nil {
		progress = func(string, ...any) {}
	}
	addr = withPort(addr)
	start := time.Now()
	lastReport := start
	for attempt := 1; ; attempt++ {
		key, err := tryLogin(ctx, addr, user, signer)
		if err == nil {
			if err := PinHostKey(knownHostsPath, addr, key); err != nil {
				return err
			}
			progress("SSH answered on %s after %.0fs (%s %s pinned in %s)",
				addr, time.Since(start).Seconds(), key.Type(), ssh.FingerprintSHA256(key), knownHostsPath)
			return nil
		}
		if errors.Is(err, ErrAuthRejected) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("SSH on %s did not answer within %.0fs (%d attempts, last: %v): check the VM's serial console log",
				addr, time.Since(start).Seconds(), attempt, err)
		}
		if time.Since(lastReport) >= progressEvery {
			lastReport = time.Now()
			progress("waiting for SSH on %s (%.0fs): %v", addr, time.Since(start).Seconds(), err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(retryInterval):
		}
	}
}

// tryLogin makes one connect + handshake + login attempt and returns the host key it saw.
// Any host key is accepted here because it is the one being pinned; Dial verifies later.
func tryLogin(ctx context.Context, addr, user string, signer ssh.Signer) (ssh.PublicKey, error) {
	var seen ssh.PublicKey
	record := func(_ string, _ net.Addr, key ssh.PublicKey) error {
		seen = key
		return nil
	}
	client, err := dial(ctx, addr, clientConfig(user, signer, record))
	if err != nil {
		if isAuthRejected(err) && seen != nil {
			return nil, authRejected(user, addr)
		}
		return nil, err
	}
	client.Close()
	return seen, nil
}
