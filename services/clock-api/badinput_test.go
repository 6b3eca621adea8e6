package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/clock-app/clock/services/internal/serve"
)

// rawExchange sends raw on a fresh connection to the real server and returns its answer.
func rawExchange(tb testing.TB, addr, raw string) (*http.Response, string) {
	tb.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	// The server may answer and close before it has read everything (a refused body): a
	// failed write is part of what is being tested, the answer is what counts.
	go func() { _, _ = io.WriteString(c, raw) }()
	var req *http.Request // nil reads the answer as one to a GET
	if strings.HasPrefix(raw, "HEAD ") {
		req = &http.Request{Method: http.MethodHead}
	}
	res, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		tb.Fatalf("no answer to %.60q: %v", raw, err)
	}
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	res.Body.Close()
	return res, string(body)
}

// TestBadInput is the table of hostile or malformed requests clock-api must answer with a
// bounded, plain error (never a crash, a hang or an echo of the input), through the real
// server: net/http's limits and Echo's router together.
func TestBadInput(t *testing.T) {
	srv := startServer(t, testConfig(t), time.Now)
	long := func(n int) string { return strings.Repeat("a", n) }
	tests := []struct {
		name string
		raw  string
		want int
	}{
		// Methods.
		{"GET", "GET /clock HTTP/1.1\r\nHost: x\r\n\r\n", 200},
		{"HEAD", "HEAD /clock HTTP/1.1\r\nHost: x\r\n\r\n", 200},
		{"POST", "POST /clock HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405},
		{"PUT", "PUT /clock HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405},
		{"DELETE", "DELETE /clock HTTP/1.1\r\nHost: x\r\n\r\n", 405},
		// Echo answers OPTIONS itself: 204 with an Allow header.
		{"OPTIONS", "OPTIONS /clock HTTP/1.1\r\nHost: x\r\n\r\n", 204},
		{"made-up method", "BREW /clock HTTP/1.1\r\nHost: x\r\n\r\n", 405},
		{"lower-case get", "get /clock HTTP/1.1\r\nHost: x\r\n\r\n", 405},
		{"method with a control byte", "G\x01T /clock HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"empty method", " /clock HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"very long method", long(3000) + " /clock HTTP/1.1\r\nHost: x\r\n\r\n", 405},
		{"POST healthz", "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405},
		{"DELETE metrics", "DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 405},
		// Paths.
		{"trailing slash", "GET /clock/ HTTP/1.1\r\nHost: x\r\n\r\n", 404},
		{"upper case", "GET /CLOCK HTTP/1.1\r\nHost: x\r\n\r\n", 404},
		{"query", "GET /clock?x=1&y=%00 HTTP/1.1\r\nHost: x\r\n\r\n", 200},
		{"dot segments", "GET /a/../clock HTTP/1.1\r\nHost: x\r\n\r\n", 404},
		{"double slash", "GET //clock HTTP/1.1\r\nHost: x\r\n\r\n", 404},
		{"encoded slash", "GET /%2Fclock HTTP/1.1\r\nHost: x\r\n\r\n", 404},
		{"NUL escape", "GET /clock%00 HTTP/1.1\r\nHost: x\r\n\r\n", 404},
		{"bad escape", "GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"invalid UTF-8", "GET /%ff%fe HTTP/1.1\r\nHost: x\r\n\r\n", 404},
		{"absolute URL", "GET http://elsewhere.example/clock HTTP/1.1\r\nHost: x\r\n\r\n", 200},
		{"asterisk", "GET * HTTP/1.1\r\nHost: x\r\n\r\n", 404},
		{"no slash", "GET clock HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"long path under the limit", "GET /" + long(2000) + " HTTP/1.1\r\nHost: x\r\n\r\n", 404},
		{"path over the header limit", "GET /" + long(serve.MaxHeaderBytes+4096) + " HTTP/1.1\r\nHost: x\r\n\r\n", 431},
		// Protocol and headers.
		{"HTTP/1.0 without Host", "GET /clock HTTP/1.0\r\n\r\n", 200},
		{"HTTP/1.1 without Host", "GET /clock HTTP/1.1\r\n\r\n", 400},
		{"two Host headers", "GET /clock HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"unknown version", "GET /clock HTTP/9.9\r\nHost: x\r\n\r\n", 505},
		{"header without colon", "GET /clock HTTP/1.1\r\nHost: x\r\nbroken\r\n\r\n", 400},
		{"header with a space in its name", "GET /clock HTTP/1.1\r\nHost: x\r\nX Y: z\r\n\r\n", 400},
		// net/http joins a folded line (RFC 9112 allows a server to).
		{"obsolete line folding", "GET /clock HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", 200},
		{"one header of 2 KiB", "GET /clock HTTP/1.1\r\nHost: x\r\nX-A: " + long(2048) + "\r\n\r\n", 200},
		{"many small headers", "GET /clock HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-A: b\r\n", 300) + "\r\n", 200},
		{"one header over the limit", "GET /clock HTTP/1.1\r\nHost: x\r\nX-A: " + long(serve.MaxHeaderBytes+4096) + "\r\n\r\n", 431},
		{"many headers over the limit", "GET /clock HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-A: bbbbbbbbbbbbbbbb\r\n", 1000) + "\r\n", 431},
		{"a megabyte of header", "GET /clock HTTP/1.1\r\nHost: x\r\nX-A: " + long(1<<20) + "\r\n\r\n", 431},
		// Bodies: clock-api reads none.
		{"GET with a body", "GET /clock HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 200},
		{"GET announcing 1 GB", "GET /clock HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\nabc", 200},
		{"POST with a 1 MiB body", "POST /clock HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n" + long(1<<20), 405},
		{"chunked body", "POST /clock HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 405},
		{"bad Content-Length", "GET /clock HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400},
		{"negative Content-Length", "GET /clock HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400},
		{"two Content-Lengths", "GET /clock HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400},
		{"unknown Transfer-Encoding", "POST /clock HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
		{"Content-Length and chunked", "POST /clock HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, body := rawExchange(t, srv.Addr, tt.raw)
			if res.StatusCode != tt.want {
				t.Errorf("status %d (%q), want %d", res.StatusCode, body, tt.want)
			}
			if len(body) > 512 {
				t.Errorf("answer of %d bytes, want a short one", len(body))
			}
			if res.StatusCode >= 400 && strings.Contains(body, "aaaaaaaa") {
				t.Errorf("error answer echoes the input: %.80q", body)
			}
		})
	}
	// The server is still well after all of that.
	res, _ := rawExchange(t, srv.Addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	if res.StatusCode != 200 {
		t.Errorf("GET /healthz after the bad input: %d, want 200", res.StatusCode)
	}
}
