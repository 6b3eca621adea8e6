package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestAccessLogLine(t *testing.T) {
	var logs bytes.Buffer
	h := newHandlerLogging(t, "http://127.0.0.1:1", nil, &logs)
	req := httptest.NewRequest(http.MethodGet, "/no/such/file", nil)
	req.RemoteAddr = "192.0.2.7:4711"
	before := time.Now()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)

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
		line.Status != http.StatusNotFound || line.Bytes != rec.Body.Len() || line.Remote != "192.0.2.7:4711" ||
		line.Duration == nil || *line.Duration < 0 {
		t.Errorf("access log line = %+v, want INFO request GET /no/such/file 404 with %d bytes from 192.0.2.7:4711",
			line, rec.Body.Len())
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
