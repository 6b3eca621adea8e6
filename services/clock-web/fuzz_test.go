package main

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzRequestPath sends any request target the HTTP parser accepts through the real router.
// Only a request for exactly /clock may reach the upstream, and then only as GET /clock;
// nothing answers 5xx, since the upstream is healthy.
func FuzzRequestPath(f *testing.F) {
	for _, seed := range []string{
		"/", "/clock", "/clock?x=1", "/clock/../metrics", "/metrics", "//clock", "/clock/",
		"/clock%2F..%2Fmetrics", "/clo%63k", "/%63lock/", "http://x/clock", "http://x/metrics",
		"*", "/app.js", "/healthz", "/%2e%2e/%2e%2e/metrics", "/clock;a=b", "/./clock", "/clock#x",
	} {
		f.Add(seed)
	}
	up := startUpstream(f, nil)
	h, _ := newTestHandler(f, up.URL, nil)
	f.Fuzz(func(t *testing.T, target string) {
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(
			"GET " + target + " HTTP/1.1\r\nHost: clock.test\r\n\r\n")))
		if err != nil {
			return // the server would answer 400 before any handler runs
		}
		req.RemoteAddr = "192.0.2.1:1234"
		before := up.hits.Load()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		proxied := up.hits.Load() != before

		if proxied && req.URL.Path != "/clock" {
			t.Errorf("target %q (path %q) reached the upstream", target, req.URL.Path)
		}
		if req.URL.Path == "/clock" && (!proxied || rec.Code != http.StatusOK) {
			t.Errorf("target %q: status %d, proxied %v; want 200 from the upstream", target, rec.Code, proxied)
		}
		if rec.Code >= 500 {
			t.Errorf("target %q: status %d", target, rec.Code)
		}
		for _, s := range up.seen() {
			if s != "GET /clock" {
				t.Fatalf("target %q: upstream saw %q, want only GET /clock", target, s)
			}
		}
	})
}
