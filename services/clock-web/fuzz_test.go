package main

import (
	"bufio"
	"net/http"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// FuzzRequestPath sends any request target through the real server. Only a request whose
// path is exactly /clock once cleaned may reach the upstream, and then only as GET /clock;
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
		if strings.ContainsAny(target, " \r\n") {
			return // not one request line
		}
		// The path the server routes on: fasthttp's, cleaned and decoded.
		var req fasthttp.Request
		if err := req.Read(bufio.NewReader(strings.NewReader("GET " + target + " HTTP/1.1\r\nHost: clock.test\r\n\r\n"))); err != nil {
			return // the server answers 400 before any handler runs
		}
		path := string(req.URI().Path())
		before := up.hits.Load()
		rec := do(t, h, "GET", target, nil)
		proxied := up.hits.Load() != before

		if proxied && path != "/clock" {
			t.Errorf("target %q (path %q) reached the upstream", target, path)
		}
		if proxied && rec.Code != http.StatusOK {
			t.Errorf("target %q: status %d from a healthy upstream", target, rec.Code)
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
