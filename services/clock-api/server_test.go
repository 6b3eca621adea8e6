package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clock-app/clock/services/internal/serve"
)

// syncBuffer is an io.Writer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testConfig is the default configuration, as the service would load it.
func testConfig(tb testing.TB) config {
	tb.Helper()
	cfg, err := loadConfig(env(nil))
	if err != nil {
		tb.Fatalf("loadConfig: %v", err)
	}
	return cfg
}

// testServer is the real router under serve on a free loopback port.
type testServer struct {
	URL  string
	Addr string
	Logs *syncBuffer
	stop context.CancelFunc
	done chan struct{} // closed when serve has returned
	err  error         // serve's result, valid once done is closed
}

// startServer starts a testServer with the given router clock and stops it
// at cleanup. It returns once /healthz answers.
func startServer(tb testing.TB, cfg config, now func() time.Time) *testServer {
	tb.Helper()
	s := &testServer{Logs: &syncBuffer{}, done: make(chan struct{})}
	logger := newLogger(s.Logs, slog.LevelInfo)
	handler, err := newRouter(logger, prometheus.NewRegistry(), now)
	if err != nil {
		tb.Fatalf("newRouter: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	go func() {
		s.err = serveOn(ctx, cfg, ln, handler, logger)
		close(s.done)
	}()
	tb.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			tb.Errorf("server did not stop")
		}
	})
	s.Addr = ln.Addr().String()
	s.URL = "http://" + s.Addr
	waitReady(tb, s.URL+"/healthz")
	return s
}

// waitReady polls url until it answers 200 (no fixed sleep).
func waitReady(tb testing.TB, url string) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		res, err := http.Get(url)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s not ready: %v", url, err)
		}
		<-tick.C
	}
}

func TestServeClockOverTCP(t *testing.T) {
	srv := startServer(t, testConfig(t), time.Now)
	url, logs := srv.URL, srv.Logs

	before := float64(time.Now().UnixNano()) / 1e9
	res, err := http.Get(url + "/clock")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	after := float64(time.Now().UnixNano()) / 1e9
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /clock: status %d", res.StatusCode)
	}
	checkSeconds(t, string(body))
	got, err := strconv.ParseFloat(string(body), 64)
	if err != nil || got < before || got > after {
		t.Errorf("GET /clock = %q, want a time between %v and %v", body, before, after)
	}
	for k, want := range map[string]string{
		"Content-Type":   "text/plain; charset=utf-8",
		"Cache-Control":  "no-store",
		"Content-Length": strconv.Itoa(len(body)),
	} {
		if got := res.Header.Get(k); got != want {
			t.Errorf("GET /clock: %s = %q, want %q", k, got, want)
		}
	}

	res, err = http.Head(url + "/clock")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.ContentLength < 12 || res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("HEAD /clock: %s, Content-Length %d, Cache-Control %q", res.Status, res.ContentLength, res.Header.Get("Cache-Control"))
	}

	if log := logs.String(); !strings.Contains(log, `"msg":"starting"`) || !strings.Contains(log, `"read_header_timeout":"5s"`) {
		t.Errorf("no start-up line with the effective config in:\n%s", log)
	}
}

func TestServeShutsDownGracefully(t *testing.T) {
	// The clock blocks until released: a GET /clock stays in flight inside
	// its handler for as long as the test wants.
	entered := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	now := func() time.Time {
		once.Do(func() { close(entered) })
		<-release
		return fixedNow
	}
	srv := startServer(t, testConfig(t), now)
	url, addr := srv.URL, srv.Addr

	type result struct {
		status int
		body   string
		err    error
	}
	inflight := make(chan result, 1)
	go func() {
		res, err := http.Get(url + "/clock")
		if err != nil {
			inflight <- result{err: err}
			return
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		inflight <- result{res.StatusCode, string(b), err}
	}()
	<-entered

	srv.stop()
	// Shutdown has begun once the listener refuses new connections.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			close(release)
			t.Fatal("listener still open after the context was cancelled")
		}
	}
	select {
	case <-srv.done:
		close(release)
		t.Fatalf("serve returned (%v) while a request was in flight", srv.err)
	default:
	}

	close(release)
	r := <-inflight
	if r.err != nil || r.status != http.StatusOK || r.body != "1622556914.9101567" {
		t.Errorf("in-flight request: status %d, body %q, err %v; want 200 1622556914.9101567", r.status, r.body, r.err)
	}
	select {
	case <-srv.done:
		if srv.err != nil {
			t.Errorf("serve after shutdown: %v, want nil", srv.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return after the in-flight request finished")
	}
	if !strings.Contains(srv.Logs.String(), `"msg":"stopped"`) {
		t.Errorf("no stopped line in:\n%s", srv.Logs.String())
	}
}

func TestRunHealthcheck(t *testing.T) {
	srv := startServer(t, testConfig(t), time.Now)
	_, port, _ := net.SplitHostPort(srv.Addr)
	var stdout, stderr strings.Builder
	if err := run(context.Background(), []string{"healthcheck"}, env(map[string]string{"CLOCK_API_PORT": port}), &stdout, &stderr); err != nil {
		t.Errorf("healthcheck against a serving server: %v", err)
	}
}

func TestRunHealthcheckFailsWithoutServer(t *testing.T) {
	// A port that was just free: nothing answers there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	var stdout, stderr strings.Builder
	err = run(context.Background(), []string{"healthcheck"}, env(map[string]string{"CLOCK_API_PORT": port}), &stdout, &stderr)
	if err == nil || serve.ExitCode(err) != 1 {
		t.Errorf("healthcheck with no server: %v, want an error with exit code 1", err)
	}
}

func TestServeReturnsListenerErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close() // Serve fails at once on a closed listener
	h, _ := newTestRouter(t)
	err = serveOn(context.Background(), testConfig(t), ln, h, newLogger(io.Discard, slog.LevelInfo))
	if err == nil {
		t.Error("serve on a closed listener: nil, want an error")
	}
}

// TestRunServesUntilCancelled drives the whole program: run binds from the
// environment, serves, and returns nil when its context ends. run takes the
// port only from CLOCK_API_PORT (0 is rejected there), so the test uses a
// port the kernel just handed out and released.
func TestRunServesUntilCancelled(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	getenv := env(map[string]string{"CLOCK_API_HOST": "127.0.0.1", "CLOCK_API_PORT": port})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, nil, getenv, &stdout, &stderr) }()
	waitReady(t, "http://"+addr+"/healthz")

	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("run after cancel: %v, want nil (exit 0)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after its context was cancelled")
	}
	for _, want := range []string{`"msg":"starting"`, `"msg":"listening","addr":"` + addr + `"`, `"msg":"stopped"`} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %s:\n%s", want, stdout.String())
		}
	}
}
