package main

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestHandleClock(t *testing.T) {
	rec := httptest.NewRecorder()
	before := float64(time.Now().UnixNano()) / 1e9
	handleClock(rec, httptest.NewRequest(http.MethodGet, "/clock", nil))
	after := float64(time.Now().UnixNano()) / 1e9

	body := rec.Body.String()
	got, err := strconv.ParseFloat(body, 64)
	if err != nil || !strings.Contains(body, ".") || strings.ContainsAny(body, "eE\n") {
		t.Fatalf("body %q: want a plain decimal like Python's time.time()", body)
	}
	if got < before || got > after {
		t.Errorf("got %v, want between %v and %v", got, before, after)
	}
	for k, want := range map[string]string{
		"Content-Type":  "text/plain; charset=utf-8",
		"Cache-Control": "no-store",
	} {
		if got := rec.Header().Get(k); got != want {
			t.Errorf("%s: got %q, want %q", k, got, want)
		}
	}
}
