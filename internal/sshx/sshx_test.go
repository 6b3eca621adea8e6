package sshx

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func TestEnsureKeyRoundTrip(t *testing.T) {
	key := filepath.Join(t.TempDir(), "ssh", "id_ed25519")
	k1, err := EnsureKey(key)
	if err != nil {
		t.Fatalf("EnsureKey (generate): %v", err)
	}
	if k1.Signer.PublicKey().Type() != ssh.KeyAlgoED25519 {
		t.Errorf("key type = %s, want ed25519", k1.Signer.PublicKey().Type())
	}
	fi, err := os.Stat(k1.PrivatePath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("private key mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	data, _ := os.ReadFile(k1.PrivatePath)
	if block, rest := pem.Decode(data); block == nil || block.Type != "OPENSSH PRIVATE KEY" ||
		!bytes.HasPrefix(data, []byte("-----BEGIN ")) || len(rest) != 0 {
		t.Errorf("private key is not one PEM block in OpenSSH format (%d bytes)", len(data))
	}
	pub, err := os.ReadFile(k1.PublicPath)
	if err != nil {
		t.Fatal(err)
	}
	parsed, _, _, _, err := ssh.ParseAuthorizedKey(pub)
	if err != nil || !bytes.Equal(parsed.Marshal(), k1.Signer.PublicKey().Marshal()) {
		t.Errorf(".pub does not hold the private key's public half: %v", err)
	}

	k2, err := EnsureKey(key)
	if err != nil {
		t.Fatalf("EnsureKey (load): %v", err)
	}
	if !bytes.Equal(k1.Signer.PublicKey().Marshal(), k2.Signer.PublicKey().Marshal()) {
		t.Errorf("EnsureKey generated a new key instead of loading the existing one")
	}

	// A lost .pub is written back from the private key.
	os.Remove(k1.PublicPath)
	k3, err := EnsureKey(key)
	if err != nil || k3.PublicPath == "" {
		t.Fatalf("EnsureKey (no .pub) = %+v, %v", k3, err)
	}
	if again, _ := os.ReadFile(k3.PublicPath); !bytes.Equal(bytes.Fields(again)[1], bytes.Fields(pub)[1]) {
		t.Errorf("rewritten .pub = %q, want the same key as %q", again, pub)
	}
}

func TestLoadKeyFormats(t *testing.T) {
	dir := t.TempDir()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// The classic exercise's `rsa` file is a PKCS#1 "RSA PRIVATE KEY".
	rsaPath := writeFile(t, dir, "rsa", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}))
	k, err := LoadKey(rsaPath)
	if err != nil {
		t.Fatalf("LoadKey(PKCS#1 RSA) = %v", err)
	}
	if k.Signer.PublicKey().Type() != ssh.KeyAlgoRSA || !bytes.HasPrefix(k.AuthorizedKey, []byte("ssh-rsa ")) {
		t.Errorf("RSA key loaded as %s / %q", k.Signer.PublicKey().Type(), k.AuthorizedKey)
	}

	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	enc, err := ssh.MarshalPrivateKeyWithPassphrase(edPriv, "", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, want string
	}{
		{"encrypted", writeFile(t, dir, "enc", pem.EncodeToMemory(enc)), "encrypted with a passphrase"},
		{"garbage", writeFile(t, dir, "junk", []byte("not a key")), "not a private key this tool can read"},
		{"public key given", writeFile(t, dir, "id.pub", []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGVe+I/9BPDc9MAtj79ZXOIAdiqHBtzZH6/tSmBLl27I x")), "not a private key"},
		{"missing", filepath.Join(dir, "nope"), "read SSH private key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadKey(tt.path)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("LoadKey = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestPinHostKeyReplacesOnlyThatHost(t *testing.T) {
	path := filepath.Join(t.TempDir(), "known_hosts")
	oldKey, newKey, otherKey := newHostSigner(t).PublicKey(), newHostSigner(t).PublicKey(), newHostSigner(t).PublicKey()
	const host = "192.168.122.50"
	initial := strings.Join([]string{
		"# managed by tests",
		HostKeyLine(host, oldKey),
		HostKeyLine("192.168.122.9", otherKey),
		strings.TrimSpace(string(ssh.MarshalAuthorizedKey(oldKey))) + "", // malformed: no host field
		"192.168.122.50,vm.example " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(oldKey))),
		hashedLine(t, host, oldKey),
	}, "\n") + "\n"
	writeFile(t, filepath.Dir(path), "known_hosts", []byte(initial))

	if err := PinHostKey(path, host, newKey); err != nil {
		t.Fatalf("PinHostKey: %v", err)
	}
	got, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(got)), "\n")
	var forHost []string
	for _, l := range lines {
		if f := strings.Fields(l); len(f) > 0 && (f[0] == host || strings.HasPrefix(f[0], "|1|")) {
			forHost = append(forHost, l)
		}
	}
	if want := HostKeyLine(host, newKey); len(forHost) != 1 || forHost[0] != want {
		t.Errorf("lines for %s = %q, want only %q", host, forHost, want)
	}
	for _, want := range []string{"# managed by tests", HostKeyLine("192.168.122.9", otherKey), "vm.example ssh-ed25519"} {
		if !strings.Contains(string(got), want) {
			t.Errorf("known_hosts lost %q:\n%s", want, got)
		}
	}

	if err := ForgetHost(path, host); err != nil {
		t.Fatalf("ForgetHost: %v", err)
	}
	if got, _ := os.ReadFile(path); strings.Contains(string(got), HostKeyLine(host, newKey)) {
		t.Errorf("ForgetHost left the host's key:\n%s", got)
	}
	if err := ForgetHost(filepath.Join(t.TempDir(), "absent"), host); err != nil {
		t.Errorf("ForgetHost(missing file) = %v, want nil", err)
	}
}

func TestWaitForSSHPinsAndRunVerifies(t *testing.T) {
	ctx := testContext(t)
	client := newClientKey(t)
	srv := startServer(t, "127.0.0.1:0", newHostSigner(t), client.PublicKey())
	known := filepath.Join(t.TempDir(), "ssh", "known_hosts")
	// A stale key for the same address, as a previous VM would have left.
	if err := PinHostKey(known, srv.addr, newHostSigner(t).PublicKey()); err != nil {
		t.Fatal(err)
	}

	var progress []string
	err := WaitForSSH(ctx, Wait{Addr: srv.addr, User: "root", Signer: client, KnownHosts: known, JustCreated: true, Booting: true,
		Progress: func(f string, a ...any) { progress = append(progress, f) }})
	if err != nil {
		t.Fatalf("WaitForSSH: %v", err)
	}
	got, _ := os.ReadFile(known)
	if want := HostKeyLine(srv.addr, srv.hostKey.PublicKey()) + "\n"; string(got) != want {
		t.Errorf("known_hosts = %q, want exactly %q", got, want)
	}
	if len(progress) == 0 || !strings.Contains(progress[len(progress)-1], "SSH answered") {
		t.Errorf("progress = %q, want a final 'SSH answered' line", progress)
	}

	target := Target{Addr: srv.addr, User: "root", Signer: client, KnownHosts: known}
	res, err := Run(ctx, target, "uname -a")
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if string(res.Stdout) != "ran: uname -a\n" || string(res.Stderr) != "stderr line\n" {
		t.Errorf("Run output = %q / %q", res.Stdout, res.Stderr)
	}
	res, err = Run(ctx, target, "fail")
	if err == nil || res.ExitStatus != 3 || !strings.Contains(err.Error(), "status 3") {
		t.Errorf("Run(fail) = %+v, %v; want exit status 3", res, err)
	}

	// The VM is re-created at the same address with a new host key: Run must refuse it.
	srv.close()
	srv2 := startServer(t, srv.addr, newHostSigner(t), client.PublicKey())
	_, err = Run(ctx, target, "uname -a")
	if !errors.Is(err, ErrHostKeyChanged) || !strings.Contains(err.Error(), "vm:up") {
		t.Errorf("Run against a changed host key = %v, want ErrHostKeyChanged with a hint", err)
	}
	if n := srv2.execCount(); n != 0 {
		t.Errorf("a command ran on the impostor (%d exec requests)", n)
	}
}

func TestRunUnknownHost(t *testing.T) {
	ctx := testContext(t)
	client := newClientKey(t)
	srv := startServer(t, "127.0.0.1:0", newHostSigner(t), client.PublicKey())
	known := filepath.Join(t.TempDir(), "known_hosts")
	if err := PinHostKey(known, "10.0.0.1", newHostSigner(t).PublicKey()); err != nil {
		t.Fatal(err)
	}
	_, err := Run(ctx, Target{Addr: srv.addr, User: "root", Signer: client, KnownHosts: known}, "true")
	if !errors.Is(err, ErrUnknownHost) {
		t.Errorf("Run(unpinned host) = %v, want ErrUnknownHost", err)
	}
	_, err = Run(ctx, Target{Addr: srv.addr, User: "root", Signer: client, KnownHosts: known + ".missing"}, "true")
	if err == nil || !strings.Contains(err.Error(), "no known_hosts file") {
		t.Errorf("Run(no known_hosts) = %v, want a 'no known_hosts file' error", err)
	}
}

func TestWaitForSSHAuthRejectedFailsFast(t *testing.T) {
	ctx := testContext(t)
	srv := startServer(t, "127.0.0.1:0", newHostSigner(t), newClientKey(t).PublicKey())
	known := filepath.Join(t.TempDir(), "known_hosts")
	start := time.Now()
	err := WaitForSSH(ctx, Wait{Addr: srv.addr, User: "root", Signer: newClientKey(t), KnownHosts: known, Booting: true})
	if !errors.Is(err, ErrAuthRejected) {
		t.Fatalf("WaitForSSH(wrong key) = %v, want ErrAuthRejected", err)
	}
	if !strings.Contains(err.Error(), "not authorized for root") {
		t.Errorf("error %q does not say the key is not authorized for root", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("WaitForSSH took %s to give up on a rejected key, want no retries", d)
	}
	if _, err := os.Stat(known); err == nil {
		t.Errorf("a host key was pinned although login failed")
	}
}

func TestWaitForSSHRetriesUntilUp(t *testing.T) {
	ctx := testContext(t)
	client := newClientKey(t)
	// The first connections are dropped before the SSH banner, as while sshd is starting.
	srv := startServer(t, "127.0.0.1:0", newHostSigner(t), client.PublicKey())
	srv.dropFirst(2)
	known := filepath.Join(t.TempDir(), "known_hosts")
	if err := WaitForSSH(ctx, Wait{Addr: srv.addr, User: "root", Signer: client, KnownHosts: known, Booting: true}); err != nil {
		t.Fatalf("WaitForSSH: %v", err)
	}
	if n := srv.acceptCount(); n != 3 {
		t.Errorf("server saw %d connections, want 3 (two dropped, one login)", n)
	}
	got, _ := os.ReadFile(known)
	if !strings.Contains(string(got), HostKeyLine(srv.addr, srv.hostKey.PublicKey())) {
		t.Errorf("known_hosts = %q, want the server's key pinned", got)
	}
}

func TestWaitForSSHGivesUpAtDeadline(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	err = WaitForSSH(ctx, Wait{Addr: addr, User: "root", Signer: newClientKey(t), KnownHosts: filepath.Join(t.TempDir(), "kh"), Booting: true})
	var na *NotAnsweringError
	if !errors.As(err, &na) || na.Kind != KindRefused || na.Attempts < 2 || !strings.Contains(err.Error(), "did not answer") {
		t.Errorf("WaitForSSH(nothing listening, booting) = %v, want a 'did not answer' error after retries, kind refused", err)
	}

	// A host that should already run is not waited on when it refuses.
	start := time.Now()
	err = WaitForSSH(context.Background(), Wait{Addr: addr, User: "root", Signer: newClientKey(t), KnownHosts: filepath.Join(t.TempDir(), "kh")})
	if !errors.As(err, &na) || na.Kind != KindRefused || na.Attempts != 1 {
		t.Errorf("WaitForSSH(nothing listening, not booting) = %v, want one refused attempt", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("WaitForSSH waited %s on a refusing host that is not booting", d)
	}
}

func TestCommandArgs(t *testing.T) {
	got := strings.Join(CommandArgs(Target{Addr: "192.168.122.7", User: "root", KnownHosts: "/s/known_hosts"}, "/s/id_ed25519"), " ")
	want := "ssh -i /s/id_ed25519 -o IdentitiesOnly=yes -o UserKnownHostsFile=/s/known_hosts -o StrictHostKeyChecking=yes root@192.168.122.7"
	if got != want {
		t.Errorf("CommandArgs = %q, want %q", got, want)
	}
	got = strings.Join(CommandArgs(Target{Addr: "127.0.0.1:2222", User: "u", KnownHosts: "k"}, "i"), " ")
	if !strings.HasSuffix(got, "-p 2222 u@127.0.0.1") {
		t.Errorf("CommandArgs with a port = %q, want it to end in -p 2222 u@127.0.0.1", got)
	}
}

// --- helpers -------------------------------------------------------------------------

func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func newHostSigner(t testing.TB) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newClientKey(t testing.TB) ssh.Signer {
	t.Helper()
	k, err := EnsureKey(filepath.Join(t.TempDir(), "id_ed25519"))
	if err != nil {
		t.Fatal(err)
	}
	return k.Signer
}

// hashedLine is a known_hosts line in ssh-keygen -H form.
func hashedLine(t testing.TB, host string, key ssh.PublicKey) string {
	t.Helper()
	return knownhosts.HashHostname(host) + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
}

// testServer is a minimal in-process SSH server: public key auth for one key, "exec"
// requests answered with "ran: <cmd>" on stdout and "stderr line" on stderr; the command
// "fail" exits 3.
type testServer struct {
	addr    string
	hostKey ssh.Signer
	l       net.Listener
	mu      sync.Mutex
	execs   int
	accepts int
	drop    int
	wg      sync.WaitGroup
}

func startServer(t testing.TB, addr string, hostKey ssh.Signer, authorized ssh.PublicKey) *testServer {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	s := &testServer{addr: l.Addr().String(), hostKey: hostKey, l: l}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(key.Marshal(), authorized.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("unknown key")
		},
	}
	cfg.AddHostKey(hostKey)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.accepts++
			drop := s.accepts <= s.drop
			s.mu.Unlock()
			if drop {
				c.Close()
				continue
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(c, cfg)
			}()
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *testServer) close() {
	s.l.Close()
	s.wg.Wait()
}

// dropFirst makes the server close its first n connections before the handshake.
func (s *testServer) dropFirst(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drop = n
}

func (s *testServer) acceptCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepts
}

func (s *testServer) execCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.execs
}

func (s *testServer) serve(c net.Conn, cfg *ssh.ServerConfig) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	conn, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	defer conn.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "session only")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			return
		}
		for req := range chReqs {
			if req.Type != "exec" {
				req.Reply(false, nil)
				continue
			}
			s.mu.Lock()
			s.execs++
			s.mu.Unlock()
			cmd := string(req.Payload[4:])
			req.Reply(true, nil)
			ch.Write([]byte("ran: " + cmd + "\n"))
			ch.Stderr().Write([]byte("stderr line\n"))
			status := uint32(0)
			if cmd == "fail" {
				status = 3
			}
			var payload [4]byte
			binary.BigEndian.PutUint32(payload[:], status)
			ch.SendRequest("exit-status", false, payload[:])
			ch.Close()
			break
		}
	}
}
