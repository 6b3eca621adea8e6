package lock

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// holdEnv makes the test binary, re-executed, a process that holds the lock at its value
// until its standard input closes.
const holdEnv = "LOCK_TEST_HOLD"

func TestMain(m *testing.M) {
	if path := os.Getenv(holdEnv); path != "" {
		l, err := TakeLocal(path, Me("child"))
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("held")
		bufio.NewReader(os.Stdin).ReadString('\n')
		l.Release()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func testHolder(target string) Holder {
	return Holder{Who: "root@ci-host", PID: 4123, Target: target, Since: time.Date(2026, 12, 1, 9, 12, 3, 0, time.UTC)}
}

func TestHolderRoundTrip(t *testing.T) {
	for _, h := range []Holder{testHolder("deploy"), {Who: `o'brien@"odd host"`, PID: 1, Target: "stop", Since: time.Unix(0, 0).UTC()}, Me("rollback")} {
		got, err := ParseHolder(h.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		if !got.Since.Equal(h.Since) || got.Who != h.Who || got.PID != h.PID || got.Target != h.Target {
			t.Errorf("round trip of %+v gave %+v", h, got)
		}
		if strings.Contains(string(h.Marshal()), "\n") {
			t.Errorf("record %q has a newline; the remote lock compares it as one line", h.Marshal())
		}
	}
	if _, err := ParseHolder([]byte("")); err == nil {
		t.Error("an empty record parsed")
	}
}

func TestMe(t *testing.T) {
	h := Me("deploy")
	if h.PID != os.Getpid() || h.Target != "deploy" || !strings.Contains(h.Who, "@") {
		t.Errorf("Me = %+v, want this pid, target deploy, user@host", h)
	}
	if h.Since.Location() != time.UTC || time.Since(h.Since) > time.Minute {
		t.Errorf("Since = %v, want now in UTC", h.Since)
	}
}

func TestHeldErrorMessage(t *testing.T) {
	h := testHolder("deploy")
	for _, tt := range []struct {
		err  *HeldError
		want string
	}{
		{&HeldError{Where: "192.168.122.5", Holder: &h}, "another deploy holds the lock on 192.168.122.5 since 2026-12-01T09:12:03Z (root@ci-host pid 4123, deploy)"},
		{&HeldError{Where: "192.168.122.5"}, "another deploy holds the lock on 192.168.122.5 (its holder is not recorded yet)"},
	} {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

func TestLocalInOneProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "deploy.lock")
	first, err := TakeLocal(path, testHolder("deploy"))
	if err != nil {
		t.Fatal(err)
	}
	// flock is per open file description: a second open conflicts even in this process.
	_, err = TakeLocal(path, testHolder("stop"))
	var held *HeldError
	if !errors.As(err, &held) || held.Holder == nil || *held.Holder != testHolder("deploy") {
		t.Fatalf("second take: got %v, want a HeldError naming the first holder", err)
	}
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	again, err := TakeLocal(path, testHolder("stop"))
	if err != nil {
		t.Fatalf("take after release: %v", err)
	}
	defer again.Release()
	b, _ := os.ReadFile(path)
	if h, err := ParseHolder(b); err != nil || h.Target != "stop" {
		t.Errorf("the file holds %q, want the new holder's record only", b)
	}
}

func TestLocalAcrossProcesses(t *testing.T) {
	for _, end := range []string{"release", "kill -9"} {
		t.Run(end, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "deploy.lock")
			child, stdin := holdInChild(t, path)

			_, err := TakeLocal(path, Me("deploy"))
			var held *HeldError
			if !errors.As(err, &held) || held.Holder == nil || held.Holder.PID != child.Process.Pid || held.Holder.Target != "child" {
				t.Fatalf("got %v, want a HeldError naming pid %d", err, child.Process.Pid)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("%q does not name the lock file", err)
			}

			if end == "release" {
				stdin.Close()
			} else {
				// The kernel drops the flock of a dead process: no stale local lock.
				child.Process.Kill()
			}
			child.Wait()
			l, err := TakeLocal(path, Me("deploy"))
			if err != nil {
				t.Fatalf("after the child's %s: %v", end, err)
			}
			l.Release()
		})
	}
}

// holdInChild starts the test binary as a process that holds the lock at path, and returns
// once it holds it.
func holdInChild(t *testing.T, path string) (*exec.Cmd, interface{ Close() error }) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if line != "held\n" {
		t.Fatalf("child said %q (%v), want held", line, err)
	}
	return cmd, stdin
}

// shRunner runs the lock's commands with /bin/sh on this machine: the scripts are the real
// ones, only the SSH hop is missing.
type shRunner struct{ calls int }

func (r *shRunner) Run(ctx context.Context, cmd string) ([]byte, error) {
	r.calls++
	out, err := exec.CommandContext(ctx, "/bin/sh", "-c", cmd).Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return out, fmt.Errorf("%w: %s", err, exit.Stderr)
		}
	}
	return out, err
}

func newRemote(t *testing.T) (Remote, *shRunner) {
	r := &shRunner{}
	return Remote{Run: r, Where: "192.168.122.5", Path: filepath.Join(t.TempDir(), "var", "lib", "clock", "lock")}, r
}

func TestRemoteOutcomes(t *testing.T) {
	a, b := testHolder("deploy"), Me("stop")
	type step struct {
		name string
		do   func(context.Context, Remote) error
		want string // "" for success, else a part of the error
	}
	take := func(h Holder) func(context.Context, Remote) error {
		return func(ctx context.Context, r Remote) error { return r.Take(ctx, h) }
	}
	release := func(h Holder) func(context.Context, Remote) error {
		return func(ctx context.Context, r Remote) error { return r.Release(ctx, h) }
	}
	for _, tt := range []struct {
		name  string
		steps []step
	}{
		{"free, then taken, then refused naming the holder", []step{
			{"a takes", take(a), ""},
			{"b is refused", take(b), "another deploy holds the lock on 192.168.122.5 since 2026-12-01T09:12:03Z (root@ci-host pid 4123, deploy)"},
			{"a is refused too", take(a), "since 2026-12-01T09:12:03Z"},
		}},
		{"release makes it free", []step{
			{"a takes", take(a), ""},
			{"a releases", release(a), ""},
			{"b takes", take(b), ""},
		}},
		{"release leaves another holder's lock", []step{
			{"b takes", take(b), ""},
			{"a releases", release(a), "no longer ours"},
			{"a is refused", take(a), b.Who},
		}},
		{"release of a cleared lock", []step{
			{"a takes", take(a), ""},
			{"unlock clears it", func(ctx context.Context, r Remote) error {
				h, cleared, err := r.Clear(ctx)
				if err == nil && (!cleared || h == nil || *h != a) {
					err = fmt.Errorf("Clear = %v, %v; want a's record, true", h, cleared)
				}
				return err
			}, ""},
			{"a's release says so", release(a), "cleared while we held it"},
			{"b takes", take(b), ""},
		}},
		{"clear of a free lock", []step{
			{"unlock finds none", func(ctx context.Context, r Remote) error {
				h, cleared, err := r.Clear(ctx)
				if err == nil && (cleared || h != nil) {
					err = fmt.Errorf("Clear = %v, %v; want nil, false", h, cleared)
				}
				return err
			}, ""},
			{"a takes", take(a), ""},
		}},
		{"a lock without its record yet", []step{
			{"a holder between mkdir and its record", func(ctx context.Context, r Remote) error {
				return os.MkdirAll(r.Path, 0o700)
			}, ""},
			{"b is refused", take(b), "its holder is not recorded yet"},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := newRemote(t)
			ctx := context.Background()
			for _, s := range tt.steps {
				err := s.do(ctx, r)
				switch {
				case s.want == "" && err != nil:
					t.Fatalf("%s: %v", s.name, err)
				case s.want != "" && (err == nil || !strings.Contains(err.Error(), s.want)):
					t.Fatalf("%s: got %v, want an error with %q", s.name, err, s.want)
				}
			}
		})
	}
}

func TestRemoteHeldIsTyped(t *testing.T) {
	r, runs := newRemote(t)
	ctx := context.Background()
	if err := r.Take(ctx, testHolder("deploy")); err != nil {
		t.Fatal(err)
	}
	before := runs.calls
	err := r.Take(ctx, Me("deploy"))
	var held *HeldError
	if !errors.As(err, &held) || held.Holder == nil || *held.Holder != testHolder("deploy") {
		t.Fatalf("got %v, want a *HeldError with the first record", err)
	}
	if runs.calls-before != 1 {
		t.Errorf("a refusal took %d commands, want 1: it must be at once", runs.calls-before)
	}
	if fi, err := os.Stat(r.Path); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("lock dir: %v, %v; want mode 0700", fi, err)
	}
}

func TestRemoteTakeFailsOnABadParent(t *testing.T) {
	r, _ := newRemote(t)
	parent := filepath.Dir(r.Path)
	if err := os.MkdirAll(filepath.Dir(parent), 0o755); err != nil {
		t.Fatal(err)
	}
	// A file where the lock's folder should be: mkdir fails, and not as "held".
	if err := os.WriteFile(parent, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := r.Take(context.Background(), Me("deploy"))
	var held *HeldError
	if err == nil || errors.As(err, &held) || !strings.Contains(err.Error(), "take the deploy lock") {
		t.Fatalf("got %v, want a failure to take the lock that is not a refusal", err)
	}
}

func TestRemoteSudoWrapsTheScript(t *testing.T) {
	r, _ := newRemote(t)
	var got string
	r.Sudo = true
	r.Run = runFunc(func(_ context.Context, cmd string) ([]byte, error) { got = cmd; return []byte("taken\n"), nil })
	if err := r.Take(context.Background(), Me("deploy")); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got, "sudo -n sh -c '") {
		t.Errorf("command %q, want it run through sudo -n sh -c", got)
	}
	// The wrapped command must still be one valid script: run it without the sudo.
	out, err := exec.Command("/bin/sh", "-c", strings.TrimPrefix(got, "sudo -n ")).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "taken" {
		t.Errorf("unwrapped: %q, %v; want taken", out, err)
	}
	if _, err := os.Stat(filepath.Join(r.Path, "holder")); err != nil {
		t.Error(err)
	}
}

type runFunc func(context.Context, string) ([]byte, error)

func (f runFunc) Run(ctx context.Context, cmd string) ([]byte, error) { return f(ctx, cmd) }

func TestRemoteOneWinnerOfARace(t *testing.T) {
	r, _ := newRemote(t)
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		go func() {
			errs <- r.Take(context.Background(), Holder{Who: "op@m" + strconv.Itoa(i), PID: i, Target: "deploy"})
		}()
	}
	won := 0
	for range n {
		err := <-errs
		var held *HeldError
		switch {
		case err == nil:
			won++
		case !errors.As(err, &held):
			t.Errorf("a loser got %v, want a HeldError", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d concurrent takes won, want exactly 1", won, n)
	}
}

func TestHolderDead(t *testing.T) {
	// A process of this PID space that has exited: its PID is free until reused.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	gone := cmd.Process.Pid
	me := Me("deploy")
	if me.PIDSpace == "" {
		t.Skip("no boot_id or PID namespace readable here")
	}
	for _, tt := range []struct {
		name string
		h    Holder
		want bool
	}{
		{"exited process, same space", Holder{PID: gone, PIDSpace: me.PIDSpace}, true},
		{"live process, same space", Holder{PID: os.Getpid(), PIDSpace: me.PIDSpace}, false},
		{"exited PID, another machine or container", Holder{PID: gone, PIDSpace: "other-boot/pid:[1]"}, false},
		{"a record of an older version, no space", Holder{PID: gone}, false},
		{"no PID", Holder{PIDSpace: me.PIDSpace}, false},
	} {
		if got := tt.h.Dead(); got != tt.want {
			t.Errorf("%s: Dead() = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestLocalInAFreshStateFolder is the first deploy of a fresh clone: no .state yet.
func TestLocalInAFreshStateFolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".state", "deploy.lock")
	l, err := TakeLocal(path, testHolder("deploy"))
	if err != nil {
		t.Fatalf("TakeLocal in a state folder that does not exist yet: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
}
