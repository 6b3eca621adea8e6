package sshx

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// TestAgentOnlyListsAndSigns is a runner that tries to change the agent's keys: every such
// request is refused and the deploy key stays, signing as before.
func TestAgentOnlyListsAndSigns(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := ssh.NewSignerFromKey(priv)
	socket, stop, err := anyUser.Start(priv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stop() })
	conn, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := agent.NewClient(conn)

	_, planted, _ := ed25519.GenerateKey(rand.Reader)
	refused := map[string]error{
		"add":        client.Add(agent.AddedKey{PrivateKey: planted}),
		"remove":     client.Remove(signer.PublicKey()),
		"remove all": client.RemoveAll(),
		"lock":       client.Lock([]byte("pass")),
		"unlock":     client.Unlock([]byte("pass")),
	}
	for what, err := range refused {
		if err == nil {
			t.Errorf("agent accepted %s, want it refused", what)
		}
	}
	if _, err := client.Extension("session-bind@openssh.com", nil); err == nil {
		t.Error("agent accepted an extension, want it refused")
	}
	keys, err := client.List()
	if err != nil || len(keys) != 1 || !bytes.Equal(keys[0].Marshal(), signer.PublicKey().Marshal()) {
		t.Fatalf("List after the refused requests = %v, %v; want exactly the deploy key", keys, err)
	}
	data := []byte("still signs")
	sig, err := client.SignWithFlags(signer.PublicKey(), data, 0)
	if err != nil || signer.PublicKey().Verify(data, sig) != nil {
		t.Errorf("SignWithFlags = %v; want a valid signature", err)
	}
}

func TestSocketAccess(t *testing.T) {
	tests := []struct {
		euid, client, owner int
		mode                os.FileMode
	}{
		{0, 1000, 1000, 0o600},  // root hands the socket to the runner's user
		{1000, 1000, -1, 0o600}, // mage runs as the runner's user already
		{1001, 1000, -1, 0o666}, // another user: only the 0700 folder fences it
		{0, -1, -1, 0o666},      // no client user given
		{1000, -1, -1, 0o666},
	}
	for _, tt := range tests {
		owner, mode := socketAccess(tt.euid, tt.client)
		if owner != tt.owner || mode != tt.mode {
			t.Errorf("socketAccess(%d, %d) = %d, %04o; want %d, %04o", tt.euid, tt.client, owner, mode, tt.owner, tt.mode)
		}
	}
}

func TestAgentSocketBelongsToTheClient(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("handing the socket to another user needs root")
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	socket, stop, err := AgentConfig{ClientUID: 1000}.Start(priv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stop() })
	st, err := os.Stat(socket)
	if err != nil {
		t.Fatal(err)
	}
	if uid := st.Sys().(*syscall.Stat_t).Uid; uid != 1000 || st.Mode().Perm() != 0o600 {
		t.Errorf("socket owner %d mode %04o, want 1000 and 0600", uid, st.Mode().Perm())
	}
	dir, _ := os.Stat(filepath.Dir(socket))
	if dir.Mode().Perm() != 0o700 || dir.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("agent folder mode %04o, want 0700 and ours", dir.Mode().Perm())
	}
}

func TestSweepAgentDirs(t *testing.T) {
	tmp := t.TempDir()
	mk := func(name string) string {
		t.Helper()
		d := filepath.Join(tmp, name)
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		return d
	}
	// A killed run: the socket file stays, nobody listens.
	killed := mk(agentDirPrefix + "killed")
	l, err := net.Listen("unix", filepath.Join(killed, AgentSocketName))
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	// A live agent.
	live := mk(agentDirPrefix + "live")
	ll, err := net.Listen("unix", filepath.Join(live, AgentSocketName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ll.Close() })
	go func() {
		for {
			c, err := ll.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	// One killed before it listened, an hour ago; one being set up right now.
	old := mk(agentDirPrefix + "old")
	hourAgo := time.Now().Add(-time.Hour)
	os.Chtimes(old, hourAgo, hourAgo)
	fresh := mk(agentDirPrefix + "fresh")
	other := mk("someone-else")

	removed, err := sweepAgentDirs(tmp, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(removed)
	if want := []string{killed, old}; !slices.Equal(removed, want) {
		t.Errorf("sweepAgentDirs removed %q, want %q", removed, want)
	}
	for _, kept := range []string{live, fresh, other} {
		if _, err := os.Stat(kept); err != nil {
			t.Errorf("%s was swept: %v", kept, err)
		}
	}
	for _, gone := range []string{killed, old} {
		if _, err := os.Stat(gone); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there", gone)
		}
	}
}
