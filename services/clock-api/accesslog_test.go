package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clock-app/clock/services/internal/logjson"
)

// TestAccessLogBounded sends the client-controlled parts of the access line at sizes a
// hostile client would choose: each is cut to logjson.MaxTextLen with a flag, the rest of the
// line is intact, and ordinary requests carry no flag.
func TestAccessLogBounded(t *testing.T) {
	long := strings.Repeat("a", 64<<10)
	for _, tc := range []struct {
		name, method, path   string
		wantMethod, wantPath string
		methodFlag, pathFlag bool
		wantStatus           int
	}{
		{"ordinary", "GET", "/clock", "GET", "/clock", false, false, http.StatusOK},
		{"long path", "GET", "/" + long, "GET", ("/" + long)[:logjson.MaxTextLen], false, true, http.StatusNotFound},
		{"long method", "X" + long, "/clock", ("X" + long)[:logjson.MaxTextLen], "/clock", true, false, http.StatusMethodNotAllowed},
		{"both", "X" + long, "/" + long, ("X" + long)[:logjson.MaxTextLen], ("/" + long)[:logjson.MaxTextLen], true, true, http.StatusNotFound},
		{"escaped long path", "GET", "/\x00" + long, "GET", ("/\x00" + long)[:logjson.MaxTextLen], false, true, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			h, err := newRouter(slog.New(logjson.New(&logs, slog.LevelInfo)), prometheus.NewRegistry(), time.Now)
			if err != nil {
				t.Fatalf("newRouter: %v", err)
			}
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.Method, req.URL.Path = tc.method, tc.path
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.wantStatus {
				t.Errorf("status %d, want %d", rec.Code, tc.wantStatus)
			}
			sc := bufio.NewScanner(&logs)
			sc.Buffer(nil, 1<<20)
			var lines []string
			for sc.Scan() {
				lines = append(lines, sc.Text())
			}
			if len(lines) != 1 {
				t.Fatalf("%d log lines, want 1: %q", len(lines), lines)
			}
			// Every byte escaped as \u00XX, plus the other fields: the line's worst case.
			if max := 2 * 6 * logjson.MaxTextLen; len(lines[0]) > max {
				t.Errorf("log line is %d bytes, want at most %d", len(lines[0]), max)
			}
			var line struct {
				Msg, Method, Path string
				MethodTruncated   bool `json:"method_truncated"`
				PathTruncated     bool `json:"path_truncated"`
				Status            int
			}
			if err := json.Unmarshal([]byte(lines[0]), &line); err != nil {
				t.Fatalf("access log is not JSON: %v (%q)", err, lines[0])
			}
			if line.Msg != "request" || line.Method != tc.wantMethod || line.Path != tc.wantPath ||
				line.MethodTruncated != tc.methodFlag || line.PathTruncated != tc.pathFlag || line.Status != tc.wantStatus {
				t.Errorf("access line %.300q,\nwant method %.40q (cut %v), path %.40q (cut %v), status %d",
					lines[0], tc.wantMethod, tc.methodFlag, tc.wantPath, tc.pathFlag, tc.wantStatus)
			}
		})
	}
}
