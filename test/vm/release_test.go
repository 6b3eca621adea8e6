//go:build vmtest

package vm_test

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/clock-app/clock/internal/config"
	"github.com/clock-app/clock/internal/sshx"
	"github.com/clock-app/clock/internal/verify"
)

// checkHardening inspects every container of the clock over SSH: the 2×replicas instances
// and the two pods run as a non-root user on a read-only root with the restart policy; the
// instances also with a CPU limit, a stop timeout above the drain, and GOMEMLIMIT.
func checkHardening(ctx context.Context, t *vmT, target sshx.Target, replicas int) {
	t.Helper()
	res, err := sshx.Run(ctx, target, "docker inspect --format '{{.Name}} {{index .Config.Labels \"clock.role\"}} {{.Config.User}} {{.HostConfig.ReadonlyRootfs}} "+
		"{{.HostConfig.RestartPolicy.Name}} {{.State.Running}} {{.HostConfig.NanoCpus}} {{with index .Config \"StopTimeout\"}}{{.}}{{else}}0{{end}} {{len .HostConfig.CapDrop}} "+
		"{{range .Config.Env}}{{if eq (index (split . \"=\") 0) \"GOMEMLIMIT\"}}{{.}}{{end}}{{end}}' $(docker ps --all --quiet --filter label=clock.role)")
	if err != nil {
		t.Fatalf("docker inspect over SSH: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(res.Stdout)), "\n")
	instances := 0
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) < 9 {
			t.Errorf("docker inspect line %q: want name, role, user, read-only, restart, running, CPUs, stop timeout, cap-drop count[, GOMEMLIMIT]", line)
			continue
		}
		name, role, user, ro, restart, running := f[0], f[1], f[2], f[3], f[4], f[5]
		t.Logf("%s (%s): user %s, read-only %s, restart %s, running %s, NanoCpus %s, stop timeout %s, cap-drop %s %s", name, role, user, ro, restart, running, f[6], f[7], f[8], strings.Join(f[9:], ""))
		if uid, _, _ := strings.Cut(user, ":"); uid == "" || uid == "0" || uid == "root" {
			t.Errorf("%s runs as user %q, want a non-root UID", name, user)
		}
		if ro != "true" || restart != "unless-stopped" || running != "true" || f[8] != "1" {
			t.Errorf("%s: read-only %s, restart %s, running %s, cap-drop entries %s: want true, unless-stopped, true, 1 (ALL)", name, ro, restart, running, f[8])
		}
		if role != "instance" {
			continue
		}
		instances++
		if f[6] == "0" {
			t.Errorf("%s has no CPU limit", name)
		}
		// The services drain for up to SHUTDOWN_TIMEOUT (at most 20s); Docker must wait longer.
		if st, err := strconv.Atoi(f[7]); err != nil || st <= 20 {
			t.Errorf("%s stop timeout = %q, want over 20s", name, f[7])
		}
		if len(f) < 10 || !strings.HasPrefix(f[9], "GOMEMLIMIT=") {
			t.Errorf("%s has no GOMEMLIMIT", name)
		}
	}
	if instances != 2*replicas || len(lines) != 2*replicas+2 {
		t.Errorf("%d containers of which %d instances, want %d instances and 2 pods", len(lines), instances, 2*replicas)
	}
}

// checkHost: the Docker restart the interrupted deploy left pending happened (live-restore
// is only in daemon.json), dpkg is whole, and no LLMNR/mDNS responder listens.
func checkHost(ctx context.Context, t *vmT, target sshx.Target) {
	t.Helper()
	res, err := sshx.Run(ctx, target, "docker info --format '{{.LiveRestoreEnabled}}'; dpkg --audit | wc -l; ss -H -lntu")
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
}

// liveVersion checks that exactly the replicas of each service run, all of version.
func liveVersion(ctx context.Context, t *vmT, target sshx.Target, version string, replicas int) {
	t.Helper()
	for _, p := range instanceProblems(ctx, t, target, version, replicas) {
		t.Errorf("%s", p)
	}
}

// liveVersionWithin is liveVersion after a reboot: Docker starts the instances it can, and
// the clock role's boot unit (`clockctl repair`) those that could not join their pod yet, so
// they are given until within to all run. It prints how long that took.
func liveVersionWithin(ctx context.Context, t *vmT, target sshx.Target, version string, replicas int, within time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		problems := instanceProblems(ctx, t, target, version, replicas)
		if len(problems) == 0 {
			t.Logf("all %d instances of %s run %s after /clock answered", 2*replicas, version, time.Since(start).Round(100*time.Millisecond))
			return
		}
		if time.Since(start) > within {
			for _, p := range problems {
				t.Errorf("%s after %s", p, within)
			}
			return
		}
		time.Sleep(2 * time.Second)
	}
}

// instanceProblems lists how the target's instances differ from replicas of each service
// running version.
func instanceProblems(ctx context.Context, t *vmT, target sshx.Target, version string, replicas int) []string {
	t.Helper()
	res, err := sshx.Run(ctx, target, `docker ps --filter label=clock.role=instance --format '{{.Names}} {{.Label "clock.version"}} {{.State}}'`)
	if err != nil {
		t.Fatalf("docker ps over SSH: %v", err)
	}
	var problems []string
	lines := strings.Split(strings.TrimSpace(string(res.Stdout)), "\n")
	for _, l := range lines {
		if f := strings.Fields(l); len(f) != 3 || f[1] != version || f[2] != "running" {
			problems = append(problems, fmt.Sprintf("instance %q: want version %s running", l, version))
		}
	}
	if len(lines) != 2*replicas {
		problems = append(problems, fmt.Sprintf("%d instances run (%q), want %d", len(lines), lines, 2*replicas))
	}
	return problems
}

// stopOneWeb stops one clock-web instance with docker stop, which Docker remembers: it will
// not start it at the next boot.
func stopOneWeb(ctx context.Context, t *vmT, target sshx.Target) {
	t.Helper()
	res, err := sshx.Run(ctx, target, `name=$(docker ps --filter label=clock.service=web --filter label=clock.role=instance --format '{{.Names}}' | head -1)`+
		` && docker stop "$name"`)
	if err != nil {
		t.Fatalf("docker stop of a clock-web instance: %q, %v", res.Stdout, err)
	}
	t.Logf("stopped %s before the reboot", strings.TrimSpace(string(res.Stdout)))
}

// killOneOfEach kill -9s the process of one instance of each service, as a crash or the OOM
// killer would, and counts what the poller saw until Docker brought it back.
func killOneOfEach(ctx context.Context, t *vmT, target sshx.Target, base string) {
	t.Helper()
	for _, svc := range []string{"api", "web"} {
		res, err := sshx.Run(ctx, target, `docker ps --filter label=clock.service=`+svc+` --filter label=clock.role=instance --format '{{.Names}}' | head -1`)
		name := strings.TrimSpace(string(res.Stdout))
		if err != nil || name == "" {
			t.Fatalf("finding an instance of %s: %q, %v", svc, res.Stdout, err)
		}
		p := verify.Poll(base, 4, 200*time.Millisecond)
		t0 := time.Now()
		if _, err := sshx.Run(ctx, target, "kill -9 $(docker inspect --format '{{.State.Pid}}' "+name+")"); err != nil {
			t.Fatalf("kill -9 %s: %v", name, err)
		}
		var back time.Duration
		for time.Since(t0) < 2*time.Minute {
			res, err := sshx.Run(ctx, target, "docker inspect --format '{{.State.Running}} {{.RestartCount}}' "+name)
			if err == nil && strings.HasPrefix(string(res.Stdout), "true") && !strings.HasPrefix(string(res.Stdout), "true 0") {
				back = time.Since(t0)
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		time.Sleep(2 * time.Second)
		st := p.Stop()
		t.Logf("STEP kill -9 of %-28s back after %s; poller: %s", name, back.Round(100*time.Millisecond), st)
		if back == 0 {
			t.Errorf("%s was not restarted within 2 minutes of kill -9", name)
		}
		if st.Failed > st.Conns {
			t.Errorf("kill -9 %s: %d failed requests over %d connections, want at most one per connection", name, st.Failed, st.Conns)
		}
	}
}

// rebootGoal is issue #9's goal for a reboot until the clock serves, under TCG. It is printed
// beside the time taken, as every step's goal is, and not asserted: the same reboot took
// 1m32s to 2m05s on this kind of host, and more than 2m30s when the host ran slower.
// rebootBound is the assertion: the clock must come back with no manual step at all.
const (
	rebootGoal  = 150 * time.Second
	rebootBound = 6 * time.Minute
)

// rebootAndWait reboots the VM with virsh and waits until the clock answers again.
func rebootAndWait(ctx context.Context, t *vmT, cfg config.Config, host string) {
	t.Helper()
	t0 := time.Now()
	if out, err := exec.CommandContext(ctx, "virsh", "--connect", cfg.LibvirtURI, "reboot", cfg.VMName).CombinedOutput(); err != nil {
		t.Fatalf("virsh reboot: %v %s", err, out)
	}
	// Until the guest goes down, the old boot still answers: wait for a refusal first.
	wctx, cancel := context.WithTimeout(ctx, rebootBound)
	defer cancel()
	for wctx.Err() == nil {
		if _, err := verify.Clock(wctx, nil, "http://"+host, 5*time.Second); err != nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	r, err := verify.Wait(wctx, "http://"+host, 5*time.Second)
	t.Logf("STEP %-40s %7s (goal %s): %v", "virsh reboot until /clock answers", time.Since(t0).Round(time.Second), rebootGoal, errOr(err, fmt.Sprintf("%.3f", r.Clock)))
	if err != nil {
		t.Errorf("after virsh reboot the clock did not serve within %s: %v", rebootBound, err)
	}
}

func errOr(err error, ok string) string {
	if err != nil {
		return err.Error()
	}
	return ok
}
