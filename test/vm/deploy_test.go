//go:build vmtest

// Package vm_test deploys the clock into a fresh local VM and checks it the way a user and
// an operator would. It boots a real VM, so it only builds with -tags vmtest: run it with
// `go run mage.go test:vm`, which is part of `go run mage.go test`.
package vm_test

import (
	"context"
	"errors"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clock-app/clock/internal/ansible"
	"github.com/clock-app/clock/internal/config"
	"github.com/clock-app/clock/internal/deploy"
	"github.com/clock-app/clock/internal/images"
	"github.com/clock-app/clock/internal/lock"
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

	// 2. A deploy as a user runs it, interrupted with Ctrl-C halfway through Ansible, then the
	// deploy under TCG that must finish what it left: Docker restarted with daemon.json,
	// dpkg whole, no runner container left.
	interruptDeploy(ctx, t, root, cfg)
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
	for _, c := range runnerContainers(ctx, t) {
		if strings.HasPrefix(c, "clock-ansible-"+strconv.Itoa(os.Getpid())+"-") {
			t.Errorf("runner container %s outlived its deploy", c)
		}
	}

	// 3b. From the host, only SSH and the clock answer: every TCP port and the common UDP ones.
	scan := scanTCP(ctx, host)
	t.Logf("TCP scan of ports 1-65535 of %s: open %v, %d refused, %d no answer in %s; took %s",
		host, scan.Open, scan.Refused, scan.Filtered, scanTimeout, scan.Took.Round(time.Second))
	if want := []int{22, cfg.HTTPPort}; !slices.Equal(scan.Open, want) {
		t.Errorf("open TCP ports of the VM = %v, want exactly %v", scan.Open, want)
	}
	udp := probeUDP(ctx, host)
	ports := slices.Sorted(maps.Keys(udp))
	for _, p := range ports {
		t.Logf("UDP %5d: %s", p, udp[p])
		if udp[p] == "open" {
			t.Errorf("UDP port %d of the VM answers, want no UDP service reachable", p)
		}
	}

	// 4. Over SSH: non-root, read-only root filesystem, restart policy.
	key, err := sshx.LoadKey(filepath.Join(cfg.StateDir, "ssh", sshx.KeyName))
	if err != nil {
		t.Fatal(err)
	}
	target := sshx.Target{Addr: first.Target, User: "root", Signer: key.Signer, KnownHosts: filepath.Join(cfg.StateDir, "ssh", "known_hosts")}
	res, err := sshx.Run(ctx, target, "docker inspect --format '{{.Name}} {{.Config.User}} {{.HostConfig.ReadonlyRootfs}} {{.HostConfig.RestartPolicy.Name}} {{.State.Running}} "+
		"{{.HostConfig.NanoCpus}} {{.Config.StopTimeout}} "+
		"{{range .Config.Env}}{{if eq (index (split . \"=\") 0) \"GOMEMLIMIT\"}}{{.}}{{end}}{{end}}' clock-api clock-web")
	if err != nil {
		t.Fatalf("docker inspect over SSH: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(res.Stdout)), "\n")
	if len(lines) != 2 {
		t.Fatalf("docker inspect gave %q, want two containers", res.Stdout)
	}
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) != 8 {
			t.Errorf("docker inspect line %q: want name, user, read-only, restart policy, running, CPUs, stop timeout, GOMEMLIMIT", line)
			continue
		}
		name, user, ro, restart, running := f[0], f[1], f[2], f[3], f[4]
		t.Logf("%s: user %s, read-only %s, restart %s, running %s, NanoCpus %s, stop timeout %ss, %s", name, user, ro, restart, running, f[5], f[6], f[7])
		if f[5] == "0" {
			t.Errorf("%s has no CPU limit", name)
		}
		// The services drain for up to SHUTDOWN_TIMEOUT (at most 20s); Docker must wait longer.
		if st, err := strconv.Atoi(f[6]); err != nil || st <= 20 {
			t.Errorf("%s stop timeout = %q, want over 20s", name, f[6])
		}
		if !strings.HasPrefix(f[7], "GOMEMLIMIT=") {
			t.Errorf("%s has no GOMEMLIMIT", name)
		}
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

	// The restart the interrupted deploy left pending happened (live-restore is only in
	// daemon.json), dpkg is whole, and no LLMNR/mDNS responder listens.
	res, err = sshx.Run(ctx, target, "docker info --format '{{.LiveRestoreEnabled}}'; dpkg --audit | wc -l; ss -H -lntu")
	if err != nil {
		t.Fatalf("docker info, dpkg --audit, ss over SSH: %v", err)
	}
	outLines := strings.Split(strings.TrimSpace(string(res.Stdout)), "\n")
	t.Logf("in the VM: live-restore %s, dpkg --audit lines %s; listeners:\n%s", outLines[0], outLines[1], strings.Join(outLines[2:], "\n"))
	if outLines[0] != "true" {
		t.Errorf("dockerd runs with live-restore %q: the Docker restart the interrupted deploy left pending was lost", outLines[0])
	}
	if outLines[1] != "0" {
		t.Errorf("dpkg --audit reports problems after the deploy")
	}
	for _, l := range outLines[2:] {
		if f := strings.Fields(l); len(f) >= 5 && (strings.HasSuffix(f[4], ":5355") || strings.HasSuffix(f[4], ":5353")) {
			t.Errorf("the VM listens on %s (LLMNR/mDNS): %s", f[4], l)
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

	// 5b. What a killed run can leave behind, made on purpose: a package dpkg did not finish
	// configuring (zstd: it has no maintainer scripts, so configuring it costs nothing), and clock-api's tag on another image than its archive's while the copy on
	// the VM is unchanged (only the ID comparison notices). The next deploy repairs both.
	apiRef, webRef := images.Services[0].Ref(d.Meta.Version), images.Services[1].Ref(d.Meta.Version)
	if _, err := sshx.Run(ctx, target, "sed -i '/^Package: zstd$/,/^$/ s/^Status: install ok installed$/Status: install ok half-configured/' /var/lib/dpkg/status"+
		" && dpkg --audit | grep -q zstd && docker tag "+webRef+" "+apiRef); err != nil {
		t.Fatalf("half-configuring zstd and retagging %s over SSH: %v", apiRef, err)
	}
	third, err := d.Deploy(ctx)
	if err != nil {
		t.Fatalf("deploy after a half-configured dpkg and a moved tag: %v", err)
	}
	t.Logf("deploy after a half-configured dpkg and a moved tag: changed=%d in %s", third.Changed(), third.Took.Round(time.Second))
	// The dpkg repair and clock-api's load; the container already runs the archive's image.
	if third.Changed() != 2 {
		t.Errorf("deploy after a half-configured dpkg and a moved tag: changed=%d, want 2 (repair, load): %s", third.Changed(), third.Recap)
	}
	wantID, err := ansible.ArchiveImageID(filepath.Join(ansible.ImagesDir(cfg.StateDir), ansible.APIArchive))
	if err != nil {
		t.Fatal(err)
	}
	res, err = sshx.Run(ctx, target, "dpkg --audit | wc -l; docker image inspect --format '{{.Id}}' "+apiRef)
	if err != nil {
		t.Fatalf("dpkg --audit, docker image inspect over SSH: %v", err)
	}
	if got := strings.Fields(string(res.Stdout)); len(got) != 2 || got[0] != "0" || got[1] != wantID {
		t.Errorf("after the repairing deploy: dpkg --audit lines, %s ID = %q, want 0 and %s", apiRef, got, wantID)
	}

	// 5c. Another operator's deploy holds the target's lock: deploy and stop refuse at once,
	// name the holder, and the clock keeps serving.
	remote := lock.Remote{Run: sshCommand{target}, Where: host, Path: lock.RemotePath}
	other := lock.Holder{Who: "ops@other-machine", PID: 4123, Target: "deploy", Since: time.Now().UTC().Truncate(time.Second)}
	if err := remote.Take(ctx, other); err != nil {
		t.Fatalf("taking the target's lock as another operator: %v", err)
	}
	for _, run := range []struct {
		name string
		do   func() error
	}{
		{"deploy", func() error { _, err := d.Deploy(ctx); return err }},
		{"stop", func() error { _, err := d.Stop(ctx); return err }},
	} {
		start := time.Now()
		err := run.do()
		t.Logf("%s while another operator holds the lock: refused in %s: %v", run.name, time.Since(start).Round(100*time.Millisecond), err)
		if !errors.As(err, new(*lock.HeldError)) || !strings.Contains(err.Error(), other.String()) {
			t.Errorf("%s while the lock is held: got %v, want a refusal naming %s", run.name, err, other)
		}
	}
	if _, err := verify.Clock(ctx, nil, "http://"+host, 5*time.Second); err != nil {
		t.Errorf("after the refused deploy and stop: %v", err)
	}
	if holder, cleared, err := remote.Clear(ctx); err != nil || !cleared || holder == nil || *holder != other {
		t.Fatalf("clearing the other operator's lock: holder %v, cleared %v, %v", holder, cleared, err)
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

// sshCommand runs the lock's commands on the test VM, as the deploy does.
type sshCommand struct{ t sshx.Target }

func (c sshCommand) Run(ctx context.Context, cmd string) ([]byte, error) {
	res, err := sshx.Run(ctx, c.t, cmd)
	return res.Stdout, err
}
