package ansible

import (
	"bufio"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// HostRecap is one host's line of the PLAY RECAP.
type HostRecap struct {
	OK          int
	Changed     int
	Unreachable int
	Failed      int
	Skipped     int
	Rescued     int
	Ignored     int
}

// Recap is the PLAY RECAP of a run, by inventory host name.
type Recap map[string]HostRecap

// Changed is the number of changed tasks over all hosts (0 on an idempotent rerun).
func (r Recap) Changed() int {
	n := 0
	for _, h := range r {
		n += h.Changed
	}
	return n
}

// Problems is the number of failed tasks plus unreachable hosts over all hosts.
func (r Recap) Problems() int {
	n := 0
	for _, h := range r {
		n += h.Failed + h.Unreachable
	}
	return n
}

// String renders the recap like Ansible does, hosts sorted, one per line.
func (r Recap) String() string {
	hosts := make([]string, 0, len(r))
	for h := range r {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	var b strings.Builder
	for i, h := range hosts {
		s := r[h]
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s: ok=%d changed=%d unreachable=%d failed=%d skipped=%d rescued=%d ignored=%d",
			h, s.OK, s.Changed, s.Unreachable, s.Failed, s.Skipped, s.Rescued, s.Ignored)
	}
	return b.String()
}

var errNoRecap = errors.New("no PLAY RECAP in the output")

var (
	ansiRE      = regexp.MustCompile(`\x1b\[[0-9;]*m`)
	recapLineRE = regexp.MustCompile(`^(\S+)\s+:\s+((?:[a-z]+=\d+\s*)+)$`)
)

// ParseRecap reads the last PLAY RECAP in ansible-playbook's output (colour codes allowed).
func ParseRecap(output string) (Recap, error) {
	var recap Recap
	in := false
	sc := bufio.NewScanner(strings.NewReader(output))
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(ansiRE.ReplaceAllString(sc.Text(), ""))
		if strings.HasPrefix(line, "PLAY RECAP") {
			recap, in = Recap{}, true // a later recap (several playbooks) wins
			continue
		}
		if !in {
			continue
		}
		m := recapLineRE.FindStringSubmatch(line)
		if m == nil {
			if line != "" || len(recap) > 0 {
				in = false
			}
			continue
		}
		var h HostRecap
		for _, kv := range strings.Fields(m[2]) {
			k, v, _ := strings.Cut(kv, "=")
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, fmt.Errorf("PLAY RECAP line %q: %w", line, err)
			}
			switch k {
			case "ok":
				h.OK = n
			case "changed":
				h.Changed = n
			case "unreachable":
				h.Unreachable = n
			case "failed":
				h.Failed = n
			case "skipped":
				h.Skipped = n
			case "rescued":
				h.Rescued = n
			case "ignored":
				h.Ignored = n
			}
		}
		recap[m[1]] = h
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(recap) == 0 {
		return nil, errNoRecap
	}
	return recap, nil
}
