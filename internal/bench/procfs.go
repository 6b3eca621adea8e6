package bench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Mem is the resident memory of one server process, read from
// /proc/<pid>/status right after its load run.
type Mem struct {
	Process string // "clock-api", "clock-web", "barehttp", "nginx"
	Peak    uint64 // bytes, VmHWM: the high-water mark since start
	Current uint64 // bytes, VmRSS
}

// parseStatus splits /proc/<pid>/status into its "Key:\tvalue" fields.
func parseStatus(r io.Reader) (map[string]string, error) {
	fields := make(map[string]string)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields[k] = strings.TrimSpace(v)
	}
	return fields, sc.Err()
}

// statusKiB reads a "<n> kB" field of /proc/<pid>/status as bytes.
func statusKiB(fields map[string]string, key string) (uint64, error) {
	v, ok := fields[key]
	if !ok {
		return 0, fmt.Errorf("no %s field (kernel thread or exited process?)", key)
	}
	num, unit, _ := strings.Cut(v, " ")
	if unit != "kB" {
		return 0, fmt.Errorf("%s: %q: want a value in kB", key, v)
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %q: %w", key, v, err)
	}
	return n * 1024, nil
}

// memFromStatus extracts peak and current RSS from a parsed status file.
func memFromStatus(fields map[string]string) (peak, current uint64, err error) {
	if peak, err = statusKiB(fields, "VmHWM"); err != nil {
		return 0, 0, err
	}
	if current, err = statusKiB(fields, "VmRSS"); err != nil {
		return 0, 0, err
	}
	return peak, current, nil
}

func readStatus(pid int) (map[string]string, error) {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseStatus(f)
}

// readMem measures pid and, with withChildren, adds its direct children
// (nginx's worker next to its master). The sum of peaks is an upper bound:
// the processes need not have peaked at the same moment.
func readMem(name string, pid int, withChildren bool) (Mem, error) {
	pids := []int{pid}
	if withChildren {
		kids, err := childPIDs(pid)
		if err != nil {
			return Mem{}, err
		}
		pids = append(pids, kids...)
	}
	m := Mem{Process: name}
	for _, p := range pids {
		fields, err := readStatus(p)
		if err != nil {
			return Mem{}, fmt.Errorf("%s (pid %d): %w", name, p, err)
		}
		peak, cur, err := memFromStatus(fields)
		if err != nil {
			return Mem{}, fmt.Errorf("%s (pid %d): /proc status: %w", name, p, err)
		}
		m.Peak += peak
		m.Current += cur
	}
	return m, nil
}

// childPIDs lists the processes whose parent is pid. It scans /proc, since
// /proc/<pid>/task/<tid>/children needs a kernel option.
func childPIDs(pid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	want := strconv.Itoa(pid)
	var kids []int
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil || n == pid {
			continue
		}
		fields, err := readStatus(n)
		if err != nil {
			continue // it exited while we looked
		}
		if fields["PPid"] == want {
			kids = append(kids, n)
		}
	}
	return kids, nil
}

// parseCPUList reads a kernel CPU list such as "0-3,6,8-9".
func parseCPUList(s string) ([]int, error) {
	var cpus []int
	for _, part := range strings.Split(strings.TrimSpace(s), ",") {
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("cpu list %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return nil, fmt.Errorf("cpu list %q: %w", s, err)
			}
		}
		if a < 0 || b < a {
			return nil, fmt.Errorf("cpu list %q: bad range %q", s, part)
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	if len(cpus) == 0 {
		return nil, fmt.Errorf("cpu list %q is empty", s)
	}
	return cpus, nil
}

// allowedCPUs is the set of CPUs this process may run on.
func allowedCPUs() ([]int, error) {
	fields, err := readStatus(os.Getpid())
	if err != nil {
		return nil, err
	}
	return parseCPUList(fields["Cpus_allowed_list"])
}

// cpuTimes is one "cpuN" line of /proc/stat: the jiffies a CPU has spent in
// each state since boot.
type cpuTimes struct {
	Steal, Total uint64
	// Idle is idle + iowait. With a tickless kernel it is measured, while
	// the busy columns are sampled at each tick, and on this kind of VM a
	// third of those ticks go missing under network load (a loaded CPU's
	// columns can add up to 2 s in 3): only idle is trusted beside the
	// wall clock.
	Idle uint64
}

// parseCPUStat finds the line of CPU cpu in a /proc/stat and returns its
// steal and total time (user nice system idle iowait irq softirq steal; the
// guest columns are already counted in user and nice).
func parseCPUStat(r io.Reader, cpu int) (cpuTimes, error) {
	prefix := "cpu" + strconv.Itoa(cpu) + " "
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		f := strings.Fields(line)[1:]
		if len(f) < 8 {
			return cpuTimes{}, fmt.Errorf("/proc/stat: %q: want at least 8 times", line)
		}
		var t cpuTimes
		for i, v := range f[:8] {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return cpuTimes{}, fmt.Errorf("/proc/stat: %q: %w", line, err)
			}
			t.Total += n
			switch i {
			case 3, 4:
				t.Idle += n
			case 7:
				t.Steal = n
			}
		}
		return t, nil
	}
	if err := sc.Err(); err != nil {
		return cpuTimes{}, err
	}
	return cpuTimes{}, fmt.Errorf("/proc/stat: no line for CPU %d", cpu)
}

// readCPUStat reads CPU cpu's times from /proc/stat.
func readCPUStat(cpu int) (cpuTimes, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return cpuTimes{}, err
	}
	defer f.Close()
	return parseCPUStat(f, cpu)
}

// stealShare is the fraction of the time between a and b that the
// hypervisor gave the CPU to other guests; -1 when nothing was counted.
func stealShare(a, b cpuTimes) float64 {
	if b.Total <= a.Total || b.Steal < a.Steal {
		return -1
	}
	return float64(b.Steal-a.Steal) / float64(b.Total-a.Total)
}

// otherShare is the fraction of wall, the time from a to b, in which the
// CPU was neither idle nor running our processes (which spent ownTicks):
// other processes, interrupts not charged to ours, the hypervisor's steal.
// It leans on the wall clock, the precise idle time and the processes'
// own times, none of which lose ticks (see cpuTimes.Idle). -1 when no time
// passed; clamped to [0, 1], since process times and idle are sampled a
// moment apart.
func otherShare(a, b cpuTimes, ownTicks uint64, wall time.Duration) float64 {
	w := wall.Seconds() * userHZ
	if w <= 0 || b.Idle < a.Idle {
		return -1
	}
	other := w - float64(ownTicks) - float64(b.Idle-a.Idle)
	return min(max(other, 0), w) / w
}

// userHZ is the unit of the times in /proc: USER_HZ, which the kernel fixes
// at 100 on every architecture Go runs Linux on, whatever its own HZ.
const userHZ = 100

// ticksToDuration converts /proc clock ticks to time.
func ticksToDuration(ticks uint64) time.Duration {
	return time.Duration(ticks) * time.Second / userHZ
}

// ProcTicks reads user + system time, in clock ticks, from the text of
// /proc/<pid>/stat (or of one thread's, /proc/<pid>/task/<tid>/stat: test:vm's
// record of a VM's emulator threads). Every thread of the process is in it; waited-for
// children are not (cutime and cstime are left out). The command name in
// parentheses may hold spaces and parentheses, so fields count from the
// last ')'.
func ProcTicks(stat string) (uint64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc stat %q: no ')' after the command name", stat)
	}
	// After ')': state (field 3) ... utime (14) and stime (15).
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat %q: want at least 15 fields", stat)
	}
	var ticks uint64
	for _, v := range f[11:13] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc stat %q: utime or stime: %w", stat, err)
		}
		ticks += n
	}
	return ticks, nil
}

// readProcTicks sums the CPU ticks of pid and, with withChildren, of its
// direct children (nginx's workers beside its master).
func readProcTicks(pid int, withChildren bool) (uint64, error) {
	pids := []int{pid}
	if withChildren {
		kids, err := childPIDs(pid)
		if err != nil {
			return 0, err
		}
		pids = append(pids, kids...)
	}
	var sum uint64
	for _, p := range pids {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p), "stat"))
		if err != nil {
			return 0, err
		}
		n, err := ProcTicks(string(b))
		if err != nil {
			return 0, fmt.Errorf("pid %d: %w", p, err)
		}
		sum += n
	}
	return sum, nil
}
