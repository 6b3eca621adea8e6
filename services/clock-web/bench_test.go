package main

import (
	"io"
	"net/http"
	"testing"
)

// benchmark runs the router on one parsed request over and over, resetting only the
// response, so that the benchmarks count the handler's work and allocations, not the
// parsing of the request or the writing of the answer.
func benchmark(b *testing.B, web *testWeb, target string, header map[string]string, want int) {
	ctx := newCtx(b, http.MethodGet, target, header, "192.0.2.1:1234")
	b.ReportAllocs()
	for b.Loop() {
		ctx.Response.Reset()
		web.handler(ctx)
		if got := ctx.Response.StatusCode(); got != want {
			b.Fatalf("status %d, want %d", got, want)
		}
	}
}

func BenchmarkStaticPage(b *testing.B) {
	web := newHandlerLogging(b, "http://127.0.0.1:1", nil, io.Discard)
	benchmark(b, web, "/", nil, http.StatusOK)
}

func BenchmarkStaticPageGzip(b *testing.B) {
	web := newHandlerLogging(b, "http://127.0.0.1:1", nil, io.Discard)
	benchmark(b, web, "/app.js", map[string]string{"Accept-Encoding": "gzip, deflate, br, zstd"}, http.StatusOK)
}

func BenchmarkStaticPageNotModified(b *testing.B) {
	web := newHandlerLogging(b, "http://127.0.0.1:1", nil, io.Discard)
	etag := do(b, web, "GET", "/", nil).Header().Get("ETag")
	benchmark(b, web, "/", map[string]string{"If-None-Match": etag}, http.StatusNotModified)
}

func BenchmarkClockProxy(b *testing.B) {
	up := startUpstream(b, nil)
	web := newHandlerLogging(b, up.URL, nil, io.Discard)
	benchmark(b, web, "/clock", nil, http.StatusOK)
}

// BenchmarkClockProxyWire sends GET /clock through the real server on loopback to a canned
// upstream that answers like clock-api at almost no cost of its own, over kept-alive
// connections at both ends: the whole hop as a browser's poll takes it, server included.
// ns/op and allocs/op include the benchmark's own client (fasthttp's, the cheapest there is).
func BenchmarkClockProxyWire(b *testing.B) {
	web := newHandlerLogging(b, cannedAPI(b), nil, io.Discard).listen(b)
	benchmarkWire(b, web.Addr, "/clock")
}

// BenchmarkStaticPageWire is the page's index.html the same way.
func BenchmarkStaticPageWire(b *testing.B) {
	web := newHandlerLogging(b, "http://127.0.0.1:1", nil, io.Discard).listen(b)
	benchmarkWire(b, web.Addr, "/")
}
