package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/clock-app/clock/services/internal/logjson"
	"github.com/clock-app/clock/services/internal/serve"
	"github.com/valyala/fasthttp"
)

// env turns a map into a getenv function, so tests never touch the process environment.
func env(vars map[string]string) func(string) string {
	return func(key string) string { return vars[key] }
}

// syncBuffer is a log sink that handlers on other goroutines may write to.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// upstream is a fake clock-api that records every request it receives.
type upstream struct {
	*httptest.Server
	hits  atomic.Int64
	mu    sync.Mutex
	paths []string
}

func (u *upstream) seen() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.paths...)
}

const upstreamBody = "1732312345.123456\n"

// startUpstream starts a fake API; handler nil answers like clock-api's /clock.
func startUpstream(tb testing.TB, handler http.HandlerFunc) *upstream {
	tb.Helper()
	u := &upstream{}
	if handler == nil {
		handler = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			// Headers that must not survive the proxy.
			w.Header().Set("X-Frame-Options", "SAMEORIGIN")
			w.Header().Set("Set-Cookie", "session=upstream")
			io.WriteString(w, upstreamBody)
		}
	}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		u.mu.Lock()
		u.paths = append(u.paths, r.Method+" "+r.URL.RequestURI())
		u.mu.Unlock()
		handler(w, r)
	}))
	tb.Cleanup(u.Close)
	return u
}

// newTestHandler builds the real router for an API at apiURL, with extra environment vars.
func newTestHandler(tb testing.TB, apiURL string, vars map[string]string) (*testWeb, *syncBuffer) {
	tb.Helper()
	logs := &syncBuffer{}
	return newHandlerLogging(tb, apiURL, vars, logs), logs
}

// testWeb is the real router behind the real server configuration, without a listener: each
// request goes over its own in-memory connection (do), so that what a test reads is what the
// server writes on the wire, error answers of the server itself included.
type testWeb struct {
	handler fasthttp.RequestHandler
	server  *fasthttp.Server // without a listener's idle hook
	cfg     config
	logger  *slog.Logger
}

// newHandlerLogging builds the real router with its logs going to w.
func newHandlerLogging(tb testing.TB, apiURL string, vars map[string]string, w io.Writer) *testWeb {
	tb.Helper()
	all := map[string]string{"CLOCK_WEB_API_URL": apiURL}
	for k, v := range vars {
		all[k] = v
	}
	cfg, err := loadConfig(env(all))
	if err != nil {
		tb.Fatalf("loadConfig: %v", err)
	}
	logger := slog.New(logjson.New(w, cfg.LogLevel))
	h, err := newHandler(cfg, logger)
	if err != nil {
		tb.Fatalf("newHandler: %v", err)
	}
	return &testWeb{handler: h, server: newServer(cfg, h, logger, nil), cfg: cfg, logger: logger}
}

// do sends one request through the server. target is a raw request target, like a client
// would send it ("/clock/../metrics" stays as written).
func do(tb testing.TB, web *testWeb, method, target string, header map[string]string) *httptest.ResponseRecorder {
	tb.Helper()
	return roundTrip(tb, web.server, rawRequest(method, target, header, true), method)
}

// rawRequest writes a request as a client sends it, with a Host and the given headers;
// closing adds Connection: close.
func rawRequest(method, target string, header map[string]string, closing bool) string {
	var raw strings.Builder
	fmt.Fprintf(&raw, "%s %s HTTP/1.1\r\nHost: clock.test\r\n", method, target)
	if closing {
		raw.WriteString("Connection: close\r\n")
	}
	for k, v := range header {
		fmt.Fprintf(&raw, "%s: %s\r\n", k, v)
	}
	raw.WriteString("\r\n")
	return raw.String()
}

// roundTrip writes a raw request to srv over an in-memory connection and reads the answer.
func roundTrip(tb testing.TB, srv *fasthttp.Server, raw, method string) *httptest.ResponseRecorder {
	tb.Helper()
	client, server := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- srv.ServeConn(server) }()
	defer func() {
		client.Close()
		<-done
	}()
	go func() { _, _ = io.WriteString(client, raw) }()
	res, err := http.ReadResponse(bufio.NewReader(client), &http.Request{Method: method})
	if err != nil {
		tb.Fatalf("%s: reading the answer: %v", strings.SplitN(raw, "\r\n", 2)[0], err)
	}
	defer res.Body.Close()
	rec := httptest.NewRecorder()
	for k, v := range res.Header {
		rec.Header()[k] = v
	}
	if res.Close {
		rec.Header().Set("Connection", "close")
	}
	rec.WriteHeader(res.StatusCode)
	if _, err := io.Copy(rec.Body, res.Body); err != nil {
		tb.Fatalf("reading the body: %v", err)
	}
	return rec
}

func mustContain(tb testing.TB, what, s, sub string) {
	tb.Helper()
	if !strings.Contains(s, sub) {
		tb.Errorf("%s: %q does not contain %q", what, s, sub)
	}
}

// newCtx parses one request the way the server would, with no size limit, for a test that
// calls the router directly (web.handler): the benchmarks, and the tests of what the router
// does with requests the server would refuse first.
func newCtx(tb testing.TB, method, target string, header map[string]string, remote string) *fasthttp.RequestCtx {
	tb.Helper()
	raw := rawRequest(method, target, header, false)
	var req fasthttp.Request
	if err := req.Read(bufio.NewReaderSize(strings.NewReader(raw), len(raw)+16)); err != nil {
		tb.Fatalf("%.80s %.80s: %v", method, target, err)
	}
	addr, err := net.ResolveTCPAddr("tcp", remote)
	if err != nil {
		tb.Fatal(err)
	}
	ctx := &fasthttp.RequestCtx{}
	ctx.Init(&req, addr, nil)
	return ctx
}

// liveWeb is a testWeb serving on a loopback port through the real listener (serve.Listen's
// connection cap included), for the tests that need a real socket.
type liveWeb struct {
	Addr string // host:port
	URL  string // http://host:port
}

// listen serves web on a fresh loopback port until the test ends.
func (web *testWeb) listen(tb testing.TB) *liveWeb {
	tb.Helper()
	ln, err := serve.Listen(context.Background(), serve.Config{Host: "127.0.0.1"}, 0, serve.RawIO)
	if err != nil {
		tb.Fatal(err)
	}
	srv := newServer(web.cfg, web.handler, web.logger, serve.IdleHook(ln))
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	tb.Cleanup(func() {
		_ = srv.Shutdown()
		<-done
	})
	return &liveWeb{Addr: ln.Addr().String(), URL: "http://" + ln.Addr().String()}
}

// cannedAPI is an upstream that answers every request on a connection with clock-api's
// answer, written once: the wire benchmarks measure clock-web, not a fake API.
func cannedAPI(tb testing.TB) string {
	tb.Helper()
	answer := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\n" +
		"Content-Length: " + strconv.Itoa(len(upstreamBody)) + "\r\n\r\n" + upstreamBody)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					// A request from the proxy has no body: it ends with an empty line.
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
					}
					if _, err := c.Write(answer); err != nil {
						return
					}
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// benchmarkWire GETs path from the server at addr over 8 kept-alive connections in parallel.
func benchmarkWire(b *testing.B, addr, path string) {
	client := &fasthttp.HostClient{Addr: addr, MaxConns: 8}
	b.ReportAllocs()
	b.SetParallelism(4) // 4 x GOMAXPROCS goroutines, at most 8 connections
	b.RunParallel(func(pb *testing.PB) {
		req, res := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(res)
		req.SetRequestURI("http://" + addr + path)
		for pb.Next() {
			if err := client.Do(req, res); err != nil {
				b.Error(err)
				return
			}
			if res.StatusCode() != http.StatusOK {
				b.Errorf("status %d", res.StatusCode())
				return
			}
		}
	})
}
