package localvm

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clock-app/clock/internal/config"
)

func testConfig(t *testing.T) config.Config {
	t.Helper()
	return config.Config{
		StateDir: t.TempDir(), LibvirtURI: "qemu:///system", VMName: "clock-dev",
		VMMemoryMiB: 2048, VMVCPUs: 2, VMAccel: "tcg", VMMAC: "52:54:00:c0:e9:b1", VMUser: "root",
		VMSuite: "bookworm", TargetPort: 22, TargetUser: "root", HTTPPort: 80,
	}
}

func TestOptionsCarryTheKnobs(t *testing.T) {
	c := testConfig(t)
	got := Options(c, "/repo", nil)
	if got.Name != "clock-dev" || got.MemoryMiB != 2048 || got.VCPUs != 2 || got.MAC != c.VMMAC || got.Accel != "tcg" || got.URI != c.LibvirtURI || got.User != "root" {
		t.Errorf("vm.Config = %+v, want the knobs carried over", got)
	}
	if got.Template != "/repo/deploy/libvirt/domain.xml.tmpl" {
		t.Errorf("Template = %q, want the repo's", got.Template)
	}
	if got.BaseImage != c.BaseImage() || got.KeyPath != filepath.Join(c.StateDir, "ssh", "id_ed25519") || got.StateDir != c.StateDir {
		t.Errorf("paths = %q, %q, %q; want the configuration's base image, key and state folder", got.BaseImage, got.KeyPath, got.StateDir)
	}
	if _, err := Open(c, "/repo", nil); err != nil {
		t.Errorf("Open: %v", err)
	}
}

func TestOpenRefusesAGivenHost(t *testing.T) {
	c := testConfig(t)
	c.TargetHost, c.TargetKey = "192.0.2.7", "/srv/key"
	if _, err := Open(c, "/repo", nil); !errors.Is(err, ErrRemote) {
		t.Errorf("Open with CLOCK_TARGET_HOST = %v, want ErrRemote", err)
	}
	var out strings.Builder
	if err := Image(context.Background(), c, &out); !errors.Is(err, ErrRemote) || out.Len() != 0 {
		t.Errorf("Image with CLOCK_TARGET_HOST = %v (printed %q), want ErrRemote before any step", err, out.String())
	}
	if _, err := Up(context.Background(), c, "/repo", &out); !errors.Is(err, ErrRemote) {
		t.Errorf("Up with CLOCK_TARGET_HOST = %v, want ErrRemote", err)
	}
}
