//go:build vmtest

// Package vm_test deploys the clock into a fresh local VM and checks it the way a user and
// an operator would. It boots a real VM, so it only builds with -tags vmtest: run it with
// `go run mage.go test:vm`, which is part of `go run mage.go test`.
package vm_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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

	"github.com/clock-app/clock/internal/bench"
	"github.com/clock-app/clock/internal/config"
	"github.com/clock-app/clock/internal/deploy"
	"github.com/clock-app/clock/internal/images"
	"github.com/clock-app/clock/internal/localvm"
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

func TestDeployVM(tt *testing.T) {
	t := summarized(tt)
	// It took 30.4 min on a slow day (3585674), beside the bare host's 13.3: the bound leaves
	// room for a slower one inside go test's 70m.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Minute)
	defer cancel()
	d, v := testDeployer(ctx, t, testVMName, testVMMAC, "")
	root, cfg := d.Root, d.Cfg

	// The image (cached across runs), then a fresh VM: whatever an earlier run left goes.
	t.Step("the base image and a fresh VM")
	if err := localvm.Image(ctx, d.Cfg, os.Stdout); err != nil {
		t.Fatalf("vm:image: %v", err)
	}
	if err := v.Destroy(ctx); err != nil {
		t.Fatalf("vm:destroy before the test: %v", err)
	}
	destroyAtCleanup(t, v)

	// A deploy as a user runs it, interrupted with Ctrl-C halfway through Ansible, then the
	// deploy under TCG that must finish what it left: Docker restarted with daemon.json,
	// dpkg whole, no runner container left.
	t.Step("first deploy, after one interrupted with Ctrl-C")
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

	// From the host: the page and /clock on port 80, and the API's port closed.
	t.Step("the clock from the host")
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

	// From the host, only SSH and the clock answer: every TCP port and the common UDP ones.
	t.Step("port scan from the host")
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

	// Over SSH: every instance and pod non-root, read-only, restart policy; instances
	// with CPU, stop timeout and GOMEMLIMIT.
	t.Step("hardening over SSH")
	key, err := sshx.LoadKey(cfg.State().Key())
	if err != nil {
		t.Fatal(err)
	}
	target := sshx.Target{Addr: first.Target, User: "root", Signer: key.Signer, KnownHosts: cfg.State().KnownHosts()}
	checkHardening(ctx, t, target, cfg.Replicas)
	checkHost(ctx, t, target)

	// With a poller on the host sending 20 GET /clock a second through every step: the
	// release steps of issue #9, each with its failed requests.
	t.Step("releases under a poller")
	base := "http://" + host
	stepRun := func(name string, limit time.Duration, f func() error) time.Duration {
		t.Helper()
		t.Step(name)
		p := verify.Poll(base, 4, 200*time.Millisecond)
		t0 := time.Now()
		err := f()
		took := time.Since(t0)
		time.Sleep(2 * time.Second) // what follows a switch counts too
		st := p.Stop()
		t.Logf("STEP %-40s %7s (goal %s); poller: %s", name, took.Round(100*time.Millisecond), limit, st)
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if st.Failed > 0 {
			t.Errorf("%s: %d of %d requests failed, want 0", name, st.Failed, st.Sent)
		}
		return took
	}
	firstVersion := d.Meta.Version

	stepRun("redeploy, nothing changed", 20*time.Second, func() error {
		sum, err := d.Deploy(ctx)
		if err == nil && (sum.Changed() != 0 || sum.Playbook != "") {
			err = fmt.Errorf("changed=%d, playbook run for %q: want neither", sum.Changed(), sum.Playbook)
		}
		return err
	})
	stepRun("redeploy, CLOCK_CONVERGE=full", 5*time.Minute, func() error {
		d.Cfg.Converge = "full"
		defer func() { d.Cfg.Converge = "auto" }()
		sum, err := d.Deploy(ctx)
		if err == nil && (sum.Changed() != 0 || sum.Recap == nil) {
			err = fmt.Errorf("changed=%d (recap %s): want a playbook run that changes nothing", sum.Changed(), sum.Recap)
		}
		return err
	})
	stepRun("redeploy, both services changed", 60*time.Second, func() error {
		d.Meta.Version = "vmtest-2"
		sum, err := d.Deploy(ctx)
		if err == nil && (!sum.Release.Changed || sum.Release.Retired != 2*cfg.Replicas || sum.Loaded != 2) {
			err = fmt.Errorf("release %+v, %d images loaded: want a switch that loaded 2 and retired %d", sum.Release, sum.Loaded, 2*cfg.Replicas)
		}
		return err
	})
	liveVersion(ctx, t, target, "vmtest-2", cfg.Replicas)
	stepRun("a release that cannot become healthy", 60*time.Second, func() error {
		d.Meta.Version, d.Cfg.APILogLevel = "vmtest-bad", "loud" // clock-api exits 2 at start
		defer func() { d.Meta.Version, d.Cfg.APILogLevel = "vmtest-2", "info" }()
		_, err := d.Deploy(ctx)
		t.Logf("the refused deploy said: %v", err)
		if err == nil || !strings.Contains(err.Error(), "is not healthy: clock-api-") || !strings.Contains(err.Error(), "CLOCK_API_LOG_LEVEL") {
			return fmt.Errorf("got %v, want a failure naming the clock-api instance with its log", err)
		}
		return nil
	})
	liveVersion(ctx, t, target, "vmtest-2", cfg.Replicas)
	stepRun("rollback", 30*time.Second, func() error {
		res, err := d.Rollback(ctx)
		if err == nil && res.Version != firstVersion {
			err = fmt.Errorf("rolled back to %s, want %s", res.Version, firstVersion)
		}
		return err
	})
	liveVersion(ctx, t, target, firstVersion, cfg.Replicas)
	d.Meta.Version = firstVersion // what is live again: later deploys change nothing of it
	t.Step("releases lists what the steps left")
	var rel bytes.Buffer
	d.Out = &rel
	if err := d.Releases(ctx); err != nil {
		t.Errorf("releases: %v", err)
	}
	d.Out = os.Stdout
	t.Logf("go run mage.go releases:\n%s", rel.String())
	for _, want := range []string{"live       " + firstVersion, "previous   vmtest-2", "failed     vmtest-bad"} {
		if !strings.Contains(rel.String(), want) {
			t.Errorf("releases lack %q", want)
		}
	}
	t.Step("kill -9 of one instance of each service")
	killOneOfEach(ctx, t, target, base)

	// A package dpkg did not finish configuring, as a killed run can leave (zstd: it has
	// no maintainer scripts, so configuring it costs nothing): the probe sees it, and the
	// playbook repairs it while the live release keeps serving.
	t.Step("repair of a half-configured dpkg")
	if _, err := sshx.Run(ctx, target, "sed -i '/^Package: zstd$/,/^$/ s/^Status: install ok installed$/Status: install ok half-configured/' /var/lib/dpkg/status"+
		" && dpkg --audit | grep -q zstd"); err != nil {
		t.Fatalf("half-configuring zstd over SSH: %v", err)
	}
	stepRun("redeploy after a half-configured dpkg", 5*time.Minute, func() error {
		sum, err := d.Deploy(ctx)
		if err == nil && (sum.Recap.Changed() != 1 || sum.Release.Changed) {
			err = fmt.Errorf("playbook changed=%d (%s), release changed %v: want the repair alone", sum.Recap.Changed(), sum.Recap, sum.Release.Changed)
		}
		return err
	})
	if res, err := sshx.Run(ctx, target, "dpkg --audit | wc -l"); err != nil || strings.TrimSpace(string(res.Stdout)) != "0" {
		t.Errorf("after the repairing deploy dpkg --audit says %q (%v), want nothing", res.Stdout, err)
	}

	// Another operator's deploy holds the target's lock: deploy, rollback and stop refuse
	// at once, name the holder, and the clock keeps serving.
	t.Step("another operator holds the lock")
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
		{"rollback", func() error { _, err := d.Rollback(ctx); return err }},
		{"stop", func() error { _, err := d.Stop(ctx); return err }},
	} {
		start := time.Now()
		err := run.do()
		t.Logf("%s while another operator holds the lock: refused in %s: %v", run.name, time.Since(start).Round(100*time.Millisecond), err)
		if !errors.As(err, new(*lock.HeldError)) || !strings.Contains(err.Error(), other.String()) {
			t.Errorf("%s while the lock is held: got %v, want a refusal naming %s", run.name, err, other)
		}
	}
	if _, err := verify.Clock(ctx, nil, base, 5*time.Second); err != nil {
		t.Errorf("after the refused deploy, rollback and stop: %v", err)
	}
	if holder, cleared, err := remote.Clear(ctx); err != nil || !cleared || holder == nil || *holder != other {
		t.Fatalf("clearing the other operator's lock: holder %v, cleared %v, %v", holder, cleared, err)
	}

	// virsh reboot: the clock serves again with no manual step, every instance included.
	// One clock-web is stopped first, as Docker's start at boot leaves an instance whose pod
	// was not running yet: Docker starts no stopped container of an unless-stopped policy,
	// so only the boot's repair can bring it back.
	t.Step("virsh reboot with one instance down")
	stopOneWeb(ctx, t, target)
	rebootAndWait(ctx, t, cfg, host)
	liveVersionWithin(ctx, t, target, firstVersion, cfg.Replicas, time.Minute)
	if res, err := sshx.Run(ctx, target, "journalctl --boot --no-pager --output cat --identifier clockctl"); err == nil {
		t.Logf("the boot's clockctl repair said:\n%s", res.Stdout)
	}

	// Stop stops the serving and leaves the VM running.
	t.Step("stop")
	if _, err := d.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := verify.Closed(ctx, net.JoinHostPort(host, "80")); err != nil {
		t.Errorf("after stop: %v", err)
	}
	if state, err := v.State(ctx); err != nil || state != "running" {
		t.Errorf("after stop the VM is %q (%v), want running", state, err)
	}

	// vm:down shuts it down, a second vm:down has nothing to do, and vm:destroy leaves
	// nothing defined.
	t.Step("vm:down and vm:destroy")
	t0 := time.Now()
	if err := v.Down(ctx); err != nil {
		t.Errorf("vm:down: %v", err)
	}
	if state, err := v.State(ctx); err != nil || state != vm.StateShutOff {
		t.Errorf("after vm:down the VM is %q (%v), want shut off", state, err)
	}
	t.Logf("vm:down took %s", time.Since(t0).Round(100*time.Millisecond))
	if err := v.Down(ctx); err != nil {
		t.Errorf("vm:down of a VM that is off: %v", err)
	}
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
	if _, err := os.Stat(cfg.State().Overlay(testVMName)); !os.IsNotExist(err) {
		t.Errorf("after vm:destroy the overlay is still there (%v)", err)
	}
}

// hostView is what this host sees of a VM: the domain's state and its reason; each thread's
// CPU use of its emulator over two seconds (vCPU threads busy: the guest runs; all idle: it
// waits, or the emulator is stuck) with each vCPU's instruction pointer and halt flag before
// and after; the neighbour entry of its address (FAILED: no ARP answer); the DHCP leases.
func hostView(v *vm.VM) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := v.Config()
	var b strings.Builder
	run := func(name string, args ...string) string {
		out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
		if err != nil {
			return fmt.Sprintf("%s %s: %v %s", name, strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	virsh := func(args ...string) string { return run("virsh", append([]string{"--connect", cfg.URI}, args...)...) }
	registers := func() string {
		var lines []string
		for _, l := range strings.Split(virsh("qemu-monitor-command", "--hmp", cfg.Name, "info registers -a"), "\n") {
			if strings.HasPrefix(l, "CPU#") || strings.Contains(l, "HLT=") { // the line of RIP (EIP before long mode)
				lines = append(lines, strings.TrimSpace(l))
			}
		}
		return strings.Join(lines, " ")
	}
	fmt.Fprintf(&b, "  domstate: %s\n", virsh("domstate", "--reason", cfg.Name))
	pidFile := "/run/libvirt/qemu/" + cfg.Name + ".pid"
	if pid, err := os.ReadFile(pidFile); err == nil {
		task := "/proc/" + strings.TrimSpace(string(pid)) + "/task"
		before, regs := threadTicks(task), registers()
		time.Sleep(2 * time.Second)
		after := threadTicks(task)
		fmt.Fprintf(&b, "  emulator threads, %% of a CPU over 2s:")
		for _, tid := range slices.Sorted(maps.Keys(after)) {
			// Every vCPU, and any other thread that ran.
			if a, ok := before[tid]; ok && (after[tid].ticks > a.ticks || strings.HasPrefix(a.comm, "CPU ")) {
				fmt.Fprintf(&b, " %s %d%%", after[tid].comm, (after[tid].ticks-a.ticks)/2)
			}
		}
		fmt.Fprintf(&b, "\n  vCPUs before: %s\n  vCPUs after:  %s\n", regs, registers())
	} else {
		fmt.Fprintf(&b, "  emulator: %v\n", err)
	}
	if ip, err := v.IP(ctx); err == nil {
		fmt.Fprintf(&b, "  neighbour: %s\n", run("ip", "neigh", "show", ip))
	}
	fmt.Fprintf(&b, "  leases:\n%s", virsh("net-dhcp-leases", cfg.Network))
	return b.String()
}

// threadCPU is a thread's name and the CPU time it has used, in clock ticks.
type threadCPU struct {
	comm  string
	ticks uint64
}

// threadTicks is each thread's name and CPU time (user + system, in clock ticks: 1/100 s)
// under a /proc/<pid>/task folder.
func threadTicks(task string) map[string]threadCPU {
	m := map[string]threadCPU{}
	dirs, _ := os.ReadDir(task)
	for _, d := range dirs {
		stat, err := os.ReadFile(filepath.Join(task, d.Name(), "stat"))
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join(task, d.Name(), "comm"))
		if err != nil {
			continue
		}
		if ticks, err := bench.ProcTicks(string(stat)); err == nil {
			m[d.Name()] = threadCPU{strings.TrimSpace(string(comm)), ticks}
		}
	}
	return m
}

// sshCommand runs the lock's commands on the test VM, as the deploy does.
type sshCommand struct{ t sshx.Target }

func (c sshCommand) Run(ctx context.Context, cmd string) ([]byte, error) {
	res, err := sshx.Run(ctx, c.t, cmd)
	return res.Stdout, err
}

// destroyAtCleanup destroys v when the test ends. After a failure it first logs what this
// host sees of the VM (hostView) and the tail of its serial console, as they are when the
// test ends: after a fatal failure that is right away. Twice a guest stopped answering with
// a silent console (ci50 mid-release; a CI run of 3c8c4e7 after the reboot, which had got its
// DHCP lease): no ARP answer for minutes, and nothing on the record to tell a frozen
// emulator from a guest whose network died.
func destroyAtCleanup(t *vmT, v *vm.VM) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("VM %s when the failed test ended:\n%s\nserial console tail:\n%s", v.Config().Name,
				hostView(v), vm.ConsoleTail(v.Config().ConsoleLogPath(), 60))
		}
		if err := v.Destroy(context.Background()); err != nil {
			t.Errorf("vm:destroy at cleanup: %v", err)
		}
	})
}

// testDeployer is the deploy of the repo to a test VM of its own name and MAC, from our image
// or the given one (logged in with the generated key), under TCG with the default release
// knobs, sharing the state folder so images are built once; v is its VM.
func testDeployer(ctx context.Context, t *vmT, name, mac, image string) (*deploy.Deployer, *vm.VM) {
	t.Helper()
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
	cfg.VMName, cfg.VMMAC, cfg.VMAccel = name, mac, "tcg"
	cfg.VMImage, cfg.VMKey, cfg.VMUser = "", "", "root"
	if image != "" {
		cfg.VMImage, cfg.VMKey = image, cfg.State().Key()
	}
	cfg.TargetHost, cfg.HTTPPort = "", 80
	cfg.Replicas, cfg.HealthTimeout, cfg.KeepReleases, cfg.Converge = 2, time.Minute, 3, "auto"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	d := &deploy.Deployer{Cfg: cfg, Root: root, Out: os.Stdout, Meta: images.Describe(ctx, root)}
	v, err := localvm.Open(cfg, root, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	return d, v
}
