package bench

import (
	"slices"
	"strings"
	"testing"
	"time"
)

const mb = 1 << 20

// round builds one measured run: req/s, the front's CPU per request (the
// run lasts one second, so Requests is the rate) and its processes.
func round(target string, n int, perSec float64, cpuPerReq time.Duration, procs ...string) Result {
	r := Result{Target: target, Round: n, RequestsPerSec: perSec, Requests: int64(perSec), Steal: 0.01, Other: 0.02}
	for i, p := range procs {
		cpu := time.Duration(0)
		if i == 0 {
			cpu = cpuPerReq * time.Duration(r.Requests)
		}
		r.Servers = append(r.Servers, Proc{Mem: Mem{Process: p, Peak: 10 * mb, Current: 8 * mb}, CPU: cpu})
	}
	return r
}

// passingRounds is three alternating rounds in which every bar is met with
// a margin: API 1.1x the CPU and 0.9x the rate, page 0.9x, hop 0.8x, and
// clock-web /clock 1.5x uvicorn's rate.
func passingRounds() []Result {
	var rs []Result
	for n := 1; n <= 3; n++ {
		rs = append(rs,
			round(TargetAPI, n, 9000, 33*time.Microsecond, "clock-api"),
			round(TargetBare, n, 10000, 30*time.Microsecond, "barehttp"),
			round(TargetWebPage, n, 12000, 36*time.Microsecond, "clock-web", "clock-api"),
			round(TargetNginx, n, 11000, 40*time.Microsecond, "nginx"),
			round(TargetWebProxy, n, 7500, 32*time.Microsecond, "clock-web", "clock-api"),
			round(TargetNginxProxy, n, 8000, 40*time.Microsecond, "nginx", "clock-api"),
			round(TargetUvicorn, n, 5000, 40*time.Microsecond, "nginx", "uvicorn"),
		)
	}
	return rs
}

// set changes the rounds of target numbered in (all when none is given).
func set(rs []Result, target string, f func(*Result), in ...int) []Result {
	for i := range rs {
		if rs[i].Target == target && (len(in) == 0 || slices.Contains(in, rs[i].Round)) {
			f(&rs[i])
		}
	}
	return rs
}

func cpu(d time.Duration) func(*Result) {
	return func(r *Result) { r.Servers[0].CPU = d * time.Duration(r.Requests) }
}

func TestEvaluate(t *testing.T) {
	tests := []struct {
		name   string
		change func([]Result) []Result
		want   []string // one per check, in order: "PASS ..." prefixes and details
	}{
		{"all pass", nil, []string{
			"PASS  clock-api /clock CPU/req <= 1.25 x net/http /clock: median 1.100 over 3 pairs (1.100-1.100); 33.0 µs vs 30.0 µs",
			"PASS  clock-api /clock req/s >= 0.80 x net/http /clock: median 0.900 over 3 pairs (0.900-0.900); 9000 req/s vs 10000 req/s",
			"PASS  clock-web / CPU/req <= 1.00 x nginx /: median 0.900",
			"PASS  clock-web /clock CPU/req <= 1.00 x nginx /clock: median 0.800",
			"PASS  clock-web /clock req/s >= 1.30 x nginx /clock -> uvicorn: median 1.500",
			"PASS  clock-api peak RSS < 20 MiB: 10.0 MiB",
			"PASS  clock-web peak RSS < 20 MiB: 10.0 MiB",
		}},
		{"exactly at the bars", func(rs []Result) []Result {
			rs = set(rs, TargetAPI, cpu(37500*time.Nanosecond))
			rs = set(rs, TargetAPI, func(r *Result) { r.RequestsPerSec = 8000 })
			rs = set(rs, TargetWebPage, cpu(40*time.Microsecond))
			rs = set(rs, TargetWebProxy, cpu(40*time.Microsecond))
			rs = set(rs, TargetWebProxy, func(r *Result) { r.RequestsPerSec = 7800 })
			return set(rs, TargetUvicorn, func(r *Result) { r.RequestsPerSec = 6000 })
		}, []string{"PASS  clock-api /clock CPU/req <= 1.25 x net/http /clock: median 1.250", "PASS  clock-api /clock req/s >= 0.80 x net/http /clock: median 0.800",
			"PASS  clock-web / CPU/req <= 1.00 x nginx /: median 1.000", "PASS  clock-web /clock CPU/req <= 1.00 x nginx /clock: median 1.000",
			"PASS  clock-web /clock req/s >= 1.30 x nginx /clock -> uvicorn: median 1.300", "PASS", "PASS"}},
		{"costly api", func(rs []Result) []Result {
			return set(rs, TargetAPI, cpu(38*time.Microsecond))
		}, []string{"FAIL  clock-api /clock CPU/req <= 1.25 x net/http /clock: median 1.267", "PASS", "PASS", "PASS", "PASS", "PASS", "PASS"}},
		{"one bad pair does not decide", func(rs []Result) []Result {
			// A burst of other work doubles the hop's cost in round 2 only.
			return set(rs, TargetWebProxy, cpu(80*time.Microsecond), 2)
		}, []string{"PASS", "PASS", "PASS", "PASS  clock-web /clock CPU/req <= 1.00 x nginx /clock: median 0.800 over 3 pairs (0.800-2.000)", "PASS", "PASS", "PASS"}},
		{"two bad pairs of three do", func(rs []Result) []Result {
			return set(rs, TargetWebProxy, cpu(44*time.Microsecond), 1, 3)
		}, []string{"PASS", "PASS", "PASS", "FAIL  clock-web /clock CPU/req <= 1.00 x nginx /clock: median 1.100 over 3 pairs (0.800-1.100)", "PASS", "PASS", "PASS"}},
		{"ratios pair rounds, not medians", func(rs []Result) []Result {
			// The medians of each side alone give 1.0; every pair says 1.25.
			rs = set(rs, TargetBare, cpu(20*time.Microsecond), 1)
			rs = set(rs, TargetBare, cpu(30*time.Microsecond), 2)
			rs = set(rs, TargetBare, cpu(40*time.Microsecond), 3)
			rs = set(rs, TargetAPI, cpu(25*time.Microsecond), 1)
			rs = set(rs, TargetAPI, cpu(37500*time.Nanosecond), 2)
			return set(rs, TargetAPI, cpu(50*time.Microsecond), 3)
		}, []string{"PASS  clock-api /clock CPU/req <= 1.25 x net/http /clock: median 1.250 over 3 pairs (1.250-1.250)", "PASS", "PASS", "PASS", "PASS", "PASS", "PASS"}},
		{"slow against uvicorn", func(rs []Result) []Result {
			return set(rs, TargetWebProxy, func(r *Result) { r.RequestsPerSec = 6000 })
		}, []string{"PASS", "PASS", "PASS", "PASS", "FAIL  clock-web /clock req/s >= 1.30 x nginx /clock -> uvicorn: median 1.200", "PASS", "PASS"}},
		{"errors void the ratio", func(rs []Result) []Result {
			return set(rs, TargetNginx, func(r *Result) { r.Errors = 7 }, 2)
		}, []string{"PASS", "PASS", "FAIL  clock-web / CPU/req <= 1.00 x nginx /: median 0.900 over 3 pairs (0.900-0.900); 36.0 µs vs 40.0 µs; nginx / had 7 errors",
			"PASS", "PASS", "PASS", "PASS"}},
		{"rss at the bar fails, upstream counts", func(rs []Result) []Result {
			return set(rs, TargetNginxProxy, func(r *Result) { r.Servers[1].Peak = 20 * mb }, 3)
		}, []string{"PASS", "PASS", "PASS", "PASS", "PASS", "FAIL  clock-api peak RSS < 20 MiB: 20.0 MiB (during nginx /clock)", "PASS"}},
		{"nginx and uvicorn rss do not count", func(rs []Result) []Result {
			return set(rs, TargetUvicorn, func(r *Result) { r.Servers[0].Peak, r.Servers[1].Peak = 100*mb, 100*mb })
		}, []string{"PASS", "PASS", "PASS", "PASS", "PASS", "PASS", "PASS"}},
		{"nothing measured", func([]Result) []Result { return nil }, []string{
			"FAIL  clock-api /clock CPU/req <= 1.25 x net/http /clock: not measured",
			"FAIL  clock-api /clock req/s >= 0.80 x net/http /clock: not measured",
			"FAIL  clock-web / CPU/req <= 1.00 x nginx /: not measured",
			"FAIL  clock-web /clock CPU/req <= 1.00 x nginx /clock: not measured",
			"FAIL  clock-web /clock req/s >= 1.30 x nginx /clock -> uvicorn: not measured",
			"FAIL  clock-api peak RSS < 20 MiB: not measured",
			"FAIL  clock-web peak RSS < 20 MiB: not measured",
		}},
		{"yardstick measured nothing", func(rs []Result) []Result {
			return set(rs, TargetBare, func(r *Result) { r.RequestsPerSec, r.Requests = 0, 0 })
		}, []string{"FAIL  clock-api /clock CPU/req <= 1.25 x net/http /clock: net/http /clock measured no CPU/req",
			"FAIL  clock-api /clock req/s >= 0.80 x net/http /clock: net/http /clock measured no req/s", "PASS", "PASS", "PASS", "PASS", "PASS"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := passingRounds()
			if tt.change != nil {
				rs = tt.change(rs)
			}
			checks := evaluate(rs)
			if len(checks) != len(tt.want) {
				t.Fatalf("got %d checks, want %d: %v", len(checks), len(tt.want), checks)
			}
			for i, c := range checks {
				if got := c.String(); !strings.HasPrefix(got, tt.want[i]) {
					t.Errorf("check %d: got %q, want prefix %q", i, got, tt.want[i])
				}
				if c.Pass != strings.HasPrefix(tt.want[i], "PASS") {
					t.Errorf("check %d: Pass = %v for %q", i, c.Pass, c)
				}
			}
			rep := Report{Checks: checks}
			allPass := true
			for _, w := range tt.want {
				allPass = allPass && strings.HasPrefix(w, "PASS")
			}
			if rep.Passed() != allPass {
				t.Errorf("Passed() = %v, want %v", rep.Passed(), allPass)
			}
		})
	}
}

func TestPairRatios(t *testing.T) {
	perSec := func(r Result) float64 { return r.RequestsPerSec }
	subject := []Result{
		{Round: 3, RequestsPerSec: 90},
		{Round: 1, RequestsPerSec: 50},
		{Round: 2, RequestsPerSec: 80},
		{Round: 4, RequestsPerSec: 70}, // no partner
	}
	yardstick := []Result{
		{Round: 1, RequestsPerSec: 100},
		{Round: 2, RequestsPerSec: 0}, // measured nothing
		{Round: 3, RequestsPerSec: 60},
	}
	got := pairRatios(subject, yardstick, perSec)
	if want := []float64{1.5, 0.5}; !slices.Equal(got, want) {
		t.Errorf("pairRatios = %v, want %v (round 3 with 3, round 1 with 1, no others)", got, want)
	}
	if got := pairRatios(subject, nil, perSec); len(got) != 0 {
		t.Errorf("pairRatios without yardstick = %v, want none", got)
	}
}

func TestSpreadOf(t *testing.T) {
	got := spreadOf([]float64{1.2, 0.7, 1.0, 3.0, 0.9})
	if want := (Spread{Median: 1.0, Min: 0.7, Max: 3.0, Pairs: 5}); got != want {
		t.Errorf("spreadOf = %+v, want %+v", got, want)
	}
	if got := spreadOf(nil); got != (Spread{}) {
		t.Errorf("spreadOf(nil) = %+v, want zero", got)
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{5}, 5},
		{[]float64{9, 1, 5}, 5},
		{[]float64{4, 1, 3, 2}, 2.5},
		{nil, 0},
	} {
		in := slices.Clone(tc.in)
		if got := median(in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
		if !slices.Equal(in, tc.in) {
			t.Errorf("median reordered its input: %v", in)
		}
	}
}

func TestNoisy(t *testing.T) {
	others := func(shares ...float64) []Result {
		var rs []Result
		for _, s := range shares {
			rs = append(rs, Result{Other: s})
		}
		return rs
	}
	for _, tc := range []struct {
		name         string
		rs           []Result
		share        float64
		known, noisy bool
	}{
		{"quiet", others(0.02, 0.03, 0.01), 0.02, true, false},
		{"at the line is not noisy", others(0.05, NoisyShare, 0.5), NoisyShare, true, false},
		{"a burst in a minority of rounds", others(0.02, 0.6, 0.03, 0.9, 0.01), 0.03, true, false},
		{"busy in most rounds", others(0.02, 0.3, 0.2, 0.11, 0.01), 0.11, true, true},
		{"unknown rounds left out", others(-1, 0.4, -1), 0.4, true, true},
		{"not pinned", others(-1, -1), 0, false, false},
		{"no rounds", nil, 0, false, false},
	} {
		share, known, isNoisy := noisy(tc.rs)
		if share != tc.share || known != tc.known || isNoisy != tc.noisy {
			t.Errorf("%s: noisy = %v, %v, %v; want %v, %v, %v", tc.name, share, known, isNoisy, tc.share, tc.known, tc.noisy)
		}
	}
}

func TestNoisyRunDiscountsOnlyTimingChecks(t *testing.T) {
	rs := passingRounds()
	rs = set(rs, TargetWebPage, cpu(50*time.Microsecond))                    // timing: fails
	rs = set(rs, TargetAPI, func(r *Result) { r.Servers[0].Peak = 30 * mb }) // memory: fails
	rs = set(rs, TargetUvicorn, func(r *Result) { r.Errors = 1 }, 1)         // errors: fail
	rep := Report{Checks: evaluate(rs)}
	if got := len(rep.Failed()); got != 3 {
		t.Fatalf("quiet run: %d failed, want 3: %v", got, rep.Failed())
	}
	rep.Noisy = true
	var names []string
	for _, c := range rep.Failed() {
		names = append(names, c.Name)
	}
	want := []string{
		"clock-web /clock req/s >= 1.30 x nginx /clock -> uvicorn", // errors count on a noisy host
		"clock-api peak RSS < 20 MiB",
	}
	if !slices.Equal(names, want) {
		t.Errorf("noisy run: failed %q, want %q", names, want)
	}
	if rep.Passed() {
		t.Error("noisy run with a memory failure Passed")
	}
	rep.Checks = evaluate(set(passingRounds(), TargetWebPage, cpu(50*time.Microsecond)))
	if !rep.Passed() {
		t.Errorf("noisy run whose only failure is timing: Passed = false, failed %v", rep.Failed())
	}
}
