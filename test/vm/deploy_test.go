//go:build vmtest

// Package vm_test deploys the clock into a fresh local VM and checks it the way a user and
// an operator would. It boots a real VM, so it only builds with -tags vmtest: run it with
// `go run mage.go test:vm`, which is part of `go run mage.go test`.
package vm_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clock-app/clock/internal/config"
	"github.com/clock-app/clock/internal/deploy"
	"github.com/clock-app/clock/internal/images"
	"github.com/clock-app/clock/internal/sshx"
	"github.com/clock-app/clock/internal/verify"
	"github.com/clock-app/clock/internal/vm"
)

// The test VM has its own name and MAC so it never touches a VM the user deployed; it shares
// the state folder, so the base image and the runner image are built once.
const (
	testVMName = "clock-vmtest"
	testVMMAC  = "52:54:00:c0:e9:be"
)

func TestDeployVM(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Minute)
	defer cancel()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.StateDir == ".state" || !filepath.IsAbs(cfg.StateDir) {
		cfg.StateDir = filepath.Join(root, strings.TrimPrefix(cfg.StateDir, "./"))
	}
	cfg.VMName, cfg.VMMAC, cfg.VMAccel = testVMName, testVMMAC, "tcg"
	cfg.VMImage, cfg.VMKey, cfg.VMUser = "", "", "root"
	cfg.TargetHost, cfg.HTTPPort = "", 80
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	d := &deploy.Deployer{Cfg: cfg, Root: root, Out: os.Stdout, Meta: images.Describe(ctx, root)}
	v, err := d.VM(t.Logf)
	if err != nil {
		t.Fatal(err)
	}

	// 1. The image (cached across runs), then a fresh VM: whatever an earlier run left goes.
	if err := d.Image(ctx); err != nil {
		t.Fatalf("vm:image: %v", err)
	}
	if err := v.Destroy(ctx); err != nil {
		t.Fatalf("vm:destroy before the test: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("serial console tail:\n%s", vm.ConsoleTail(v.Config().ConsoleLogPath(), 30))
		}
		if err := v.Destroy(context.Background()); err != nil {
			t.Errorf("vm:destroy at cleanup: %v", err)
		}
	})

	// 2. Deploy into it under TCG.
	first, err := d.Deploy(ctx)
	if err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	if first.Changed() == 0 {
		t.Errorf("first deploy into a fresh VM reported changed=0, want changes")
	}
	host, _, err := net.SplitHostPort(first.Target)
	if err != nil {
		t.Fatal(err)
	}

	// 3. From the host: the page and /clock on port 80, and the API's port closed.
	r, err := verify.Clock(ctx, nil, "http://"+host, 5*time.Second)
	if err != nil {
		t.Errorf("check from the host: %v", err)
	} else {
		t.Logf("http://%s/clock = %.4f (%s from this host)", host, r.Clock, r.Skew.Round(time.Millisecond))
		// A fresh guest reads its RTC in whole seconds and was about 1.15s behind before
		// deploy set its clock; the clock it serves must be right, not just plausible.
		if r.Skew.Abs() > 500*time.Millisecond {
			t.Errorf("the VM's clock is %s off this host's, want under 500ms: deploy sets it", r.Skew.Round(time.Millisecond))
		}
	}
	if err := verify.Closed(ctx, net.JoinHostPort(host, "8000")); err != nil {
		t.Errorf("the API must not be published: %v", err)
	}

	// 4. Over SSH: non-root, read-only root filesystem, restart policy.
	key, err := sshx.LoadKey(filepath.Join(cfg.StateDir, "ssh", sshx.KeyName))
	if err != nil {
		t.Fatal(err)
	}
	target := sshx.Target{Addr: first.Target, User: "root", Signer: key.Signer, KnownHosts: filepath.Join(cfg.StateDir, "ssh", "known_hosts")}
	res, err := sshx.Run(ctx, target, "docker inspect --format '{{.Name}} {{.Config.User}} {{.HostConfig.ReadonlyRootfs}} {{.HostConfig.RestartPolicy.Name}} {{.State.Running}}' clock-api clock-web")
	if err != nil {
		t.Fatalf("docker inspect over SSH: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(res.Stdout)), "\n")
	if len(lines) != 2 {
		t.Fatalf("docker inspect gave %q, want two containers", res.Stdout)
	}
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) != 5 {
			t.Errorf("docker inspect line %q: want name, user, read-only, restart policy, running", line)
			continue
		}
		name, user, ro, restart, running := f[0], f[1], f[2], f[3], f[4]
		if uid, _, _ := strings.Cut(user, ":"); uid == "" || uid == "0" || uid == "root" {
			t.Errorf("%s runs as user %q, want a non-root UID", name, user)
		}
		if ro != "true" {
			t.Errorf("%s ReadonlyRootfs = %s, want true", name, ro)
		}
		if restart != "unless-stopped" {
			t.Errorf("%s restart policy = %q, want unless-stopped", name, restart)
		}
		if running != "true" {
			t.Errorf("%s is not running", name)
		}
	}

	// 5. A second deploy changes nothing.
	second, err := d.Deploy(ctx)
	if err != nil {
		t.Fatalf("second deploy: %v", err)
	}
	if second.Changed() != 0 {
		t.Errorf("second deploy reported changed=%d, want 0: %s", second.Changed(), second.Recap)
	}
	t.Logf("cold deploy %s, no-change deploy %s", first.Took.Round(time.Second), second.Took.Round(time.Second))
	for _, p := range first.Phases {
		t.Logf("  cold: %-38s %s", p.Name, p.Took.Round(100*time.Millisecond))
	}
	for _, p := range second.Phases {
		t.Logf("  warm: %-38s %s", p.Name, p.Took.Round(100*time.Millisecond))
	}

	// 6. stop stops the serving and leaves the VM running.
	if _, err := d.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := verify.Closed(ctx, net.JoinHostPort(host, "80")); err != nil {
		t.Errorf("after stop: %v", err)
	}
	if state, err := v.State(ctx); err != nil || state != "running" {
		t.Errorf("after stop the VM is %q (%v), want running", state, err)
	}

	// 7. vm:destroy leaves nothing defined.
	if err := v.Destroy(ctx); err != nil {
		t.Fatalf("vm:destroy: %v", err)
	}
	out, err := exec.CommandContext(ctx, "virsh", "--connect", cfg.LibvirtURI, "list", "--all", "--name").Output()
	if err != nil {
		t.Fatalf("virsh list: %v", err)
	}
	if slices.Contains(strings.Fields(string(out)), testVMName) {
		t.Errorf("after vm:destroy virsh still lists %s", testVMName)
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, "vm", testVMName+".qcow2")); !os.IsNotExist(err) {
		t.Errorf("after vm:destroy the overlay is still there (%v)", err)
	}
}
