package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// series lists the clock_api_* series of a scrape: one line each, comments left out.
func series(tb testing.TB, h http.Handler) []string {
	tb.Helper()
	rec := serveOnce(h, http.MethodGet, "/metrics")
	if rec.Code != http.StatusOK {
		tb.Fatalf("GET /metrics: status %d", rec.Code)
	}
	var out []string
	for line := range strings.Lines(rec.Body.String()) {
		if strings.HasPrefix(line, "clock_api_") {
			name, _, _ := strings.Cut(line, " ")
			out = append(out, name)
		}
	}
	return out
}

// TestMetricsCardinalityIsBounded sends thousands of made-up methods, paths and Host headers
// through the real router and checks that they add no series: every label takes its value
// from a fixed set.
func TestMetricsCardinalityIsBounded(t *testing.T) {
	h, _ := newTestRouter(t)
	// Every label combination the router can produce, once: each route and an unmatched path,
	// with each method class (FOO stands for OTHER).
	for _, path := range []string{"/clock", "/healthz", "/metrics", "/nothing"} {
		for _, method := range []string{http.MethodGet, http.MethodHead, "FOO"} {
			serveOnce(h, method, path)
		}
	}
	before := series(t, h)
	if len(before) == 0 {
		t.Fatal("no clock_api_ series after the warm-up")
	}

	const n = 5000
	for i := range n {
		req := httptest.NewRequest(fmt.Sprintf("M%dX", i), fmt.Sprintf("/clock/%d?q=%d", i, i), nil)
		req.Host = fmt.Sprintf("h%d.example", i)
		h.ServeHTTP(httptest.NewRecorder(), req)
		for _, target := range []string{fmt.Sprintf("/p%d", i), fmt.Sprintf("/clock?v=%d", i), "/%ff" + fmt.Sprint(i)} {
			for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodPost} {
				serveOnce(h, method, target)
			}
		}
	}
	after := series(t, h)
	if len(after) != len(before) {
		t.Errorf("%d distinct methods, paths and hosts took the series from %d to %d; new ones:\n%s",
			n, len(before), len(after), strings.Join(added(before, after), "\n"))
	}
	for _, s := range after {
		for _, bad := range []string{`method="M`, `url="/p`, `url="/clock/`, `host="h`} {
			if strings.Contains(s, bad) {
				t.Errorf("series %s carries a client-chosen label value", s)
			}
		}
	}
}

func added(before, after []string) []string {
	seen := map[string]bool{}
	for _, s := range before {
		seen[s] = true
	}
	var out []string
	for _, s := range after {
		if !seen[s] && len(out) < 20 {
			out = append(out, s)
		}
	}
	return out
}

func TestMetricMethod(t *testing.T) {
	for in, want := range map[string]string{
		"GET": "GET", "HEAD": "HEAD", "POST": "OTHER", "get": "OTHER", "": "OTHER", "BREW": "OTHER",
	} {
		if got := metricMethod(in); got != want {
			t.Errorf("metricMethod(%q) = %q, want %q", in, got, want)
		}
	}
}
