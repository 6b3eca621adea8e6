package bench

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	rs := []Result{
		round(TargetWebProxy, 1, 5000, 30*time.Microsecond, "clock-web", "clock-api"),
		round(TargetWebProxy, 2, 7000, 50*time.Microsecond, "clock-web", "clock-api"),
		round(TargetWebProxy, 3, 6000, 40*time.Microsecond, "clock-web", "clock-api"),
	}
	for i := range rs {
		rs[i].Servers[1].CPU = 20 * time.Microsecond * time.Duration(rs[i].Requests)
		rs[i].P99 = time.Duration(i+1) * time.Millisecond
	}
	rs[1].Servers[0].Peak, rs[2].Errors, rs[0].Other, rs[2].Other = 15*mb, 4, 0.5, -1
	got := summarize(rs)
	want := summary{Target: TargetWebProxy, Rounds: 3, PerSec: 6000, MinPerSec: 5000, MaxRate: 7000,
		CPU: 40 * time.Microsecond, UpstreamCPU: 20 * time.Microsecond, Upstream: "clock-api",
		P99: 2 * time.Millisecond, Peak: 15 * mb, Errors: 4, Other: (0.5 + 0.02) / 2, Steal: 0.01}
	if got != want {
		t.Errorf("summarize =\n %+v, want\n %+v", got, want)
	}
}

func TestWriteReport(t *testing.T) {
	rep := Report{Duration: 4 * time.Second, Connections: 32, Threads: 1, Rounds: 3,
		Pinning: "servers pinned to CPU 1, wrk to CPU 0 (taskset)",
		Targets: []string{TargetAPI, TargetBare, TargetWebPage, TargetNginx, TargetWebProxy, TargetNginxProxy, TargetUvicorn},
		Results: set(passingRounds(), TargetWebPage, cpu(50*time.Microsecond)),
		Taken:   0.02, TakenKnown: true, Notes: []string{"a note"}}
	rep.Checks = evaluate(rep.Results)
	var out bytes.Buffer
	writeReport(&out, rep)
	text := out.String()
	for _, want := range []string{
		"wrk -t1 -c32 -d4s --latency, 3 round(s), each target beside its yardstick; servers pinned to CPU 1",
		"target                   req/s  req/s min-max  CPU/req  upstream CPU/req     p99  peak RSS MiB  errors  other work  steal",
		"clock-api /clock          9000      9000-9000   33.0µs                 -  0.00ms          10.0       0        2.0%   1.0%",
		"clock-web /clock          7500      7500-7500   32.0µs             0.0µs  0.00ms          10.0       0        2.0%   1.0%",
		"\nFAIL  clock-web / CPU/req <= 1.00 x nginx /: median 1.250",
		"\nPASS  clock-api peak RSS < 20 MiB",
		"median 2.0% of the rounds' time, noisy above 10%: quiet enough, timing checks count",
		"\nnote: a note\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	// Rows in the order run.
	if a, b := strings.Index(text, "\n  net/http /clock"), strings.Index(text, "\n  nginx /clock -> uvicorn"); a < 0 || b < a {
		t.Errorf("rows out of order:\n%s", text)
	}

	rep.Taken, rep.Noisy = 0.4, true
	out.Reset()
	writeReport(&out, rep)
	for _, want := range []string{
		"\nNOISY  clock-web / CPU/req <= 1.00 x nginx /: median 1.250 over 3 pairs (1.250-1.250); 50.0 µs vs 40.0 µs (not counted: noisy run)",
		"median 40.0% of the rounds' time, noisy above 10%: NOISY, timing checks not counted",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("noisy report lacks %q:\n%s", want, out.String())
		}
	}

	rep.TakenKnown, rep.Noisy = false, false
	out.Reset()
	writeReport(&out, rep)
	if !strings.Contains(out.String(), "other work on the server CPU: unknown (servers not pinned)") {
		t.Errorf("unpinned report does not say the share is unknown:\n%s", out.String())
	}
}
