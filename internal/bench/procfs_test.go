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
	want := cpuTimes{Steal: 90305, Total: 580962 + 1128 + 507170 + 4655890 + 7543 + 0 + 43032 + 90305}
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
