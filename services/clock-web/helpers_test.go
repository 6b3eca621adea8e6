package main

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/clock-app/clock/services/internal/logjson"
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
func newTestHandler(tb testing.TB, apiURL string, vars map[string]string) (http.Handler, *syncBuffer) {
	tb.Helper()
	logs := &syncBuffer{}
	return newHandlerLogging(tb, apiURL, vars, logs), logs
}

// newHandlerLogging builds the real router with its logs going to w.
func newHandlerLogging(tb testing.TB, apiURL string, vars map[string]string, w io.Writer) http.Handler {
	tb.Helper()
	all := map[string]string{"CLOCK_WEB_API_URL": apiURL}
	for k, v := range vars {
		all[k] = v
	}
	cfg, err := loadConfig(env(all))
	if err != nil {
		tb.Fatalf("loadConfig: %v", err)
	}
	h, err := newHandler(cfg, slog.New(logjson.New(w, cfg.LogLevel)))
	if err != nil {
		tb.Fatalf("newHandler: %v", err)
	}
	return h
}

// do sends one request through the handler. target is a raw request target, like a client
// would send it ("/clock/../metrics" stays as written).
func do(tb testing.TB, h http.Handler, method, target string, header map[string]string) *httptest.ResponseRecorder {
	tb.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func mustContain(tb testing.TB, what, s, sub string) {
	tb.Helper()
	if !strings.Contains(s, sub) {
		tb.Errorf("%s: %q does not contain %q", what, s, sub)
	}
}
