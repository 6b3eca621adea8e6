package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

func TestFloodRefusesAnythingButLoopback(t *testing.T) {
	for _, addr := range []string{"192.0.2.1:80", "example.com:80", "0.0.0.0:80", "[2001:db8::1]:80"} {
		if err := flood(addr, 0, "idle", 1, 0, time.Second); err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("flood(%s): %v, want a refusal naming loopback", addr, err)
		}
	}
}

func TestFloodBounds(t *testing.T) {
	for _, tc := range []struct {
		n    int
		hold time.Duration
	}{{0, time.Second}, {maxConns + 1, time.Second}, {1, 0}, {1, maxHold + time.Second}} {
		if err := flood("127.0.0.1:1", 0, "idle", tc.n, 0, tc.hold); err == nil {
			t.Errorf("flood(n=%d, hold=%v): nil, want a bounds error", tc.n, tc.hold)
		}
	}
}

func TestFloodIdleAgainstAServer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	addr := srv.Listener.Addr().(*net.TCPAddr).String()
	if err := flood(addr, os.Getpid(), "idle", 5, 0, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if s := status(os.Getpid()); s.rss <= 0 || s.hwm < s.rss {
		t.Errorf("status of this process = %+v, want VmRSS > 0 and VmHWM >= VmRSS", s)
	}
}
