package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadDefaults(t *testing.T) {
	for _, k := range Names() {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	c, err := Load()
	if err != nil {
		t.Fatalf("Load with no variables: %v", err)
	}
	if c.VMName != "immfly-debian10" || c.VMMemoryMiB != 1024 || c.VMVCPUs != 2 || c.VMAccel != "auto" || c.HTTPPort != 80 {
		t.Errorf("defaults = %+v, want the classic VM (immfly-debian10, 1024 MiB) with 2 vCPUs, auto, on port 80", c)
	}
	if c.Remote() {
		t.Error("Remote() = true with no CLOCK_TARGET_HOST")
	}
}

func TestLoadErrorsNameVariableAndValue(t *testing.T) {
	key := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(key, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"CLOCK_VM_MEMORY": "lots"}, `CLOCK_VM_MEMORY="lots"`},
		{map[string]string{"CLOCK_VM_MEMORY": "64"}, `CLOCK_VM_MEMORY="64": must be between 256`},
		{map[string]string{"CLOCK_VM_VCPUS": "0"}, `CLOCK_VM_VCPUS="0"`},
		{map[string]string{"CLOCK_VM_ACCEL": "hvf"}, `CLOCK_VM_ACCEL="hvf": must be auto, kvm or tcg`},
		{map[string]string{"CLOCK_VM_NAME": "bad name"}, `CLOCK_VM_NAME="bad name"`},
		{map[string]string{"CLOCK_VM_BOOT_TIMEOUT": "-1s"}, `CLOCK_VM_BOOT_TIMEOUT="-1s"`},
		{map[string]string{"CLOCK_VM_BOOT_TIMEOUT": "soon"}, `CLOCK_VM_BOOT_TIMEOUT="soon"`},
		{map[string]string{"CLOCK_VM_IMAGE": key}, `CLOCK_VM_KEY="": is required with CLOCK_VM_IMAGE`},
		{map[string]string{"CLOCK_VM_IMAGE": "/nonexistent.img", "CLOCK_VM_KEY": key}, `CLOCK_VM_IMAGE="/nonexistent.img": no such file`},
		{map[string]string{"CLOCK_VM_MAC": "52:54:00:zz:e9:b1"}, `CLOCK_VM_MAC="52:54:00:zz:e9:b1"`},
		{map[string]string{"CLOCK_VM_MAC": "01:00:5e:00:00:01"}, `CLOCK_VM_MAC="01:00:5e:00:00:01": is a multicast address`},
		{map[string]string{"CLOCK_VM_SUITE": "buster"}, `CLOCK_VM_SUITE="buster"`},
		{map[string]string{"CLOCK_TARGET_HOST": "10.0.0.5"}, `CLOCK_TARGET_KEY="": is required with CLOCK_TARGET_HOST`},
		{map[string]string{"CLOCK_TARGET_HOST": "root@h", "CLOCK_TARGET_KEY": key}, `CLOCK_TARGET_HOST="root@h"`},
		{map[string]string{"CLOCK_TARGET_PORT": "70000"}, `CLOCK_TARGET_PORT="70000"`},
		{map[string]string{"CLOCK_HTTP_PORT": "abc"}, `CLOCK_HTTP_PORT="abc"`},
		{map[string]string{"CLOCK_HTTP_PORT": "0"}, `CLOCK_HTTP_PORT="0": must be a port number`},
		{map[string]string{"CLOCK_API_LOG_LEVEL": "loud"}, `CLOCK_API_LOG_LEVEL="loud"`},
		{map[string]string{"CLOCK_VERSION": "v1 beta"}, `CLOCK_VERSION="v1 beta"`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			for _, k := range Names() {
				t.Setenv(k, "")
				os.Unsetenv(k)
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, err := Load()
			if err == nil {
				t.Fatalf("Load(%v) = nil error, want one containing %q", tt.env, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "CLOCK_CLOCK_") {
				t.Errorf("Load(%v) error = %q, want it to contain %q", tt.env, err, tt.want)
			}
		})
	}
}

func TestTargetOverride(t *testing.T) {
	key := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(key, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CLOCK_TARGET_HOST", "192.0.2.10")
	t.Setenv("CLOCK_TARGET_KEY", key)
	t.Setenv("CLOCK_TARGET_PORT", "2222")
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if !c.Remote() || c.TargetPort != 2222 {
		t.Errorf("got Remote()=%v port=%d, want true and 2222", c.Remote(), c.TargetPort)
	}
}

func TestUsageListsEveryVariable(t *testing.T) {
	var b bytes.Buffer
	if err := Usage(&b); err != nil {
		t.Fatal(err)
	}
	var md bytes.Buffer
	Markdown(&md)
	for _, k := range Names() {
		if !strings.Contains(b.String(), k) {
			t.Errorf("Usage does not list %s", k)
		}
		if !strings.Contains(md.String(), "`"+k+"`") {
			t.Errorf("Markdown does not list %s", k)
		}
	}
	if len(Names()) < 15 {
		t.Errorf("Names() = %d variables, want every knob", len(Names()))
	}
}

func TestPathIsAbsolute(t *testing.T) {
	c := Config{StateDir: ".state"}
	if p := c.State().KnownHosts(); !filepath.IsAbs(p) || !strings.HasSuffix(p, ".state/ssh/known_hosts") {
		t.Errorf("Path = %q, want an absolute path ending in .state/ssh/known_hosts", p)
	}
}

func TestDeployKeyAndBaseImage(t *testing.T) {
	c := Config{StateDir: t.TempDir(), VMSuite: "bookworm"}
	if path, generate := c.DeployKey(); path != filepath.Join(c.StateDir, "ssh", "id_ed25519") || !generate {
		t.Errorf("DeployKey with no key given = %q, %v; want ours in the state folder, generated", path, generate)
	}
	if got := c.BaseImage(); got != filepath.Join(c.StateDir, "vm", "debian12.img") {
		t.Errorf("BaseImage for bookworm = %q, want vm/debian12.img in the state folder", got)
	}
	c.VMSuite = "bullseye"
	if got := filepath.Base(c.BaseImage()); got != "debian11.img" {
		t.Errorf("BaseImage for bullseye = %q, want debian11.img", got)
	}
	c.VMImage, c.VMKey = "/srv/debian10-ssh.img", "/srv/rsa"
	if path, generate := c.DeployKey(); c.BaseImage() != "/srv/debian10-ssh.img" || path != "/srv/rsa" || generate {
		t.Errorf("with the user's image: BaseImage %q, DeployKey %q %v; want theirs, never generated", c.BaseImage(), path, generate)
	}
	c.TargetHost, c.TargetKey = "192.0.2.7", "/srv/host-key"
	if path, generate := c.DeployKey(); path != "/srv/host-key" || generate {
		t.Errorf("DeployKey with a target host = %q, %v; want its key, never generated", path, generate)
	}
}

// TestREADMEListsEveryKnob keeps the README's table honest: a knob added here must be
// documented there.
func TestREADMEListsEveryKnob(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range Names() {
		if !strings.Contains(string(readme), "`"+k+"`") {
			t.Errorf("README.md does not document %s: paste the table from `go run mage.go config`", k)
		}
	}
}
