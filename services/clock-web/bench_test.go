package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// discardWriter is a reusable ResponseWriter, so that the benchmarks count the handler's
// allocations, not the recorder's.
type discardWriter struct {
	h      http.Header
	status int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) WriteHeader(code int)        { d.status = code }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) Flush()                      {}

func benchmark(b *testing.B, h http.Handler, req *http.Request, want int) {
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		w.status = 0
		h.ServeHTTP(w, req)
		if w.status != want {
			b.Fatalf("status %d, want %d", w.status, want)
		}
	}
}

func BenchmarkStaticPage(b *testing.B) {
	h := newHandlerLogging(b, "http://127.0.0.1:1", nil, io.Discard)
	benchmark(b, h, httptest.NewRequest("GET", "/", nil), http.StatusOK)
}

func BenchmarkStaticPageGzip(b *testing.B) {
	h := newHandlerLogging(b, "http://127.0.0.1:1", nil, io.Discard)
	req := httptest.NewRequest("GET", "/app.js", nil)
	req.Header.Set("Accept-Encoding", "gzip, deflate, br, zstd")
	benchmark(b, h, req, http.StatusOK)
}

func BenchmarkStaticPageNotModified(b *testing.B) {
	h := newHandlerLogging(b, "http://127.0.0.1:1", nil, io.Discard)
	etag := do(b, h, "GET", "/", nil).Header().Get("ETag")
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("If-None-Match", etag)
	benchmark(b, h, req, http.StatusNotModified)
}

func BenchmarkClockProxy(b *testing.B) {
	up := startUpstream(b, nil)
	h := newHandlerLogging(b, up.URL, nil, io.Discard)
	benchmark(b, h, httptest.NewRequest("GET", "/clock", nil), http.StatusOK)
}
