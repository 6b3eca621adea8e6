package bench

import (
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestMemFromStatus(t *testing.T) {
	// A real /proc/<pid>/status of a `cp` (Linux 6.x).
	fields, err := parseStatus(strings.NewReader(readTestdata(t, "proc-status.txt")))
	if err != nil {
		t.Fatal(err)
	}
	peak, cur, err := memFromStatus(fields)
	if err != nil {
		t.Fatal(err)
	}
	if peak != 2100*1024 || cur != 2100*1024 {
		t.Errorf("got peak %d, current %d, want %d for both", peak, cur, 2100*1024)
	}
	if got, want := fields["Cpus_allowed_list"], "0-1"; got != want {
		t.Errorf("Cpus_allowed_list: got %q, want %q", got, want)
	}
}

func TestMemFromStatusErrors(t *testing.T) {
	tests := []struct{ name, status, want string }{
		// Kernel threads have no Vm* lines; a zombie neither.
		{"kernel thread", readTestdata(t, "proc-status-kthread.txt"), "no VmHWM field"},
		{"bad unit", "VmHWM:\t 12 MB\nVmRSS:\t 1 kB\n", `want a value in kB`},
		{"bad number", "VmHWM:\t x kB\nVmRSS:\t 1 kB\n", "invalid syntax"},
		{"no rss", "VmHWM:\t 1 kB\n", "no VmRSS field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fields, err := parseStatus(strings.NewReader(tt.status))
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = memFromStatus(fields)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestReadMemWithChildren(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	// sh with a child sleep: the sum must exceed the shell alone.
	cmd := exec.Command("sh", "-c", "sleep 30 & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, k := range mustChildren(t, cmd.Process.Pid) {
			if p, err := os.FindProcess(k); err == nil {
				p.Kill()
			}
		}
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(5 * time.Second)
	for len(mustChildren(t, cmd.Process.Pid)) == 0 { // the shell forks right after start
		if time.Now().After(deadline) {
			t.Fatal("sh started no child within 5s")
		}
	}
	alone, err := readMem("sh", cmd.Process.Pid, false)
	if err != nil {
		t.Fatal(err)
	}
	both, err := readMem("sh", cmd.Process.Pid, true)
	if err != nil {
		t.Fatal(err)
	}
	if alone.Peak == 0 || both.Peak <= alone.Peak || both.Current <= alone.Current {
		t.Errorf("alone %+v, with child %+v: want the child added", alone, both)
	}
}

func mustChildren(t testing.TB, pid int) []int {
	t.Helper()
	kids, err := childPIDs(pid)
	if err != nil {
		t.Fatal(err)
	}
	return kids
}

func TestParseCPUList(t *testing.T) {
	tests := []struct {
		in   string
		want []int
		bad  bool
	}{
		{in: "0-1", want: []int{0, 1}},
		{in: "0", want: []int{0}},
		{in: "0-2,5,7-8\n", want: []int{0, 1, 2, 5, 7, 8}},
		{in: "", bad: true},
		{in: "3-1", bad: true},
		{in: "a", bad: true},
	}
	for _, tt := range tests {
		got, err := parseCPUList(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("%q: got %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: got %v, %v, want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseCPUStat(t *testing.T) {
	// The head of a real /proc/stat of this 2-CPU guest (Linux 6.1).
	stat := `cpu  1152064 2190 1002981 9331402 14823 0 66117 177210 0 0
cpu0 571102 1062 495811 4675512 7280 0 23085 86905 0 0
cpu1 580962 1128 507170 4655890 7543 0 43032 90305 0 0
intr 242001233 0 9 0 0 0 0 0 0 0 0 0 0 0 0 0
`
	got, err := parseCPUStat(strings.NewReader(stat), 1)
	if err != nil {
		t.Fatal(err)
	}
	want := cpuTimes{Steal: 90305, Total: 580962 + 1128 + 507170 + 4655890 + 7543 + 0 + 43032 + 90305, Idle: 4655890 + 7543}
	if got != want {
		t.Errorf("cpu1 = %+v, want %+v", got, want)
	}
	// "cpu1" must not match "cpu10".
	if _, err := parseCPUStat(strings.NewReader("cpu10 1 2 3 4 5 6 7 8 0 0\n"), 1); err == nil ||
		!strings.Contains(err.Error(), "no line for CPU 1") {
		t.Errorf("cpu1 in a stat with only cpu10: err %v, want no line for CPU 1", err)
	}
	if _, err := parseCPUStat(strings.NewReader("cpu1 1 2 3\n"), 1); err == nil {
		t.Error("a short cpu line parsed without error")
	}

	if s := stealShare(cpuTimes{Steal: 10, Total: 1000}, cpuTimes{Steal: 60, Total: 1500}); s != 0.1 {
		t.Errorf("stealShare = %v, want 0.1 (50 of 500 jiffies)", s)
	}
	if s := stealShare(cpuTimes{Total: 5}, cpuTimes{Total: 5}); s != -1 {
		t.Errorf("stealShare over no time = %v, want -1", s)
	}
}

func TestReadCPUStat(t *testing.T) {
	a, err := readCPUStat(0)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	b, err := readCPUStat(0)
	if err != nil {
		t.Fatal(err)
	}
	if b.Total < a.Total || b.Steal < a.Steal || a.Total == 0 {
		t.Errorf("CPU 0 times went from %+v to %+v, want non-zero and growing", a, b)
	}
}

func TestParseProcTicks(t *testing.T) {
	for _, tc := range []struct {
		name, stat string
		want       uint64
	}{
		{"real", readTestdata(t, "proc-pid-stat-after.txt"), 44 + 3},
		// The command name is the process's to choose: spaces and ')' in it
		// must not shift the fields.
		{"odd name", "42 (a) b (c)) S 1 42 42 0 -1 4194560 10 0 0 0 123 45 6 7 20 0 3 0 100 1000 50 1 2 3\n", 123 + 45},
	} {
		got, err := ProcTicks(tc.stat)
		if err != nil || got != tc.want {
			t.Errorf("%s: ProcTicks = %d, %v; want %d", tc.name, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "42 no parens S 1 2", "42 (x) S 1 2 3", "42 (x) S 1 42 42 0 -1 0 10 0 0 0 abc 45 6"} {
		if _, err := ProcTicks(bad); err == nil {
			t.Errorf("ProcTicks(%q) = nil error", bad)
		}
	}
}

// TestCPUArithmetic takes a real pair of /proc/stat and /proc/<pid>/stat
// samples, a busy loop pinned to CPU 1 for about a second on a shared
// host, through the sums the bench does.
func TestCPUArithmetic(t *testing.T) {
	stat := func(name string) cpuTimes {
		t.Helper()
		c, err := parseCPUStat(strings.NewReader(readTestdata(t, name)), 1)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ticks := func(name string) uint64 {
		t.Helper()
		n, err := ProcTicks(readTestdata(t, name))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	cpuA, cpuB := stat("proc-stat-before.txt"), stat("proc-stat-after.txt")
	own := ticks("proc-pid-stat-after.txt") - ticks("proc-pid-stat-before.txt")
	if own != 40 {
		t.Fatalf("own ticks = %d, want 47 - 7 = 40", own)
	}
	// cpu1 went from 120528 101 45142 75198 1421 0 5837 348 to
	// 120636 101 45178 75198 1421 0 5838 348: never idle, so over 1.6 s
	// (160 ticks) of wall, 40 ticks ours, the other 120 went to others.
	if got, want := otherShare(cpuA, cpuB, own, 1600*time.Millisecond), 120.0/160; got != want {
		t.Errorf("otherShare = %v, want %v", got, want)
	}
	if got := stealShare(cpuA, cpuB); got != 0 {
		t.Errorf("stealShare = %v, want 0", got)
	}
	// 40 ticks are 400 ms; over 10,000 requests, 40 µs each.
	r := Result{Requests: 10000, Servers: []Proc{{CPU: ticksToDuration(own)}}}
	if got := r.CPUPerRequest(0); got != 40*time.Microsecond {
		t.Errorf("CPU per request = %v, want 40µs", got)
	}
	if got := r.CPUPerRequest(1); got != 0 {
		t.Errorf("CPU per request of a missing upstream = %v, want 0", got)
	}
	if got := (Result{Servers: r.Servers}).CPUPerRequest(0); got != 0 {
		t.Errorf("CPU per request with no requests = %v, want 0", got)
	}
}

func TestOtherShare(t *testing.T) {
	a := cpuTimes{Idle: 500, Steal: 10, Total: 1000}
	for _, tc := range []struct {
		name string
		b    cpuTimes
		own  uint64
		wall time.Duration
		want float64
	}{
		// 100 ticks of wall: 60 ours, 20 idle, 20 others.
		{"others", cpuTimes{Idle: 520, Total: 1100}, 60, time.Second, 0.2},
		{"only ours", cpuTimes{Idle: 520, Total: 1100}, 80, time.Second, 0},
		// The CPU's busy columns lost ticks (Total grew by 70 in 100 ticks
		// of wall): the wall clock still says what others took.
		{"lost ticks", cpuTimes{Idle: 530, Total: 1070}, 50, time.Second, 0.2},
		// Process times and idle are read a moment apart: a little over the
		// wall is sampling error, not negative work.
		{"ours and idle over the wall", cpuTimes{Idle: 530, Total: 1100}, 75, time.Second, 0},
		{"no time", a, 0, 0, -1},
	} {
		if got := otherShare(a, tc.b, tc.own, tc.wall); got != tc.want {
			t.Errorf("%s: otherShare = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestReadProcTicks(t *testing.T) {
	own, err := readProcTicks(os.Getpid(), false)
	if err != nil {
		t.Fatal(err)
	}
	// Burn CPU until the kernel has charged us at least one more tick;
	// bounded so a broken reading fails instead of hanging.
	deadline := time.Now().Add(10 * time.Second)
	for now := own; now == own; {
		if time.Now().After(deadline) {
			t.Fatalf("ticks stayed at %d through 10 s of spinning", own)
		}
		for i := 0; i < 1e6; i++ {
			_ = i * i
		}
		if now, err = readProcTicks(os.Getpid(), false); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := readProcTicks(-1, false); err == nil {
		t.Error("readProcTicks(-1) = nil error")
	}
}
