package vm

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/clock-app/clock/internal/sshx"
	"github.com/clock-app/clock/internal/state"
	"github.com/clock-app/clock/internal/vmimage"
)

// TestIntegrationUpSSHDestroy builds (or reuses) the base image, brings the VM up under
// libvirt, logs in over SSH and destroys it. It needs root, libvirtd and the Debian mirror,
// and takes minutes under TCG, so it only runs with CLOCK_VM_INTEGRATION=1:
//
//	CLOCK_VM_INTEGRATION=1 go test -v -run Integration -timeout 30m ./internal/vm
//
// CLOCK_VM_INTEGRATION_ACCEL picks the acceleration (default tcg). It uses the repository's
// .state folder, as mage does, unless CLOCK_VM_INTEGRATION_STATE names another.
func TestIntegrationUpSSHDestroy(t *testing.T) {
	if os.Getenv("CLOCK_VM_INTEGRATION") != "1" {
		t.Skip("set CLOCK_VM_INTEGRATION=1 to boot a real VM (root, libvirtd, minutes under TCG)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	stateDir := os.Getenv("CLOCK_VM_INTEGRATION_STATE")
	if stateDir == "" {
		stateDir = "../../.state"
	}
	dir := state.New(stateDir)
	logf := func(format string, args ...any) { t.Logf(format, args...) }

	key, err := sshx.EnsureKey(dir.Key())
	if err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(key.PublicPath)
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	built, err := vmimage.Build(ctx, vmimage.Options{Output: dir.BaseImage("debian12.img"), PublicKey: pub, Logf: logf})
	if err != nil {
		t.Fatalf("image: %v", err)
	}
	t.Logf("TIMING image: built=%v in %s", built, time.Since(begin).Round(time.Second))

	accel := os.Getenv("CLOCK_VM_INTEGRATION_ACCEL")
	if accel == "" {
		accel = AccelTCG
	}
	v, err := New(Config{StateDir: dir.Root(), Accel: accel, Template: "../../deploy/libvirt/domain.xml.tmpl", Logf: logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := v.Destroy(context.Background()); err != nil {
			t.Errorf("Destroy: %v", err)
		}
	})

	begin = time.Now()
	res, err := v.Up(ctx)
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	t.Logf("TIMING up: accel=%s ip=%s lease after %s, SSH after %s (Up took %s)", res.Accel, res.IP,
		res.LeaseAfter.Round(time.Second), res.SSHAfter.Round(time.Second), time.Since(begin).Round(time.Second))

	target, err := v.SSHTarget(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out, err := sshx.Run(ctx, target, "uname -a; python3 --version; ip -br a")
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Logf("remote output:\n%s", out.Stdout)
	if !strings.Contains(string(out.Stdout), "enp1s0") || !strings.Contains(string(out.Stdout), "Python 3") {
		t.Errorf("expected enp1s0 and Python 3 in the output")
	}
	cmd, err := v.SSHCommand(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("vm:ssh would run: %s", strings.Join(cmd, " "))

	// Up on a running VM returns at once with the same address.
	again, err := v.Up(ctx)
	if err != nil || again.IP != res.IP || again.Started {
		t.Errorf("second Up = %+v, %v; want the same IP without a start", again, err)
	}
	t.Logf("serial console tail:\n%s", ConsoleTail(v.Config().ConsoleLogPath(), 12))

	begin = time.Now()
	if err := v.Down(ctx); err != nil {
		t.Errorf("Down: %v", err)
	}
	t.Logf("TIMING down: %s", time.Since(begin).Round(time.Second))
}
