package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clock-app/clock/services/internal/envcfg"
	"github.com/clock-app/clock/services/internal/serve"
)

// logLines is a stdout for run that hands every JSON log line to the test as it is written.
type logLines struct {
	mu      sync.Mutex
	partial []byte
	lines   chan map[string]any
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := strings.IndexByte(string(l.partial), '\n')
		if i < 0 {
			return len(p), nil
		}
		var rec map[string]any
		if err := json.Unmarshal(l.partial[:i], &rec); err != nil {
			rec = map[string]any{"msg": "not JSON: " + string(l.partial[:i])}
		}
		l.partial = l.partial[i+1:]
		select {
		case l.lines <- rec:
		default: // the test stopped reading; never block the server
		}
	}
}

// waitFor returns the first log record with the message msg, or fails after a deadline.
func (l *logLines) waitFor(tb testing.TB, msg string) map[string]any {
	tb.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case rec := <-l.lines:
			if rec["msg"] == msg {
				return rec
			}
		case <-timeout:
			tb.Fatalf("no %q log line within 10s", msg)
			return nil
		}
	}
}

func TestRunServesAndShutsDown(t *testing.T) {
	up := startUpstream(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout := &logLines{lines: make(chan map[string]any, 1000)}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, env(map[string]string{
			"CLOCK_WEB_HOST": "127.0.0.1", "CLOCK_WEB_PORT": freePort(t), "CLOCK_WEB_API_URL": up.URL,
		}), stdout, io.Discard)
	}()

	start := stdout.waitFor(t, "starting")
	if cfg, ok := start["config"].(map[string]any); !ok || cfg["api_url"] != up.URL {
		t.Errorf("start-up log has config %v, want the effective configuration", start["config"])
	}
	addr, _ := stdout.waitFor(t, "listening")["addr"].(string)
	if _, _, err := net.SplitHostPort(addr); err != nil {
		t.Fatalf("listening on %q, want host:port", addr)
	}
	for path, want := range map[string]string{"/healthz": "ok", "/clock": upstreamBody} {
		res, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || string(body) != want {
			t.Errorf("GET %s: %d %q, want 200 %q", path, res.StatusCode, body, want)
		}
	}
	access := stdout.waitFor(t, "request")
	for _, key := range []string{"method", "path", "status", "duration", "remote"} {
		if _, ok := access[key]; !ok {
			t.Errorf("access log %v has no %q", access, key)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run after cancel: %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return within 10s of cancel")
	}
	if _, err := http.Get("http://" + addr + "/healthz"); err == nil {
		t.Error("server still answers after shutdown")
	}
}

func TestRunPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	err = run(context.Background(), nil,
		env(map[string]string{"CLOCK_WEB_HOST": "127.0.0.1", "CLOCK_WEB_PORT": port}), io.Discard, io.Discard)
	if err == nil || serve.ExitCode(err) != 1 {
		t.Errorf("run on a busy port: %v (exit %d), want a listen error, exit 1", err, serve.ExitCode(err))
	}
}

func TestCommands(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), []string{"version"}, env(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != version+"\n" {
		t.Errorf("version: got %q, want %q", got, version+"\n")
	}
	for _, args := range [][]string{{"serve-please"}, {"version", "extra"}} {
		err := run(context.Background(), args, env(nil), io.Discard, io.Discard)
		if err == nil || serve.ExitCode(err) != 2 {
			t.Errorf("run %q: %v (exit %d), want a usage error, exit 2", args, err, serve.ExitCode(err))
		}
	}
}

func TestHealthcheck(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		want   int // exit code
	}{
		{"healthy", http.StatusOK, 0},
		{"unhealthy", http.StatusServiceUnavailable, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/healthz" {
					http.NotFound(w, r)
					return
				}
				w.WriteHeader(tc.status)
			}))
			defer srv.Close()
			_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
			err := run(context.Background(), []string{"healthcheck"},
				env(map[string]string{"CLOCK_WEB_PORT": port}), io.Discard, io.Discard)
			if got := exitOf(err); got != tc.want {
				t.Errorf("healthcheck: %v (exit %d), want exit %d", err, got, tc.want)
			}
		})
	}
	t.Run("nothing listening", func(t *testing.T) {
		_, port, _ := net.SplitHostPort(strings.TrimPrefix(refusedURL(t), "http://"))
		err := run(context.Background(), []string{"healthcheck"},
			env(map[string]string{"CLOCK_WEB_PORT": port}), io.Discard, io.Discard)
		if got := exitOf(err); got != 1 {
			t.Errorf("healthcheck: %v (exit %d), want exit 1", err, got)
		}
	})
	t.Run("bad configuration", func(t *testing.T) {
		// Docker reserves health-check exit status 2: a bad configuration is still 1.
		err := run(context.Background(), []string{"healthcheck"},
			env(map[string]string{"CLOCK_WEB_PORT": "x"}), io.Discard, io.Discard)
		var ce *envcfg.Error
		if got := exitOf(err); got != 1 || !errors.As(err, &ce) {
			t.Errorf("healthcheck: %v (exit %d), want a configuration error, exit 1", err, got)
		}
	})
}

func exitOf(err error) int {
	if err == nil {
		return 0
	}
	return serve.ExitCode(err)
}

// freePort is a port the kernel just handed out and released: nothing listens there.
func freePort(tb testing.TB) string {
	tb.Helper()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(refusedURL(tb), "http://"))
	return port
}
