package deploy

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clock-app/clock/internal/progress"
	"github.com/clock-app/clock/internal/sshx"
)

func TestTargetHint(t *testing.T) {
	const addr = "192.0.2.5:2222"
	tests := []struct {
		kind sshx.ErrorKind
		want []string
	}{
		{sshx.KindRefused, []string{"connection refused at " + addr, "sshd", "CLOCK_TARGET_PORT"}},
		{sshx.KindTimeout, []string{"no answer from " + addr, "firewall", "CLOCK_TARGET_PORT"}},
		{sshx.KindUnreachable, []string{"no route to " + addr, "CLOCK_TARGET_HOST"}},
		{sshx.KindNoSuchHost, []string{"does not resolve", "CLOCK_TARGET_HOST"}},
		{sshx.KindClosed, []string{"closed it before SSH spoke", "CLOCK_TARGET_PORT"}},
		{sshx.KindOther, []string{"handshake", addr}},
	}
	for _, tt := range tests {
		got := targetHint(tt.kind, addr)
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("targetHint(%v) = %q, want it to contain %q", tt.kind, got, w)
			}
		}
		if strings.Contains(got, "console") || strings.Contains(got, "VM") {
			t.Errorf("targetHint(%v) = %q speaks of a VM; a target host has none", tt.kind, got)
		}
	}
}

// TestPinOnFirstContactRefused is CLOCK_TARGET_HOST with nothing on its SSH port: an
// answer at once that names the cause, not a minute's wait and a word about a console.
func TestPinOnFirstContactRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	d := &Deployer{Cfg: testConfig(t)}
	key, err := d.key()
	if err != nil {
		t.Fatal(err)
	}
	tgt := sshx.Target{Addr: addr, User: "root", Signer: key.Signer, KnownHosts: filepath.Join(t.TempDir(), "known_hosts")}
	var out bytes.Buffer
	start := time.Now()
	err = d.pinOnFirstContact(context.Background(), tgt, progress.Start(&out, "target"))
	err = targetError(err, addr)
	var na *sshx.NotAnsweringError
	if !errors.As(err, &na) || !strings.Contains(err.Error(), "connection refused at "+addr) || strings.Contains(err.Error(), "console") {
		t.Errorf("pinOnFirstContact(refused) = %v, want the refusal named with its fix", err)
	}
	t.Logf("the message: %v", err)
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("pinOnFirstContact waited %s on a refusing host", took)
	}
}

func TestAgentRefusesUnmountablePaths(t *testing.T) {
	d := &Deployer{Cfg: testConfig(t), Root: "/srv/a,readonly=false"}
	if _, err := d.key(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.agent(); err == nil || !strings.Contains(err.Error(), "repository's path") {
		t.Errorf("agent() with a comma in the repo path = %v, want it refused", err)
	}
	d.Root = t.TempDir()
	t.Setenv("TMPDIR", t.TempDir()+"/x=y")
	if err := os.MkdirAll(os.Getenv("TMPDIR"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.agent(); err == nil || !strings.Contains(err.Error(), "TMPDIR") {
		t.Errorf("agent() with '=' in TMPDIR = %v, want it refused naming TMPDIR", err)
	}
	t.Setenv("TMPDIR", t.TempDir())
	socket, stop, err := d.agent()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if !strings.HasPrefix(socket, os.Getenv("TMPDIR")) {
		t.Errorf("socket %s is not under TMPDIR", socket)
	}
}
