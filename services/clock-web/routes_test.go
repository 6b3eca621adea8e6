package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The bad-input suite: hostile or broken requests from the browser side, and a broken or
// hostile API on the other, all through the real handler behind a real HTTP server on
// loopback, so that what is checked is what goes over the wire.

// badInputTimeout is the CLOCK_WEB_PROXY_TIMEOUT of the suite: long enough for loopback,
// short enough that the hanging cases cost little.
const badInputTimeout = 300 * time.Millisecond

// wireHeaders are the only headers an answer from /clock may carry: clock-web's own, and
// those net/http adds. Everything else would have come from the upstream.
var wireHeaders = []string{
	"Cache-Control", "Content-Type", "Content-Length", "Content-Security-Policy",
	"X-Content-Type-Options", "Referrer-Policy", "Date", "Connection",
}

// upstreamDate is the Date every fake upstream sends; clock-web's own is now.
const upstreamDate = "Mon, 01 Jan 2001 00:00:00 GMT"

// leakyHeaders are what an upstream, or something in front of it, may add; none may reach
// the page's origin.
var leakyHeaders = map[string]string{
	"Set-Cookie":                   "session=upstream; Path=/",
	"Server":                       "clock-api/leaky",
	"X-Powered-By":                 "Echo",
	"Access-Control-Allow-Origin":  "*",
	"Strict-Transport-Security":    "max-age=0",
	"Content-Security-Policy":      "default-src *",
	"X-Frame-Options":              "ALLOWALL",
	"X-Content-Type-Options":       "off",
	"Referrer-Policy":              "unsafe-url",
	"Location":                     "http://evil.example/",
	"Link":                         "<http://evil.example/x.js>; rel=preload",
	"Refresh":                      "0; url=http://evil.example/",
	"Content-Disposition":          "attachment; filename=clock.html",
	"ETag":                         `"upstream"`,
	"Last-Modified":                upstreamDate,
	"Vary":                         "*",
	"Cache-Control":                "public, max-age=31536000",
	"Alt-Svc":                      `h3=":443"`,
	"Date":                         upstreamDate,
	"Clear-Site-Data":              `"*"`,
	"X-Upstream-Internal-Address":  "10.0.0.7:8000",
	"Cross-Origin-Resource-Policy": "cross-origin",
}

// recorder is a fake clock-api that keeps what reached it.
type recorder struct {
	mu   sync.Mutex
	reqs []seenRequest
}

type seenRequest struct {
	method, target string
	header         http.Header
	bodyLen        int64
}

func (rc *recorder) record(r *http.Request) {
	n, _ := io.Copy(io.Discard, r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.reqs = append(rc.reqs, seenRequest{r.Method, r.URL.RequestURI(), r.Header.Clone(), n})
}

func (rc *recorder) seen() []seenRequest {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.reqs)
}

// fakeAPI starts an HTTP upstream that records each request and answers with h (nil: a
// healthy clock-api that also sends every leaky header).
func fakeAPI(tb testing.TB, h http.HandlerFunc) (*httptest.Server, *recorder) {
	tb.Helper()
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) {
			for k, v := range leakyHeaders {
				w.Header().Set(k, v)
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			io.WriteString(w, upstreamBody)
		}
	}
	rc := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.record(r)
		h(w, r)
	}))
	tb.Cleanup(srv.Close)
	return srv, rc
}

// rawAPI starts a TCP upstream that speaks whatever serve writes; serve gets the request
// already read. Connections are closed when the test ends.
func rawAPI(tb testing.TB, serve func(c net.Conn)) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
					return
				}
				serve(c)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// untilClosed blocks until the proxy hangs up, the way a stuck upstream does.
func untilClosed(c net.Conn) { _, _ = io.Copy(io.Discard, c) }

// startWeb serves the real handler for an API at apiURL over loopback.
func startWeb(tb testing.TB, apiURL string) (*liveWeb, *syncBuffer) {
	tb.Helper()
	web, logs := newTestHandler(tb, apiURL, map[string]string{
		"CLOCK_WEB_PROXY_TIMEOUT":      badInputTimeout.String(),
		"CLOCK_WEB_PROXY_DIAL_TIMEOUT": "200ms",
	})
	return web.listen(tb), logs
}

type answer struct {
	status  int
	header  http.Header
	body    string
	elapsed time.Duration
	closed  bool // the server said Connection: close (net/http takes the header out)
}

// send makes one request to the web server on a fresh connection; prepare may change it.
func send(tb testing.TB, base, method, target string, prepare func(*http.Request)) answer {
	tb.Helper()
	client := &http.Client{
		Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true, DisableCompression: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
	req, err := http.NewRequest(method, base+target, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if prepare != nil {
		prepare(req)
	}
	start := time.Now()
	res, err := client.Do(req)
	if err != nil {
		tb.Fatalf("%s %.80s: %v", method, target, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		tb.Fatalf("%s %.80s: body: %v", method, target, err)
	}
	return answer{res.StatusCode, res.Header, string(body), time.Since(start), res.Close}
}

// checkOwnHeaders fails on any header of an answer that clock-web does not set itself.
func checkOwnHeaders(tb testing.TB, a answer) {
	tb.Helper()
	for name, values := range a.header {
		if !slices.Contains(wireHeaders, name) {
			tb.Errorf("header %s: %q reached the browser", name, values)
		}
	}
	for name, want := range map[string]string{
		"Cache-Control":           "no-store",
		"Content-Type":            "text/plain; charset=utf-8",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"Content-Security-Policy": wantCSP,
	} {
		if got := a.header.Values(name); len(got) != 1 || got[0] != want {
			tb.Errorf("%s = %q, want [%q]", name, got, want)
		}
	}
	if got := a.header.Get("Date"); got == upstreamDate {
		tb.Errorf("Date %q is the upstream's", got)
	}
}

// checkLogsJSON fails unless every log line is one JSON object; it returns the lines.
func checkLogsJSON(tb testing.TB, logs string) []map[string]any {
	tb.Helper()
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSuffix(logs, "\n"), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			tb.Errorf("log line is not JSON: %q", l)
			continue
		}
		lines = append(lines, m)
	}
	return lines
}

// captureStdLog sends the standard log package's output to a buffer for the test and fails
// the test if anything was written there: every line must go through slog, as JSON.
func captureStdLog(t *testing.T) {
	t.Helper()
	var buf syncBuffer
	out, flags := log.Writer(), log.Flags()
	log.SetOutput(&buf)
	t.Cleanup(func() {
		log.SetOutput(out)
		log.SetFlags(flags)
		if s := buf.String(); s != "" {
			t.Errorf("plain-text lines on the standard logger: %q", s)
		}
	})
}

// TestBadRequests sends what a hostile or broken browser might: odd methods, paths, header
// sizes and bodies. Only a bodiless GET or HEAD of exactly /clock reaches the API, and then
// as a request built from the configuration alone.
func TestBadRequests(t *testing.T) {
	captureStdLog(t)
	api, seen := fakeAPI(t, nil)
	web, logs := startWeb(t, api.URL)

	huge := strings.Repeat("x", 32<<10)
	withBody := func(body string, chunked bool) func(*http.Request) {
		return func(r *http.Request) {
			r.Body = io.NopCloser(strings.NewReader(body))
			r.ContentLength = int64(len(body))
			if chunked {
				r.ContentLength = -1
				r.TransferEncoding = []string{"chunked"}
			}
		}
	}
	header := func(kv ...string) func(*http.Request) {
		return func(r *http.Request) {
			for i := 0; i < len(kv); i += 2 {
				r.Header.Add(kv[i], kv[i+1])
			}
		}
	}
	manyHeaders := func(r *http.Request) {
		for i := range 200 {
			r.Header.Set(fmt.Sprintf("X-H%d", i), "v")
		}
	}
	for _, tc := range []struct {
		name, method, target string
		prepare              func(*http.Request)
		want                 int
		proxied              bool // reaches the API, as GET or HEAD /clock
	}{
		{"GET", "GET", "/clock", nil, http.StatusOK, true},
		{"HEAD", "HEAD", "/clock", nil, http.StatusOK, true},
		{"query dropped", "GET", "/clock?a=" + huge[:4<<10], nil, http.StatusOK, true},
		{"empty body", "GET", "/clock", withBody("", false), http.StatusOK, true},

		{"POST", "POST", "/clock", withBody("x", false), http.StatusMethodNotAllowed, false},
		{"PUT", "PUT", "/clock", nil, http.StatusMethodNotAllowed, false},
		{"DELETE", "DELETE", "/clock", nil, http.StatusMethodNotAllowed, false},
		{"PATCH", "PATCH", "/clock", nil, http.StatusMethodNotAllowed, false},
		{"OPTIONS", "OPTIONS", "/clock", nil, http.StatusMethodNotAllowed, false},
		{"TRACE", "TRACE", "/clock", nil, http.StatusMethodNotAllowed, false},
		{"lower-case get", "get", "/clock", nil, http.StatusMethodNotAllowed, false},
		{"unknown method", "BREW", "/clock", nil, http.StatusMethodNotAllowed, false},
		{"long method", "M" + strings.Repeat("X", 4<<10), "/clock", nil, http.StatusMethodNotAllowed, false},

		{"trailing slash", "GET", "/clock/", nil, http.StatusNotFound, false},
		{"sub-path", "GET", "/clock/metrics", nil, http.StatusNotFound, false},
		{"upper case", "GET", "/CLOCK", nil, http.StatusNotFound, false},
		{"API-only path", "GET", "/metrics", nil, http.StatusNotFound, false},
		{"long path", "GET", "/" + huge, nil, http.StatusRequestHeaderFieldsTooLarge, false},

		{"body with length", "GET", "/clock", withBody("hello", false), http.StatusRequestEntityTooLarge, false},
		{"chunked body", "GET", "/clock", withBody("hello", true), http.StatusRequestEntityTooLarge, false},
		{"HEAD with body", "HEAD", "/clock", withBody("hello", false), http.StatusRequestEntityTooLarge, false},
		{"large body", "GET", "/clock", withBody(huge, false), http.StatusRequestEntityTooLarge, false},

		{"large cookie", "GET", "/clock", header("Cookie", "a="+huge), http.StatusRequestHeaderFieldsTooLarge, false},
		{"cookie of nginx's size", "GET", "/clock", header("Cookie", "a="+huge[:7<<10]), http.StatusOK, true},
		{"many headers", "GET", "/clock", manyHeaders, http.StatusOK, true},
		{"credentials", "GET", "/clock", header("Authorization", "Basic eDp5", "Cookie", "s=1"), http.StatusOK, true},
		{"forwarding headers", "GET", "/clock", header("X-Forwarded-For", "203.0.113.9", "Forwarded", "for=x",
			"X-Forwarded-Host", "evil.example", "X-Real-Ip", "10.0.0.1"), http.StatusOK, true},
		{"hop-by-hop", "GET", "/clock", header("Connection", "X-Secret", "X-Secret", "1", "Te", "trailers",
			"Upgrade", "websocket"), http.StatusOK, true},
		{"expect continue", "GET", "/clock", header("Expect", "100-continue"), http.StatusOK, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(seen.seen())
			a := send(t, web.URL, tc.method, tc.target, tc.prepare)
			if a.status != tc.want {
				t.Fatalf("status %d, want %d (body %.80q)", a.status, tc.want, a.body)
			}
			after := seen.seen()[before:]
			if !tc.proxied {
				if len(after) != 0 {
					t.Errorf("the API saw %d requests, want none", len(after))
				}
				if tc.want == http.StatusRequestEntityTooLarge {
					checkOwnHeaders(t, a)
					want := "Request Entity Too Large\n"
					if tc.method == "HEAD" {
						want = ""
					}
					if a.body != want || !a.closed {
						t.Errorf("413 body %q, connection closed %v; want %q and closed", a.body, a.closed, want)
					}
				}
				return
			}
			checkOwnHeaders(t, a)
			if len(after) != 1 {
				t.Fatalf("the API saw %d requests, want 1", len(after))
			}
			got := after[0]
			if want := tc.method + " /clock"; got.method+" "+got.target != want || got.bodyLen != 0 {
				t.Errorf("the API saw %s %.80s with %d body bytes, want %s and none", got.method, got.target, got.bodyLen, want)
			}
			// The request is the configuration's alone: none of the browser's headers.
			for name, values := range got.header {
				if name != "User-Agent" {
					t.Errorf("the API got header %s: %.80q", name, values)
				}
			}
			if tc.method == "GET" && a.body != upstreamBody {
				t.Errorf("body %q, want %q", a.body, upstreamBody)
			}
			if tc.method == "HEAD" && (a.body != "" || a.header.Get("Content-Length") != fmt.Sprint(len(upstreamBody))) {
				t.Errorf("HEAD: body %q, Content-Length %q; want none and %d", a.body, a.header.Get("Content-Length"), len(upstreamBody))
			}
		})
	}
	lines := checkLogsJSON(t, logs.String())
	for _, l := range lines {
		if p, _ := l["path"].(string); len(p) > 256 || l["msg"] == "proxy error" {
			t.Errorf("log line %.200v: want access lines only, paths cut to 256 bytes", l)
		}
	}
}

// TestBadUpstream has the API misbehave in every way it can: down, hanging, slow, huge,
// wrong status or type, broken mid-answer. The browser gets either the clock with
// clock-web's own headers, or a generic 502/504 that says nothing of the upstream; the
// operator gets a JSON line with the cause; nothing waits past CLOCK_WEB_PROXY_TIMEOUT.
func TestBadUpstream(t *testing.T) {
	captureStdLog(t)
	status := func(code int, ct string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			for k, v := range leakyHeaders {
				w.Header().Set(k, v)
			}
			if ct != "" {
				w.Header().Set("Content-Type", ct)
			} else {
				w.Header()["Content-Type"] = nil // no sniffing either
			}
			w.WriteHeader(code)
			io.WriteString(w, "upstream secret 10.0.0.7\n")
		}
	}
	raw := func(s string) func(net.Conn) { return func(c net.Conn) { io.WriteString(c, s) } }
	rawThenHang := func(s string) func(net.Conn) {
		return func(c net.Conn) { io.WriteString(c, s); untilClosed(c) }
	}
	const okHead = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	for _, tc := range []struct {
		name   string
		http   http.HandlerFunc // an HTTP upstream, or
		raw    func(net.Conn)   // a TCP one, or neither: nothing listens
		want   int
		body   string // the browser's body on 200
		reason string // in the log line
	}{
		{"down", nil, nil, http.StatusBadGateway, "", "connection refused"},
		{"hangs after the request", nil, untilClosed, http.StatusGatewayTimeout, "", "CLOCK_WEB_PROXY_TIMEOUT"},
		{"slow body", nil, rawThenHang(okHead + "Content-Length: 18\r\n\r\n17323"), http.StatusGatewayTimeout, "", "CLOCK_WEB_PROXY_TIMEOUT"},
		{"slow chunked body", nil, rawThenHang(okHead + "Transfer-Encoding: chunked\r\n\r\n5\r\n17323\r\n"), http.StatusGatewayTimeout, "", "CLOCK_WEB_PROXY_TIMEOUT"},
		{"slow headers", nil, rawThenHang("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"), http.StatusGatewayTimeout, "", "CLOCK_WEB_PROXY_TIMEOUT"},
		{"cut mid-body", nil, raw(okHead + "Content-Length: 18\r\n\r\n17323"), http.StatusBadGateway, "", "unexpected EOF"},
		{"cut before headers", nil, raw(""), http.StatusBadGateway, "", "EOF"},
		{"not HTTP", nil, raw("SSH-2.0-OpenSSH_9.2\r\n"), http.StatusBadGateway, "", "malformed HTTP"},
		{"huge declared body", nil, rawThenHang(okHead + "Content-Length: 1073741824\r\n\r\n1"), http.StatusBadGateway, "", "over 64 bytes"},
		{"huge body", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Write(bytes.Repeat([]byte("9"), 1<<20))
		}, nil, http.StatusBadGateway, "", "over 64 bytes"},
		{"huge chunked body", nil, rawThenHang(okHead + "Transfer-Encoding: chunked\r\n\r\n40000\r\n" + strings.Repeat("9", 1<<18)), http.StatusBadGateway, "", "over 64 bytes"},
		{"body one over the cap", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Write(bytes.Repeat([]byte("9"), maxUpstreamBody+1))
		}, nil, http.StatusBadGateway, "", "over 64 bytes"},
		{"body at the cap", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Write(bytes.Repeat([]byte("9"), maxUpstreamBody))
		}, nil, http.StatusOK, strings.Repeat("9", maxUpstreamBody), ""},
		{"huge headers", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("X-Pad", strings.Repeat("p", 8<<10))
			io.WriteString(w, upstreamBody)
		}, nil, http.StatusBadGateway, "", "headers exceeded"},
		{"endless headers", nil, rawThenHang(okHead + strings.Repeat("X-Pad: "+strings.Repeat("p", 1000)+"\r\n", 64)), http.StatusBadGateway, "", "headers exceeded"},
		{"404", status(http.StatusNotFound, "text/plain"), nil, http.StatusBadGateway, "", "upstream status 404"},
		{"500", status(http.StatusInternalServerError, "text/plain"), nil, http.StatusBadGateway, "", "upstream status 500"},
		{"503", status(http.StatusServiceUnavailable, "text/plain"), nil, http.StatusBadGateway, "", "upstream status 503"},
		{"redirect", status(http.StatusFound, "text/plain"), nil, http.StatusBadGateway, "", "upstream status 302"},
		{"204", status(http.StatusNoContent, "text/plain"), nil, http.StatusBadGateway, "", "upstream status 204"},
		{"206", status(http.StatusPartialContent, "text/plain"), nil, http.StatusBadGateway, "", "upstream status 206"},
		{"101", nil, raw("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"), http.StatusBadGateway, "", "101"},
		{"html", status(http.StatusOK, "text/html; charset=utf-8"), nil, http.StatusBadGateway, "", `upstream Content-Type ["text/html; charset=utf-8"]`},
		{"json", status(http.StatusOK, "application/json"), nil, http.StatusBadGateway, "", "application/json"},
		{"no type", status(http.StatusOK, ""), nil, http.StatusBadGateway, "", "upstream Content-Type []"},
		{"text/plainx", status(http.StatusOK, "text/plainx"), nil, http.StatusBadGateway, "", "text/plainx"},
		{"two types", nil, raw(okHead + "Content-Type: text/html\r\nContent-Length: 1\r\n\r\n1"), http.StatusBadGateway, "", "text/html"},
		{"gzip", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Encoding", "gzip")
			io.WriteString(w, upstreamBody)
		}, nil, http.StatusBadGateway, "", "Content-Encoding"},
		{"leaky 200", status(http.StatusOK, "text/plain; charset=utf-8"), nil, http.StatusOK, "upstream secret 10.0.0.7\n", ""},
		{"type in capitals", status(http.StatusOK, "TEXT/PLAIN; charset=UTF-8"), nil, http.StatusOK, "upstream secret 10.0.0.7\n", ""},
		{"early hints first", nil, raw("HTTP/1.1 103 Early Hints\r\nLink: </evil.js>; rel=preload\r\n\r\n" +
			okHead + "Content-Length: 18\r\n\r\n" + upstreamBody), http.StatusOK, upstreamBody, ""},
		{"HTTP/1.0 until close", nil, raw("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + upstreamBody), http.StatusOK, upstreamBody, ""},
		{"trailers", nil, raw(okHead + "Transfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n12\r\n" + upstreamBody +
			"\r\n0\r\nX-T: leaked\r\n\r\n"), http.StatusOK, upstreamBody, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var apiURL string
			switch {
			case tc.http != nil:
				srv, _ := fakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Date", upstreamDate)
					tc.http(w, r)
				})
				apiURL = srv.URL
			case tc.raw != nil:
				apiURL = rawAPI(t, tc.raw)
			default:
				apiURL = refusedURL(t)
			}
			web, logs := startWeb(t, apiURL)
			a := send(t, web.URL, "GET", "/clock", nil)
			if a.status != tc.want {
				t.Fatalf("status %d, want %d (body %.80q; log %s)", a.status, tc.want, a.body, logs)
			}
			checkOwnHeaders(t, a)
			if limit := badInputTimeout + time.Second; a.elapsed > limit {
				t.Errorf("took %v, want under %v", a.elapsed, limit)
			}
			if tc.want == http.StatusGatewayTimeout && a.elapsed < badInputTimeout {
				t.Errorf("504 after %v, before the %v timeout", a.elapsed, badInputTimeout)
			}
			lines := checkLogsJSON(t, logs.String())
			if tc.want == http.StatusOK {
				if a.body != tc.body {
					t.Errorf("body %q, want %q", a.body, tc.body)
				}
				if len(lines) != 1 || lines[0]["msg"] != "request" {
					t.Errorf("log %q, want the access line only", logs)
				}
				return
			}
			assertGenericError(t, a.body, a.header, apiURL, tc.want)
			var proxyErr map[string]any
			for _, l := range lines {
				if l["msg"] == "proxy error" {
					proxyErr = l
				}
			}
			if proxyErr == nil || proxyErr["status"] != float64(tc.want) || proxyErr["level"] != "WARN" {
				t.Fatalf("log %q: want a WARN proxy error line with status %d", logs, tc.want)
			}
			if e, _ := proxyErr["error"].(string); !strings.Contains(e, tc.reason) || len(e) > 256 {
				t.Errorf("logged error %q, want it to name %q in at most 256 bytes", e, tc.reason)
			}
		})
	}
}

// TestClientGoesAway: a browser that leaves while the API is slow does not hold the
// exchange past CLOCK_WEB_PROXY_TIMEOUT. fasthttp's server does not tell a handler that its
// client left, so the exchange runs out its one deadline, then closes its connection to the
// API and logs a 504 as JSON.
func TestClientGoesAway(t *testing.T) {
	captureStdLog(t)
	closed := make(chan time.Time, 1)
	addr := rawAPI(t, func(c net.Conn) {
		untilClosed(c)
		closed <- time.Now()
	})
	web, logs := startWeb(t, addr)
	c, err := net.Dial("tcp", web.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, "GET /clock HTTP/1.1\r\nHost: clock.test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the exchange has started
	left := time.Now()
	c.Close()
	select {
	case at := <-closed:
		if d := at.Sub(left); d > badInputTimeout+time.Second {
			t.Errorf("the API's connection was closed %v after the browser left, want within the proxy timeout (%v)", d, badInputTimeout)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the API's connection was never closed after the browser left")
	}
	for deadline := time.Now().Add(3 * time.Second); !strings.Contains(logs.String(), `"status":504`); {
		if time.Now().After(deadline) {
			t.Fatalf("no 504 in the log: %q", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	checkLogsJSON(t, logs.String())
}
