//go:build vmtest

package vm_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/clock-app/clock/internal/sshx"
	"github.com/clock-app/clock/internal/verify"
	"github.com/clock-app/clock/internal/vmimage"
)

// The bare host has its own VM name and MAC, beside the main test's.
const (
	bareVMName = "clock-vmbare"
	bareVMMAC  = "52:54:00:c0:e9:bf"
)

// TestDeployBareHost deploys to a minimal Debian 12 with only openssh-server and python3 (no
// python3-apt, no Docker), as a user's own host or the classic exercise's VM would be: the
// bootstrap brings python3-apt and the docker role installs Docker, which our own image
// comes with. It is the cold deploy on a bare host.
func TestDeployBareHost(tt *testing.T) {
	t := summarized(tt)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Minute)
	defer cancel()
	d, _ := testDeployer(ctx, t, bareVMName, bareVMMAC, "")
	cfg := d.Cfg
	key, err := sshx.EnsureKey(cfg.State().Key())
	if err != nil {
		t.Fatal(err)
	}
	t.Step("the minimal image: Debian without Python or Docker")
	image := cfg.State().MinimalImage(cfg.VMSuite)
	t0 := time.Now()
	built, err := vmimage.Build(ctx, vmimage.Options{Output: image, PublicKey: key.AuthorizedKey, Packages: vmimage.MinimalPackages, Logf: t.Logf})
	if err != nil {
		t.Fatalf("building the minimal image: %v", err)
	}
	t.Logf("minimal image %s (built %v) in %s", image, built, time.Since(t0).Round(time.Second))
	d, v := testDeployer(ctx, t, bareVMName, bareVMMAC, image)
	cfg = d.Cfg
	if err := v.Destroy(ctx); err != nil {
		t.Fatalf("vm:destroy before the test: %v", err)
	}
	destroyAtCleanup(t, v)

	t.Step("cold deploy to a bare host")
	sum, err := d.Deploy(ctx)
	if err != nil {
		t.Fatalf("deploy to the bare host: %v", err)
	}
	t.Logf("STEP %-40s %7s (goal 6m on our image; this is the bare host's)", "cold deploy to a bare host", sum.Took.Round(time.Second))
	for _, p := range sum.Phases {
		t.Logf("  bare: %-38s %s", p.Name, p.Took.Round(100*time.Millisecond))
	}
	host := strings.Split(sum.Target, ":")[0]
	if _, err := verify.Clock(ctx, nil, "http://"+host, 5*time.Second); err != nil {
		t.Errorf("the bare host does not serve the clock: %v", err)
	}
	target := sshx.Target{Addr: sum.Target, User: "root", Signer: key.Signer, KnownHosts: cfg.State().KnownHosts()}
	res, err := sshx.Run(ctx, target, "python3 -c 'import apt' && dpkg-query -W -f '${Status}' docker.io")
	if err != nil {
		t.Errorf("python3-apt and docker.io on the bare host: %v", err)
	} else {
		t.Logf("on the bare host: %s", strings.TrimSpace(string(res.Stdout)))
	}
	liveVersion(ctx, t, target, d.Meta.Version, cfg.Replicas)
}
