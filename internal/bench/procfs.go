package bench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
