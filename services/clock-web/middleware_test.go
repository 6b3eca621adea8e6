package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/clock-app/clock/services/internal/logjson"
)

func TestAccessLogLine(t *testing.T) {
	var logs bytes.Buffer
	web := newHandlerLogging(t, "http://127.0.0.1:1", nil, &logs)
	before := time.Now()
	ctx := newCtx(t, http.MethodGet, "/no/such/file", nil, "192.0.2.7:4711")
	web.handler(ctx)
	bodyLen := len(ctx.Response.Body())

	var line struct {
		Time                     time.Time
		Level, Msg, Method, Path string
		Remote                   string
		Status                   int
		Bytes                    int
		Duration                 *int64
	}
	dec := json.NewDecoder(&logs)
	if err := dec.Decode(&line); err != nil {
		t.Fatalf("access log is not JSON: %v (%q)", err, logs.String())
	}
	if line.Msg != "request" || line.Level != "INFO" || line.Method != "GET" || line.Path != "/no/such/file" ||
		line.Status != http.StatusNotFound || line.Bytes != bodyLen || line.Remote != "192.0.2.7:4711" ||
		line.Duration == nil || *line.Duration < 0 {
		t.Errorf("access log line = %+v, want INFO request GET /no/such/file 404 with %d bytes from 192.0.2.7:4711",
			line, bodyLen)
	}
	if line.Time.Before(before.Add(-time.Second)) || line.Time.After(time.Now().Add(time.Second)) {
		t.Errorf("access log time %v, want about now", line.Time)
	}
	if err := dec.Decode(&line); err != io.EOF {
		t.Errorf("want exactly one line per request, got more: %q", logs.String())
	}
}

func TestAccessLogOffAboveInfo(t *testing.T) {
	var logs bytes.Buffer
	h := newHandlerLogging(t, "http://127.0.0.1:1", map[string]string{"CLOCK_WEB_LOG_LEVEL": "warn"}, &logs)
	if rec := do(t, h, http.MethodGet, "/", nil); rec.Code != http.StatusOK {
		t.Fatalf("GET /: %d, want 200", rec.Code)
	}
	if logs.Len() != 0 {
		t.Errorf("log level warn still logs requests: %q", logs.String())
	}
}

// TestAccessLogBounded: the client's method and path are cut to logjson.MaxTextLen with a
// flag (the rule both services share), and the line stays one JSON object.
func TestAccessLogBounded(t *testing.T) {
	long := strings.Repeat("%41", 20<<10) // decodes to 20 KiB of "A"
	for _, tc := range []struct {
		name, method, target string
		wantMethod, wantPath string
		methodCut, pathCut   bool
	}{
		{"ordinary", "GET", "/app.js", "GET", "/app.js", false, false},
		{"long path", "GET", "/" + long, "GET", "/" + strings.Repeat("A", logjson.MaxTextLen-1), false, true},
		{"long method", "M" + strings.Repeat("X", 10<<10), "/", "M" + strings.Repeat("X", logjson.MaxTextLen-1), "/", true, false},
		{"escaped path", "GET", "/%00" + long, "GET", "/\x00" + strings.Repeat("A", logjson.MaxTextLen-2), false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			// Straight to the router: the server would refuse such a request line (431)
			// before any handler runs, and the bound is the handler's own.
			web := newHandlerLogging(t, "http://127.0.0.1:1", nil, &logs)
			web.handler(newCtx(t, tc.method, tc.target, nil, "192.0.2.1:1234"))
			var line struct {
				Method, Path string
				MethodCut    bool `json:"method_truncated"`
				PathCut      bool `json:"path_truncated"`
				Status       int
			}
			if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
				t.Fatalf("access log is not one JSON line: %v (%.200q)", err, logs.String())
			}
			if line.Method != tc.wantMethod || line.Path != tc.wantPath || line.MethodCut != tc.methodCut ||
				line.PathCut != tc.pathCut || line.Status == 0 {
				t.Errorf("access line %.300q,\nwant method %.30q (cut %v), path %.30q (cut %v)",
					logs.String(), tc.wantMethod, tc.methodCut, tc.wantPath, tc.pathCut)
			}
			// The worst case: both values at the limit, every byte escaped as \u00XX.
			if max := 2*6*logjson.MaxTextLen + 256; logs.Len() > max {
				t.Errorf("log line is %d bytes, want at most %d", logs.Len(), max)
			}
		})
	}
}
