package bench

import (
	"fmt"
	"strings"
)

// Target names, as they appear in Result.Target and the table.
const (
	TargetAPI      = "clock-api /clock"
	TargetBare     = "net/http /clock"
	TargetWebPage  = "clock-web /"
	TargetNginx    = "nginx /"
	TargetWebProxy = "clock-web /clock"
)

// The bars the services are held to.
const (
	MinAPIRatio   = 0.8      // clock-api /clock req/s over the bare net/http handler's
	MinPageRatio  = 1.0      // clock-web / req/s over nginx's for the same files
	MaxServiceRSS = 20 << 20 // bytes: peak RSS of each service under load
)

// Check is one pass/fail verdict on the measurements.
type Check struct {
	Name   string // e.g. "clock-api /clock >= 0.8 x net/http /clock"
	Pass   bool
	Detail string // the numbers behind the verdict
}

func (c Check) String() string {
	verdict := "FAIL"
	if c.Pass {
		verdict = "PASS"
	}
	return fmt.Sprintf("%s  %s: %s", verdict, c.Name, c.Detail)
}

// evaluate holds the results to the bars. A missing result or one whose run
// had errors fails the checks that need it: its req/s would measure the
// wrong thing.
func evaluate(results []Result) []Check {
	byTarget := make(map[string]Result, len(results))
	for _, r := range results {
		byTarget[r.Target] = r
	}
	checks := []Check{
		ratioCheck(byTarget, TargetAPI, TargetBare, MinAPIRatio),
		ratioCheck(byTarget, TargetWebPage, TargetNginx, MinPageRatio),
	}
	for _, svc := range []string{"clock-api", "clock-web"} {
		checks = append(checks, rssCheck(results, svc))
	}
	return checks
}

func ratioCheck(byTarget map[string]Result, subject, yardstick string, min float64) Check {
	c := Check{Name: fmt.Sprintf("%s >= %.1f x %s", subject, min, yardstick)}
	s, okS := byTarget[subject]
	y, okY := byTarget[yardstick]
	switch {
	case !okS || !okY:
		c.Detail = "not measured"
		return c
	case y.RequestsPerSec <= 0:
		c.Detail = yardstick + " served no requests"
		return c
	}
	ratio := s.RequestsPerSec / y.RequestsPerSec
	c.Pass = ratio >= min
	c.Detail = fmt.Sprintf("%.3f (%.0f vs %.0f req/s)", ratio, s.RequestsPerSec, y.RequestsPerSec)
	var bad []string
	for _, r := range []Result{s, y} {
		if r.Errors > 0 {
			bad = append(bad, fmt.Sprintf("%s had %d errors", r.Target, r.Errors))
		}
	}
	if len(bad) > 0 {
		c.Pass = false
		c.Detail += "; " + strings.Join(bad, ", ")
	}
	return c
}

// rssCheck takes the highest peak of svc over every run it served in (the
// proxy run measures clock-api too).
func rssCheck(results []Result, svc string) Check {
	c := Check{Name: fmt.Sprintf("%s peak RSS < %d MiB", svc, MaxServiceRSS>>20)}
	var peak uint64
	var where string
	for _, r := range results {
		for _, m := range r.Servers {
			if m.Process == svc && m.Peak >= peak {
				peak, where = m.Peak, r.Target
			}
		}
	}
	if where == "" {
		c.Detail = "not measured"
		return c
	}
	c.Pass = peak < MaxServiceRSS
	c.Detail = fmt.Sprintf("%.1f MiB (during %s)", mib(peak), where)
	return c
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
