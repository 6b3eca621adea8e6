package deploy

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clock-app/clock/internal/config"
	"github.com/clock-app/clock/internal/images"
	"github.com/clock-app/clock/internal/progress"
	"github.com/clock-app/clock/internal/sshx"
	"github.com/clock-app/clock/internal/state"
)

func testConfig(t *testing.T) config.Config {
	t.Helper()
	return config.Config{
		StateDir: t.TempDir(), LibvirtURI: "qemu:///system", VMName: "immfly-debian10",
		VMMemoryMiB: 1024, VMVCPUs: 1, VMAccel: "tcg", VMMAC: "52:54:00:c0:e9:b1", VMUser: "root",
		VMSuite: "bookworm", TargetPort: 22, TargetUser: "root", HTTPPort: 80, APILogLevel: "info",
	}
}

func TestKeyIsGeneratedOnce(t *testing.T) {
	d := &Deployer{Cfg: testConfig(t)}
	k1, err := d.key()
	if err != nil {
		t.Fatal(err)
	}
	k2, err := d.key()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k1.AuthorizedKey, k2.AuthorizedKey) {
		t.Error("a second key() made a new key, want the same one loaded")
	}
	if st, err := os.Stat(k1.PrivatePath); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("private key mode = %v (%v), want 0600", st.Mode().Perm(), err)
	}
}

func TestVarsCarryThePort(t *testing.T) {
	c := testConfig(t)
	c.HTTPPort = 8081
	d := &Deployer{Cfg: c, Meta: images.Meta{Version: "v1.2.3"}}
	if v := d.vars(); v.WebPort != 8081 || len(v.Extra) != 0 {
		t.Errorf("vars = %+v, want only port 8081: the release carries images and settings", v)
	}
}

func TestCommandLineHoldsNoKey(t *testing.T) {
	c := testConfig(t)
	d := &Deployer{Cfg: c, Root: "/repo", Meta: images.Meta{Version: "v1"}}
	line, err := d.CommandLine("clock-ansible:test")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--network host", "SSH_AUTH_SOCK=", "clock-ansible:test", "site.yml"} {
		if !strings.Contains(line, want) {
			t.Errorf("command line %q does not contain %q", line, want)
		}
	}
	if strings.Contains(line, state.KeyName) {
		t.Errorf("command line %q mentions the private key file", line)
	}
}

func TestAnsibleTarget(t *testing.T) {
	at, err := ansibleTarget(sshx.Target{Addr: "192.168.122.10:2222", User: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	if at.Host != "192.168.122.10" || at.Port != 2222 || at.User != "admin" {
		t.Errorf("ansibleTarget = %+v, want host, port 2222 and user admin", at)
	}
}

func TestStepWriterSplitsLines(t *testing.T) {
	var b bytes.Buffer
	w := stepWriter{s: progress.Start(&b, "x")}
	if _, err := w.Write([]byte("one\n\n  two  \n")); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !strings.Contains(out, "] one\n") || !strings.Contains(out, "] two\n") || strings.Count(out, "\n") != 3 {
		t.Errorf("stepWriter wrote %q, want the two non-empty lines as progress lines", out)
	}
	b.Reset()
	w = stepWriter{progress.Start(&b, "y"), "Step "}
	w.Write([]byte("Step 1/2 : FROM x\n ---> abc\nStep 2/2 : RUN y\n"))
	if out := b.String(); strings.Count(out, "] Step ") != 2 || strings.Contains(out, "abc") {
		t.Errorf("filtered stepWriter wrote %q, want only the two Step lines", out)
	}
}

func TestExistingTargetNeedsTheVM(t *testing.T) {
	c := testConfig(t)
	c.TargetHost, c.TargetKey = "192.0.2.7", filepath.Join(t.TempDir(), "missing")
	d := &Deployer{Cfg: c}
	if _, err := d.existingTarget(context.Background()); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("existingTarget with a missing key = %v, want an error naming the key", err)
	}
}
