package deploy

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clock-app/clock/internal/lock"
	"github.com/clock-app/clock/internal/sshx"
)

func TestSecondDeployOfThisMachineRefuses(t *testing.T) {
	c := testConfig(t)
	var out bytes.Buffer
	first := &Deployer{Cfg: c, Out: &out}
	held, err := first.lockHere("deploy")
	if err != nil {
		t.Fatal(err)
	}
	_, err = (&Deployer{Cfg: c, Out: &out}).lockHere("stop")
	want := "lock: this machine: another deploy holds the lock on this machine (" + filepath.Join(c.StateDir, "deploy.lock") + ") since "
	if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), ", deploy); wait for it: the lock ends with that process") {
		t.Fatalf("got %v, want %q... naming the holder", err, want)
	}
	held.release(context.Background())
	again, err := (&Deployer{Cfg: c, Out: &out}).lockHere("stop")
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	again.release(context.Background())
}

// shTarget runs the remote lock's scripts with /bin/sh here, in a temporary folder.
type shTarget struct{}

func (shTarget) Run(ctx context.Context, cmd string) ([]byte, error) {
	return exec.CommandContext(ctx, "/bin/sh", "-c", cmd).Output()
}

func TestTargetLockRefusesWithHintAndCtrlCReleases(t *testing.T) {
	r := lock.Remote{Run: shTarget{}, Where: "192.168.122.5", Path: filepath.Join(t.TempDir(), "lock")}
	var out bytes.Buffer
	d := &Deployer{Cfg: testConfig(t), Out: &out}
	first, err := d.lockHere("deploy")
	if err != nil {
		t.Fatal(err)
	}
	if err := first.onTarget(context.Background(), r); err != nil {
		t.Fatal(err)
	}

	// Another operator's machine: its own state folder, the same target.
	other, err := (&Deployer{Cfg: testConfig(t), Out: &out}).lockHere("deploy")
	if err != nil {
		t.Fatal(err)
	}
	err = other.onTarget(context.Background(), r)
	if !errors.As(err, new(*lock.HeldError)) || !strings.HasPrefix(err.Error(), "lock: 192.168.122.5: another deploy holds the lock on 192.168.122.5 since ") ||
		!strings.HasSuffix(err.Error(), "; wait for it, or if it is dead run: go run mage.go unlock") {
		t.Fatalf("got %v, want the refusal with the holder and the unlock hint", err)
	}
	other.release(context.Background())

	// Ctrl-C cancels the deploy's context; the release must still reach the target.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	first.release(ctx)
	if _, err := os.Stat(r.Path); !os.IsNotExist(err) {
		t.Fatalf("the target's lock is still there after a cancelled deploy's release: %v\n%s", err, out.String())
	}
	if strings.Contains(out.String(), "warning") {
		t.Errorf("release warned:\n%s", out.String())
	}
}

func TestRemoteLockOfATarget(t *testing.T) {
	for _, tt := range []struct {
		t        sshx.Target
		where    string
		wantSudo bool
	}{
		{sshx.Target{Addr: "192.168.122.5:22", User: "root"}, "192.168.122.5", false},
		{sshx.Target{Addr: "[fd00::5]:2222", User: "debian"}, "fd00::5", true},
	} {
		r := remoteLock(tt.t, &conn{t: tt.t})
		if r.Where != tt.where || r.Sudo != tt.wantSudo || r.Path != lock.RemotePath {
			t.Errorf("remoteLock(%+v) = %+v, want where %q, sudo %v, path %s", tt.t, r, tt.where, tt.wantSudo, lock.RemotePath)
		}
	}
}

func TestUnlockRefusesWhileADeployOfThisMachineRuns(t *testing.T) {
	c := testConfig(t)
	var out bytes.Buffer
	held, err := (&Deployer{Cfg: c, Out: &out}).lockHere("deploy")
	if err != nil {
		t.Fatal(err)
	}
	defer held.release(context.Background())
	// The refusal comes before any target is looked for: this config has none running.
	err = (&Deployer{Cfg: c, Out: &out}).Unlock(context.Background())
	if !errors.As(err, new(*lock.HeldError)) || !strings.Contains(err.Error(), ", deploy); wait for it") {
		t.Fatalf("got %v, want a refusal naming the running deploy", err)
	}
}

func TestTargetLockOfADeadRunOfThisMachineIsTakenOver(t *testing.T) {
	r := lock.Remote{Run: shTarget{}, Where: "192.168.122.5", Path: filepath.Join(t.TempDir(), "lock")}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name     string
		pid      int
		takeOver bool
	}{
		{"killed run", dead.Process.Pid, true},
		{"live run", os.Getpid(), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stale := lock.Me("deploy")
			if stale.PIDSpace == "" {
				t.Skip("no boot_id or PID namespace readable here")
			}
			stale.PID = tt.pid
			if err := r.Take(context.Background(), stale); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Clear(context.Background()) })
			var out bytes.Buffer
			l, err := (&Deployer{Cfg: testConfig(t), Out: &out}).lockHere("deploy")
			if err != nil {
				t.Fatal(err)
			}
			defer l.release(context.Background())
			err = l.onTarget(context.Background(), r)
			if tt.takeOver {
				if err != nil || !strings.Contains(out.String(), "taking over the lock of a dead run") {
					t.Fatalf("got %v, want the dead run's lock taken over\n%s", err, out.String())
				}
				return
			}
			if !errors.As(err, new(*lock.HeldError)) {
				t.Fatalf("got %v, want the live holder's refusal", err)
			}
		})
	}
}
