package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var fixedNow = time.Unix(1622556914, 910156700)

// newTestRouter returns the real router with a fixed clock, its own metrics
// registry, and the access log going to the returned buffer.
func newTestRouter(tb testing.TB) (http.Handler, *bytes.Buffer) {
	tb.Helper()
	var logs bytes.Buffer
	h, err := newRouter(newLogger(&logs, slog.LevelInfo), prometheus.NewRegistry(), func() time.Time { return fixedNow })
	if err != nil {
		tb.Fatalf("newRouter: %v", err)
	}
	return h, &logs
}

func serveOnce(h http.Handler, method, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

func TestRoutes(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		target     string
		wantStatus int
		wantBody   string // exact; "" with HEAD means empty
		wantHeader map[string]string
	}{
		{
			name: "GET clock", method: http.MethodGet, target: "/clock",
			wantStatus: http.StatusOK, wantBody: "1622556914.9101567",
			wantHeader: map[string]string{
				"Content-Type":  "text/plain; charset=utf-8",
				"Cache-Control": "no-store",
			},
		},
		{
			name: "HEAD clock", method: http.MethodHead, target: "/clock",
			wantStatus: http.StatusOK, wantBody: "",
			wantHeader: map[string]string{
				"Content-Type":  "text/plain; charset=utf-8",
				"Cache-Control": "no-store",
			},
		},
		{
			name: "POST clock", method: http.MethodPost, target: "/clock",
			wantStatus: http.StatusMethodNotAllowed,
			wantHeader: map[string]string{"Allow": "OPTIONS, GET, HEAD"},
		},
		{
			name: "PUT clock", method: http.MethodPut, target: "/clock",
			wantStatus: http.StatusMethodNotAllowed,
			wantHeader: map[string]string{"Allow": "OPTIONS, GET, HEAD"},
		},
		{
			name: "DELETE clock", method: http.MethodDelete, target: "/clock",
			wantStatus: http.StatusMethodNotAllowed,
			wantHeader: map[string]string{"Allow": "OPTIONS, GET, HEAD"},
		},
		{
			name: "clock ignores query", method: http.MethodGet, target: "/clock?x=1",
			wantStatus: http.StatusOK, wantBody: "1622556914.9101567",
		},
		{
			name: "healthz", method: http.MethodGet, target: "/healthz",
			wantStatus: http.StatusOK, wantBody: "ok",
		},
		{
			name: "unknown path", method: http.MethodGet, target: "/nope",
			wantStatus: http.StatusNotFound,
		},
	}
	h, _ := newTestRouter(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := serveOnce(h, tt.method, tt.target)
			if rec.Code != tt.wantStatus {
				t.Errorf("%s %s: status %d, want %d", tt.method, tt.target, rec.Code, tt.wantStatus)
			}
			if tt.wantBody != "" || tt.method == http.MethodHead {
				if got := rec.Body.String(); got != tt.wantBody {
					t.Errorf("%s %s: body %q, want %q", tt.method, tt.target, got, tt.wantBody)
				}
			}
			for k, want := range tt.wantHeader {
				if got := rec.Header().Get(k); got != want {
					t.Errorf("%s %s: header %s = %q, want %q", tt.method, tt.target, k, got, want)
				}
			}
		})
	}
}

func TestMetricsCountClockRequests(t *testing.T) {
	h, _ := newTestRouter(t)
	serveOnce(h, http.MethodGet, "/clock")
	serveOnce(h, http.MethodGet, "/clock")
	serveOnce(h, http.MethodPost, "/clock")
	serveOnce(h, http.MethodGet, "/nothing/here")

	rec := serveOnce(h, http.MethodGet, "/metrics")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: status %d, want 200", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("GET /metrics: Content-Type %q, want text/plain", ct)
	}
	body := rec.Body.String()
	for _, want := range []string{
		`clock_api_requests_total{code="200",host="",method="GET",url="/clock"} 2`,
		// Methods other than GET and HEAD are one label value, OTHER.
		`clock_api_requests_total{code="405",host="",method="OTHER",url="/clock"} 1`,
		// Unmatched paths are counted under one label, not one series each.
		`clock_api_requests_total{code="404",host="",method="GET",url="unmatched"} 1`,
		`clock_api_request_duration_seconds_count{code="200",host="",method="GET",url="/clock"} 2`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("GET /metrics: no line %q in:\n%s", want, body)
		}
	}
}

func TestMetricsRegistriesAreIsolated(t *testing.T) {
	a, _ := newTestRouter(t)
	b, _ := newTestRouter(t)
	serveOnce(a, http.MethodGet, "/clock")
	body := serveOnce(b, http.MethodGet, "/metrics").Body.String()
	if strings.Contains(body, `url="/clock"`) {
		t.Errorf("router b counts router a's request:\n%s", body)
	}
}

func TestAccessLog(t *testing.T) {
	h, logs := newTestRouter(t)
	req := httptest.NewRequest(http.MethodPost, "/clock", nil)
	req.RemoteAddr = "192.0.2.7:4711"
	req.Header.Set("X-Forwarded-For", "203.0.113.9") // must not be trusted
	h.ServeHTTP(httptest.NewRecorder(), req)

	var line struct {
		Level, Msg, Method, Path, Remote string
		Status                           int
		Duration                         *int64
	}
	dec := json.NewDecoder(logs)
	if err := dec.Decode(&line); err != nil {
		t.Fatalf("access log is not JSON: %v (%q)", err, logs.String())
	}
	if line.Msg != "request" || line.Level != "INFO" || line.Method != "POST" || line.Path != "/clock" ||
		line.Status != http.StatusMethodNotAllowed || line.Remote != "192.0.2.7" || line.Duration == nil {
		t.Errorf("access log line = %+v, want INFO request POST /clock 405 from 192.0.2.7 with a duration", line)
	}
	if err := dec.Decode(&line); err != io.EOF {
		t.Errorf("want exactly one log line per request, got more: %q", logs.String())
	}
}

func TestAccessLogOffAboveInfo(t *testing.T) {
	var logs bytes.Buffer
	h, err := newRouter(newLogger(&logs, slog.LevelWarn), prometheus.NewRegistry(), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	serveOnce(h, http.MethodGet, "/clock")
	if logs.Len() != 0 {
		t.Errorf("LOG_LEVEL=warn still logs requests: %q", logs.String())
	}
}

func BenchmarkClock(b *testing.B) {
	h, err := newRouter(newLogger(io.Discard, slog.LevelInfo), prometheus.NewRegistry(), time.Now)
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/clock", nil)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, req)
	}
	if w.status != http.StatusOK {
		b.Fatalf("status %d", w.status)
	}
}

// BenchmarkBareHandler is the yardstick for BenchmarkClock: a plain net/http
// handler writing the same body, with no router, log or metrics.
func BenchmarkBareHandler(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(appendUnix(nil, time.Now()))
	})
	req := httptest.NewRequest(http.MethodGet, "/clock", nil)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, req)
	}
}

func BenchmarkAppendUnix(b *testing.B) {
	var buf [32]byte
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		appendUnix(buf[:0], now)
	}
}

// discardWriter is a ResponseWriter that keeps nothing, so the benchmark
// measures the router and not httptest.ResponseRecorder.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }

func TestPanicBecomes500(t *testing.T) {
	var logs bytes.Buffer
	h, err := newRouter(newLogger(&logs, slog.LevelInfo), prometheus.NewRegistry(), func() time.Time { panic("clock broke") })
	if err != nil {
		t.Fatal(err)
	}
	rec := serveOnce(h, http.MethodGet, "/clock")
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("GET /clock with a panicking handler: status %d, want 500", rec.Code)
	}
	for _, want := range []string{`"msg":"panic"`, `"error":"clock broke"`, `"msg":"request"`, `"status":500`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, logs.String())
		}
	}
	metrics := serveOnce(h, http.MethodGet, "/metrics").Body.String()
	if want := `clock_api_requests_total{code="500",host="",method="GET",url="/clock"} 1`; !strings.Contains(metrics, want) {
		t.Errorf("metrics lack %s", want)
	}
}
