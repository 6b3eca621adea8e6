package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// summary is one target over all its rounds: medians, the range of req/s,
// the worst memory and the sum of errors, so that no bad round hides.
type summary struct {
	Target             string
	Rounds             int
	PerSec             float64 // median
	MinPerSec, MaxRate float64
	CPU, UpstreamCPU   time.Duration // median per request; UpstreamCPU 0 without an upstream
	Upstream           string        // the process behind the front, if any
	P99                time.Duration // median
	Peak               uint64        // highest VmHWM of the front
	Errors             int64
	Other, Steal       float64 // median share, -1 unknown
}

func summarize(rs []Result) summary {
	s := summary{Target: rs[0].Target, Rounds: len(rs), Other: -1, Steal: -1}
	var rates, cpu, up, p99, other, steal []float64
	for _, r := range rs {
		rates = append(rates, r.RequestsPerSec)
		cpu = append(cpu, float64(r.CPUPerRequest(0)))
		p99 = append(p99, float64(r.P99))
		s.Errors += r.Errors
		if len(r.Servers) > 0 {
			s.Peak = max(s.Peak, r.Servers[0].Peak)
		}
		if len(r.Servers) > 1 {
			s.Upstream = r.Servers[1].Process
			up = append(up, float64(r.CPUPerRequest(1)))
		}
		if r.Other >= 0 {
			other = append(other, r.Other)
		}
		if r.Steal >= 0 {
			steal = append(steal, r.Steal)
		}
	}
	s.PerSec, s.MinPerSec, s.MaxRate = median(rates), slices.Min(rates), slices.Max(rates)
	s.CPU, s.UpstreamCPU, s.P99 = time.Duration(median(cpu)), time.Duration(median(up)), time.Duration(median(p99))
	if len(other) > 0 {
		s.Other = median(other)
	}
	if len(steal) > 0 {
		s.Steal = median(steal)
	}
	return s
}

// writeReport prints the results table, the checks, the noise verdict and
// the notes.
func writeReport(out io.Writer, rep Report) {
	fmt.Fprintf(out, "\nwrk -t%d -c%d -d%s --latency, %d round(s), each target beside its yardstick; %s\n",
		rep.Threads, rep.Connections, rep.Duration, rep.Rounds, rep.Pinning)
	fmt.Fprintf(out, "medians over the rounds; CPU/req of the front process, upstream (clock-api or uvicorn) apart\n\n")
	runs := byTarget(rep.Results)
	// Numbers read best right-aligned; padding the names to one width keeps
	// the first column left-aligned all the same.
	width := len("target")
	for _, t := range rep.Targets {
		width = max(width, len(t))
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-*s\treq/s\treq/s min-max\tCPU/req\tupstream CPU/req\tp99\tpeak RSS MiB\terrors\tother work\tsteal\t\n", width, "target")
	for _, t := range rep.Targets {
		if len(runs[t]) == 0 {
			continue
		}
		s := summarize(runs[t])
		up := "-"
		if s.Upstream != "" {
			up = fmtMicros(s.UpstreamCPU)
		}
		fmt.Fprintf(tw, "%-*s\t%.0f\t%.0f-%.0f\t%s\t%s\t%s\t%.1f\t%d\t%s\t%s\t\n", width, t, s.PerSec, s.MinPerSec, s.MaxRate,
			fmtMicros(s.CPU), up, fmtLatency(s.P99), mib(s.Peak), s.Errors, fmtShare(s.Other), fmtShare(s.Steal))
	}
	tw.Flush()
	fmt.Fprintln(out)
	for _, c := range rep.Checks {
		line := c.String()
		if rep.discounted(c) {
			line = "NOISY" + strings.TrimPrefix(line, "FAIL") + " (not counted: noisy run)"
		}
		fmt.Fprintln(out, line)
	}
	fmt.Fprintln(out, noiseLine(rep))
	for _, n := range rep.Notes {
		fmt.Fprintln(out, "note:", n)
	}
	fmt.Fprintln(out)
}

// noiseLine says how much of the server CPU other work took and what that
// means for the verdict.
func noiseLine(rep Report) string {
	if !rep.TakenKnown {
		return "other work on the server CPU: unknown (servers not pinned); timing checks counted as measured"
	}
	verdict := "quiet enough, timing checks count"
	if rep.Noisy {
		verdict = "NOISY, timing checks not counted: run again when the host is quieter"
	}
	return fmt.Sprintf("other work on the server CPU (other processes + steal): median %.1f%% of the rounds' time, noisy above %.0f%%: %s",
		100*rep.Taken, 100*NoisyShare, verdict)
}

// fmtShare prints a share as a percentage, "-" when unknown.
func fmtShare(s float64) string {
	if s < 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*s)
}

// fmtMicros prints a CPU time per request in microseconds.
func fmtMicros(d time.Duration) string {
	return fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond))
}

// fmtLatency prints a wrk latency in milliseconds, the unit of interest here.
func fmtLatency(d time.Duration) string {
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}
