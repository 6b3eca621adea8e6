package bench

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// writeReport prints the results table, the checks and the notes.
func writeReport(out io.Writer, rep Report) {
	rounds := ""
	if rep.Rounds > 1 {
		rounds = fmt.Sprintf(", fastest of %d rounds", rep.Rounds)
	}
	fmt.Fprintf(out, "\nwrk -t%d -c%d -d%s --latency%s, %s\n\n",
		rep.Threads, rep.Connections, rep.Duration, rounds, rep.Pinning)
	// Numbers read best right-aligned; padding the names to one width keeps
	// the first column left-aligned all the same.
	width := len("target")
	for _, r := range rep.Results {
		width = max(width, len(r.Target))
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	// The median column only means something with more than one round.
	withMedian := rep.Rounds > 1
	medianHead := ""
	if withMedian {
		medianHead = "\tmedian req/s"
	}
	fmt.Fprintf(tw, "%-*s\treq/s%s\tp50\tp99\tpeak RSS MiB\tRSS MiB\terrors\tsteal\t\n", width, "target", medianHead)
	for _, r := range rep.Results {
		m := r.Servers[0]
		medianCell := ""
		if withMedian {
			medianCell = fmt.Sprintf("\t%.0f", r.MedianPerSec)
		}
		fmt.Fprintf(tw, "%-*s\t%.0f%s\t%s\t%s\t%.1f\t%.1f\t%d\t%s\t\n", width, r.Target, r.RequestsPerSec, medianCell,
			fmtLatency(r.P50), fmtLatency(r.P99), mib(m.Peak), mib(m.Current), r.Errors, fmtSteal(r.Steal))
	}
	tw.Flush()
	for _, r := range rep.Results {
		for _, m := range r.Servers[1:] {
			fmt.Fprintf(out, "  (%s: upstream %s peak RSS %.1f MiB)\n", r.Target, m.Process, mib(m.Peak))
		}
	}
	fmt.Fprintln(out)
	for _, c := range rep.Checks {
		fmt.Fprintln(out, c)
	}
	for _, n := range rep.Notes {
		fmt.Fprintln(out, "note:", n)
	}
	fmt.Fprintln(out)
}

// fmtSteal prints a steal share as a percentage, "-" when unknown.
func fmtSteal(s float64) string {
	if s < 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*s)
}

// fmtLatency prints a wrk latency in milliseconds, the unit of interest here.
func fmtLatency(d time.Duration) string {
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}
