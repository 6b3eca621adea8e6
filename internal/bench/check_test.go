package bench

import (
	"slices"
	"strings"
	"testing"
)

func TestEvaluate(t *testing.T) {
	const mb = 1 << 20
	base := func() []Result {
		return []Result{
			{Target: TargetAPI, RequestsPerSec: 9000, Servers: []Mem{{Process: "clock-api", Peak: 10 * mb}}},
			{Target: TargetBare, RequestsPerSec: 10000, Servers: []Mem{{Process: "barehttp", Peak: 8 * mb}}},
			{Target: TargetWebPage, RequestsPerSec: 12000, Servers: []Mem{{Process: "clock-web", Peak: 12 * mb}, {Process: "clock-api", Peak: 5 * mb}}},
			{Target: TargetNginx, RequestsPerSec: 11000, Servers: []Mem{{Process: "nginx", Peak: 30 * mb}}},
			{Target: TargetWebProxy, RequestsPerSec: 5000, Servers: []Mem{{Process: "clock-web", Peak: 13 * mb}, {Process: "clock-api", Peak: 11 * mb}}},
		}
	}
	tests := []struct {
		name   string
		change func([]Result) []Result
		want   []string // one per check, in order: "PASS ..." prefixes and details
	}{
		{"all pass", nil, []string{
			"PASS  clock-api /clock >= 0.8 x net/http /clock: 0.900 (9000 vs 10000 req/s)",
			"PASS  clock-web / >= 1.0 x nginx /: 1.091 (12000 vs 11000 req/s)",
			"PASS  clock-api peak RSS < 20 MiB: 11.0 MiB (during clock-web /clock)",
			"PASS  clock-web peak RSS < 20 MiB: 13.0 MiB (during clock-web /clock)",
		}},
		{"exactly at the bars", func(rs []Result) []Result {
			rs[0].RequestsPerSec = 8000
			rs[2].RequestsPerSec = 11000
			return rs
		}, []string{"PASS  clock-api /clock >= 0.8", "PASS  clock-web / >= 1.0", "PASS", "PASS"}},
		{"slow api", func(rs []Result) []Result {
			rs[0].RequestsPerSec = 7999
			return rs
		}, []string{"FAIL  clock-api /clock >= 0.8 x net/http /clock: 0.800 (7999 vs 10000 req/s)", "PASS", "PASS", "PASS"}},
		{"slow page", func(rs []Result) []Result {
			rs[2].RequestsPerSec = 10999
			return rs
		}, []string{"PASS", "FAIL  clock-web / >= 1.0 x nginx /: 1.000", "PASS", "PASS"}},
		{"errors void the ratio", func(rs []Result) []Result {
			rs[3].Errors = 7
			return rs
		}, []string{"PASS", "FAIL  clock-web / >= 1.0 x nginx /: 1.091 (12000 vs 11000 req/s); nginx / had 7 errors", "PASS", "PASS"}},
		{"rss at the bar fails", func(rs []Result) []Result {
			rs[0].Servers[0].Peak = 20 * mb
			return rs
		}, []string{"PASS", "PASS", "FAIL  clock-api peak RSS < 20 MiB: 20.0 MiB (during clock-api /clock)", "PASS"}},
		{"nginx rss does not count", func(rs []Result) []Result {
			rs[3].Servers[0].Peak = 100 * mb
			return rs
		}, []string{"PASS", "PASS", "PASS", "PASS"}},
		{"nothing measured", func([]Result) []Result { return nil }, []string{
			"FAIL  clock-api /clock >= 0.8 x net/http /clock: not measured",
			"FAIL  clock-web / >= 1.0 x nginx /: not measured",
			"FAIL  clock-api peak RSS < 20 MiB: not measured",
			"FAIL  clock-web peak RSS < 20 MiB: not measured",
		}},
		{"yardstick served nothing", func(rs []Result) []Result {
			rs[1].RequestsPerSec = 0
			return rs
		}, []string{"FAIL  clock-api /clock >= 0.8 x net/http /clock: net/http /clock served no requests", "PASS", "PASS", "PASS"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := base()
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

func TestFastest(t *testing.T) {
	rounds := []Result{
		{Target: TargetWebProxy, RequestsPerSec: 100, P99: 9, Errors: 1,
			Servers: []Mem{{Process: "clock-web", Peak: 5, Current: 4}, {Process: "clock-api", Peak: 9, Current: 1}}},
		{Target: TargetWebProxy, RequestsPerSec: 300, P99: 3,
			Servers: []Mem{{Process: "clock-web", Peak: 7, Current: 2}, {Process: "clock-api", Peak: 2, Current: 2}}},
		{Target: TargetWebProxy, RequestsPerSec: 200, P99: 5, Errors: 2,
			Servers: []Mem{{Process: "clock-web", Peak: 6, Current: 6}, {Process: "clock-api", Peak: 3, Current: 3}}},
	}
	got := fastest(rounds)
	if got.RequestsPerSec != 300 || got.P99 != 3 {
		t.Errorf("got %v req/s p99 %v, want the 300 req/s round", got.RequestsPerSec, got.P99)
	}
	if got.Errors != 3 {
		t.Errorf("got %d errors, want the sum 3", got.Errors)
	}
	if got.MedianPerSec != 200 {
		t.Errorf("got median %v req/s, want 200", got.MedianPerSec)
	}
	want := []Mem{{Process: "clock-web", Peak: 7, Current: 6}, {Process: "clock-api", Peak: 9, Current: 3}}
	for i := range want {
		if got.Servers[i] != want[i] {
			t.Errorf("server %d: got %+v, want %+v", i, got.Servers[i], want[i])
		}
	}
	if rounds[1].Servers[1].Peak != 2 {
		t.Error("fastest changed its input")
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
