//go:build vmtest

package vm_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/clock-app/clock/internal/ansible"
	"github.com/clock-app/clock/internal/config"
)

// interruptAt is the task whose start the interrupted deploy waits for: the one right after
// daemon.json is written, so the interrupted run leaves a Docker restart pending and the
// next deploy must still make it.
const interruptAt = "TASK [docker : Start Docker and enable it at boot]"

// runnerContainers lists the Ansible runner containers on this daemon as "name pid" lines.
func runnerContainers(ctx context.Context, t *vmT) []string {
	t.Helper()
	out, err := exec.CommandContext(ctx, "docker", "ps", "--all", "--filter", "label="+ansible.LabelRunner,
		"--format", `{{.Names}} {{.Label "`+ansible.LabelPID+`"}}`).Output()
	if err != nil {
		t.Fatalf("docker ps: %v", err)
	}
	return strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(out)), " ", "/"))
}

// interruptDeploy runs `go run mage.go deploy` for the test VM as a user would, sends SIGINT
// to its process group (what Ctrl-C does) once Ansible has reached interruptAt, and checks
// that it ends promptly and leaves no runner container behind.
func interruptDeploy(ctx context.Context, t *vmT, root string, cfg config.Config) {
	before := runnerContainers(ctx, t)
	cmd := exec.CommandContext(ctx, "go", "run", "mage.go", "deploy")
	cmd.Dir = root
	cmd.Env = append(os.Environ(),
		"CLOCK_STATE_DIR="+cfg.StateDir, "CLOCK_VM_NAME="+cfg.VMName, "CLOCK_VM_MAC="+cfg.VMMAC,
		"CLOCK_VM_ACCEL="+cfg.VMAccel, "CLOCK_VM_IMAGE=", "CLOCK_VM_KEY=", "CLOCK_VM_USER="+cfg.VMUser,
		"CLOCK_TARGET_HOST=", "CLOCK_HTTP_PORT="+strconv.Itoa(cfg.HTTPPort))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Should the test end first, the whole group goes, not just `go run`.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("go run mage.go deploy: %v", err)
	}
	reached := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		seen := false
		for sc.Scan() {
			fmt.Printf("    [interrupted deploy %5.0fs] %s\n", time.Since(start).Seconds(), sc.Text())
			if !seen && strings.Contains(sc.Text(), interruptAt) {
				seen = true
				close(reached)
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); pw.Close() }()

	select {
	case <-reached:
	case err := <-exited:
		t.Fatalf("the deploy to interrupt ended (%v) before Ansible reached %q", err, interruptAt)
	case <-ctx.Done():
		t.Fatalf("the deploy to interrupt never reached %q: %v", interruptAt, ctx.Err())
	}
	sent := time.Now()
	t.Logf("SIGINT to the deploy's process group at %s, when Ansible started %q",
		sent.Sub(start).Round(time.Second), interruptAt)
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatalf("SIGINT: %v", err)
	}
	select {
	case err := <-exited:
		t.Logf("the interrupted deploy exited %s after SIGINT: %v", time.Since(sent).Round(100*time.Millisecond), err)
		if err == nil {
			t.Errorf("the interrupted deploy exited 0, want a failure")
		}
	case <-time.After(time.Minute):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		t.Fatalf("the deploy was still running a minute after SIGINT")
	}
	var left []string
	for _, c := range runnerContainers(ctx, t) {
		if !slices.Contains(before, c) {
			left = append(left, c)
		}
	}
	t.Logf("runner containers left by the interrupted deploy: %d %q", len(left), left)
	if len(left) > 0 {
		t.Errorf("the interrupted deploy left runner containers %q: its ansible-playbook may still run", left)
	}
}
