package verify

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeClock serves a page and a /clock that is off by skew, with the given Cache-Control.
func fakeClock(t *testing.T, page string, skew time.Duration, cacheControl string) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, page) })
	mux.HandleFunc("GET /clock", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", cacheControl)
		now := float64(time.Now().Add(skew).UnixNano()) / 1e9
		fmt.Fprint(w, strconv.FormatFloat(now, 'f', -1, 64))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

const page = `<html><body><time id="clock-time"></time></body></html>`

func TestClock(t *testing.T) {
	tests := []struct {
		name  string
		page  string
		skew  time.Duration
		cache string
		want  string // "" for success, else a part of the error
	}{
		{"good", page, 0, "no-store", ""},
		{"skewed", page, 10 * time.Second, "no-store", "away from this host's clock"},
		{"cached", page, 0, "max-age=60", "want no-store"},
		{"no clock on page", "<html></html>", 0, "no-store", "no #clock-time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := fakeClock(t, tt.page, tt.skew, tt.cache)
			r, err := Clock(context.Background(), http.DefaultClient, url, 5*time.Second)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Clock = %v, want success", err)
			case tt.want == "" && r.URL != url+"/":
				t.Errorf("URL = %q, want %q", r.URL, url+"/")
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Clock error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestClockBadStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad gateway", http.StatusBadGateway)
	}))
	t.Cleanup(srv.Close)
	_, err := Clock(context.Background(), http.DefaultClient, srv.URL, time.Second)
	if err == nil || !strings.Contains(err.Error(), "502") {
		t.Errorf("Clock = %v, want a 502 error", err)
	}
}

func TestWaitGivesUpWithLastError(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	url := fakeClock(t, "<html></html>", 0, "no-store")
	_, err := Wait(ctx, url, time.Second)
	if err == nil || !strings.Contains(err.Error(), "no #clock-time") {
		t.Errorf("Wait = %v, want the last check's error", err)
	}
}

func TestClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := Closed(context.Background(), addr); err == nil {
		t.Errorf("Closed(%s) = nil while listening, want an error", addr)
	}
	ln.Close()
	if err := Closed(context.Background(), addr); err != nil {
		t.Errorf("Closed(%s) after close = %v, want nil", addr, err)
	}
}
