package main

import (
	"bytes"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestProxy(t *testing.T) {
	up := startUpstream(t, nil)
	h, _ := newTestHandler(t, up.URL, nil)

	rec := do(t, h, "GET", "/clock?x=1", map[string]string{"Cookie": "a=b", "Authorization": "Basic eDp5"})
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /clock: status %d, want 200", rec.Code)
	}
	if got := rec.Body.String(); got != upstreamBody {
		t.Errorf("GET /clock: body %q, want %q", got, upstreamBody)
	}
	for name, want := range map[string]string{
		"Cache-Control":           "no-store",
		"Content-Type":            "text/plain; charset=utf-8",
		"X-Content-Type-Options":  "nosniff",
		"Content-Security-Policy": wantCSP,
	} {
		if got := rec.Header().Values(name); len(got) != 1 || got[0] != want {
			t.Errorf("GET /clock: %s = %q, want [%q]", name, got, want)
		}
	}
	for _, name := range []string{"Set-Cookie", "X-Frame-Options"} {
		if got := rec.Header().Values(name); got != nil {
			t.Errorf("GET /clock: upstream %s %q passed through", name, got)
		}
	}

	head := do(t, h, "HEAD", "/clock", nil)
	if head.Code != http.StatusOK || head.Body.Len() != 0 {
		t.Errorf("HEAD /clock: status %d with %d body bytes, want 200 and none", head.Code, head.Body.Len())
	}
	if got, want := head.Header().Get("Content-Length"), strconv.Itoa(len(upstreamBody)); got != want {
		t.Errorf("HEAD /clock: Content-Length %q, want the API's %q", got, want)
	}
	// The server cleans the path before routing, as nginx does (merge_slashes, decoding):
	// these are /clock too, and reach the API as exactly that.
	for _, target := range []string{"//clock", "/clo%63k", "/x/../clock"} {
		if rec := do(t, h, "GET", target, nil); rec.Code != http.StatusOK {
			t.Errorf("GET %s: status %d, want 200", target, rec.Code)
		}
	}
	// The query never reaches the API, only exactly /clock does.
	if got, want := strings.Join(up.seen(), ","), "GET /clock,HEAD /clock,GET /clock,GET /clock,GET /clock"; got != want {
		t.Errorf("upstream saw %q, want %q", got, want)
	}
}

func TestProxyPathPrefix(t *testing.T) {
	up := startUpstream(t, nil)
	h, _ := newTestHandler(t, up.URL+"/api/", nil)
	if rec := do(t, h, "GET", "/clock", nil); rec.Code != http.StatusOK {
		t.Fatalf("GET /clock: status %d, want 200", rec.Code)
	}
	if got, want := strings.Join(up.seen(), ","), "GET /api/clock"; got != want {
		t.Errorf("upstream saw %q, want %q", got, want)
	}
}

func TestOnlyClockIsProxied(t *testing.T) {
	up := startUpstream(t, nil)
	h, _ := newTestHandler(t, up.URL, nil)
	for _, tc := range []struct{ method, target string }{
		{"GET", "/metrics"},
		{"GET", "/clock/"},
		{"GET", "/clock/x"},
		{"GET", "/clock/../metrics"},
		{"GET", "/clock/./"},
		{"GET", "/./clock/../metrics"},
		{"GET", "/clock%2F..%2Fmetrics"},
		{"GET", "/clock%2fmetrics"},
		{"GET", "/%2e%2e/metrics"},
		{"GET", "/Clock"},
		{"GET", "/CLOCK"},
		{"GET", "/clock.txt"},
		{"GET", "/clock;x"},
		{"GET", "/clockx"},
		{"GET", "/clock%00"},
		{"GET", "/healthz"},
		{"GET", "/"},
		{"GET", "/app.js"},
		{"GET", "http://evil.example/metrics"},
		{"POST", "/clock"},
		{"PUT", "/clock"},
		{"DELETE", "/clock"},
		{"OPTIONS", "/clock"},
	} {
		rec := do(t, h, tc.method, tc.target, nil)
		if rec.Code >= 500 {
			t.Errorf("%s %s: status %d", tc.method, tc.target, rec.Code)
		}
		if got := up.seen(); len(got) != 0 {
			t.Errorf("%s %s (status %d): upstream saw %q, want nothing", tc.method, tc.target, rec.Code, got)
		}
	}
}

// refusedURL returns the URL of a port that nothing listens on.
func refusedURL(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

func TestProxyUpstreamDown(t *testing.T) {
	api := refusedURL(t)
	h, logs := newTestHandler(t, api, nil)
	start := time.Now()
	rec := do(t, h, "GET", "/clock", nil)
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("GET /clock with the API down took %v, want under 1s", elapsed)
	}
	if rec.Code != http.StatusBadGateway {
		t.Fatalf("GET /clock with the API down: status %d, want 502", rec.Code)
	}
	assertGenericError(t, rec.Body.String(), rec.Header(), api, http.StatusBadGateway)
	mustContain(t, "log", logs.String(), "connection refused")
}

func TestProxyUpstreamDialTimeout(t *testing.T) {
	// 192.0.2.0/24 (TEST-NET-1) is never routed: the dial hangs until the dial timeout, or
	// fails at once where there is no route at all. Either way: 502, within a second.
	h, _ := newTestHandler(t, "http://192.0.2.1:9", map[string]string{"CLOCK_WEB_PROXY_DIAL_TIMEOUT": "200ms"})
	start := time.Now()
	rec := do(t, h, "GET", "/clock", nil)
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("GET /clock with an unroutable API took %v, want under 1s", elapsed)
	}
	if rec.Code != http.StatusBadGateway {
		t.Errorf("GET /clock with an unroutable API: status %d, want 502", rec.Code)
	}
}

func TestProxyUpstreamSlow(t *testing.T) {
	release := make(chan struct{})
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // runs before the server's Close
	h, logs := newTestHandler(t, up.URL, map[string]string{"CLOCK_WEB_PROXY_TIMEOUT": "100ms"})
	start := time.Now()
	rec := do(t, h, "GET", "/clock", nil)
	if rec.Code != http.StatusGatewayTimeout {
		t.Fatalf("GET /clock with a slow API: status %d, want 504", rec.Code)
	}
	if elapsed := time.Since(start); elapsed < 100*time.Millisecond || elapsed > 2*time.Second {
		t.Errorf("GET /clock with a slow API took %v, want about the 100ms proxy timeout", elapsed)
	}
	assertGenericError(t, rec.Body.String(), rec.Header(), up.URL, http.StatusGatewayTimeout)
	mustContain(t, "log", logs.String(), "no whole answer within CLOCK_WEB_PROXY_TIMEOUT (100ms)")
}

// assertGenericError checks that a proxy error tells the client nothing about the upstream.
func assertGenericError(tb testing.TB, body string, h http.Header, api string, status int) {
	tb.Helper()
	if want := http.StatusText(status) + "\n"; body != want {
		tb.Errorf("error body %q, want %q", body, want)
	}
	host := strings.TrimPrefix(api, "http://")
	for _, leak := range []string{host, "dial", "refused", "timeout", "127.0.0.1"} {
		for name, values := range h {
			for _, v := range values {
				if strings.Contains(v, leak) {
					tb.Errorf("error header %s: %q leaks %q", name, v, leak)
				}
			}
		}
	}
	if got := h.Get("Cache-Control"); got != "no-store" {
		tb.Errorf("error Cache-Control %q, want no-store", got)
	}
}

// TestProxyKeepsConnections: concurrent browsers share the kept-alive pool to the API, and
// a refused answer (whose unread body must not be pooled) costs only its own connection.
func TestProxyKeepsConnections(t *testing.T) {
	var mu sync.Mutex
	peers := map[string]bool{} // the proxy's side of each connection
	conns := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(peers)
	}
	var bad atomic.Bool
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		peers[r.RemoteAddr] = true
		mu.Unlock()
		w.Header().Set("Content-Type", "text/plain")
		if bad.Load() {
			w.Write(bytes.Repeat([]byte("9"), 1<<16))
			return
		}
		io.WriteString(w, upstreamBody)
	})
	h, _ := newTestHandler(t, up.URL, nil)

	const browsers, each = 8, 25
	var wg sync.WaitGroup
	for range browsers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if rec := do(t, h, "GET", "/clock", nil); rec.Code != http.StatusOK || rec.Body.String() != upstreamBody {
					t.Errorf("GET /clock: %d %q, want 200 %q", rec.Code, rec.Body.String(), upstreamBody)
					return
				}
			}
		}()
	}
	wg.Wait()
	// A request that finds the pool busy starts a dial, and may then take a connection that
	// came free meanwhile; the dialled one joins the pool. So a few more than one each.
	if n := conns(); n < 1 || n > 2*browsers {
		t.Errorf("%d requests from %d browsers took %d connections to the API, want 1 to %d",
			browsers*each, browsers, n, 2*browsers)
	}

	before := conns()
	bad.Store(true)
	if rec := do(t, h, "GET", "/clock", nil); rec.Code != http.StatusBadGateway {
		t.Fatalf("GET /clock with a 64 KiB body: %d, want 502", rec.Code)
	}
	bad.Store(false)
	for range 3 {
		if rec := do(t, h, "GET", "/clock", nil); rec.Code != http.StatusOK {
			t.Fatalf("GET /clock after a refused answer: %d, want 200", rec.Code)
		}
	}
	// The refused answer's connection was dropped, the others stayed in the pool.
	if n := conns() - before; n > 1 {
		t.Errorf("after a refused answer, %d new connections, want at most 1", n)
	}
}

// keepAliveAnswer is an API's answer that leaves the connection open.
const keepAliveAnswer = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 18\r\n\r\n" + upstreamBody

// TestProxyRetriesOnlyStaleConnections: a pooled connection that the API closed while it
// was idle costs the browser nothing (the request goes again on a new one), but an API that
// fails a fresh connection gets each request once.
//
// The API closes each connection after one answer: at once, so that the next request is
// reset; or half-closed and then silent, not even a reset (its network is gone: a stopped
// container), where only the read Go tries before it waits finds the FIN. That read is
// skipped within sendWithReadWithin of the last answer (rawio's
// TestSendOnReadMissesAnEarlierFIN has the wait it would cost), so the requests there come
// after a pause past it: without the bound they are 504s at the proxy timeout.
func TestProxyRetriesOnlyStaleConnections(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after func(c net.Conn) // once the answer is written; the connection is closed after it
		pause time.Duration
	}{
		{"closed", func(net.Conn) {}, 0},
		{"half-closed and silent", func(c net.Conn) {
			c.(*net.TCPConn).CloseWrite()
			io.Copy(io.Discard, c) // until the test ends
		}, 20 * sendWithReadWithin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var served atomic.Int64
			api := rawAPI(t, func(c net.Conn) {
				served.Add(1)
				io.WriteString(c, keepAliveAnswer)
				tc.after(c)
			})
			h, logs := newTestHandler(t, api, nil)
			for i := range 3 {
				time.Sleep(tc.pause)
				if rec := do(t, h, "GET", "/clock", nil); rec.Code != http.StatusOK || rec.Body.String() != upstreamBody {
					t.Fatalf("GET /clock #%d on a closed pooled connection: %d %q, want 200 %q (log %s)",
						i+1, rec.Code, rec.Body.String(), upstreamBody, logs)
				}
			}
			if n := served.Load(); n != 3 {
				t.Errorf("the API answered %d requests, want 3", n)
			}
		})
	}

	var seen atomic.Int64
	closing := rawAPI(t, func(net.Conn) { seen.Add(1) }) // reads the request, answers nothing
	h, _ := newTestHandler(t, closing, nil)
	if rec := do(t, h, "GET", "/clock", nil); rec.Code != http.StatusBadGateway {
		t.Fatalf("GET /clock from an API that hangs up: %d, want 502", rec.Code)
	}
	if n := seen.Load(); n != 1 {
		t.Errorf("an API that hangs up on a fresh connection got the request %d times, want 1", n)
	}
}

// TestProxyTLSVerifies: an https API_URL speaks TLS and checks the API's certificate
// against the system's roots; one it cannot verify is a 502 and the API sees nothing.
func TestProxyTLSVerifies(t *testing.T) {
	var seen atomic.Int64
	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, upstreamBody)
	}))
	api.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	t.Cleanup(api.Close)
	h, logs := newTestHandler(t, api.URL, nil)
	rec := do(t, h, "GET", "/clock", nil)
	if rec.Code != http.StatusBadGateway {
		t.Fatalf("GET /clock from an API with an unknown certificate: %d, want 502", rec.Code)
	}
	assertGenericError(t, rec.Body.String(), rec.Header(), api.URL, http.StatusBadGateway)
	mustContain(t, "log", logs.String(), "TLS with the API")
	mustContain(t, "log", logs.String(), "certificate")
	if n := seen.Load(); n != 0 {
		t.Errorf("the API got %d requests over an unverified connection, want none", n)
	}
}
