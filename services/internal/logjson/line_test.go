package logjson

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// accessLine writes with Line what accessRecord holds, for the given path and remote.
func accessLine(tb testing.TB, h slog.Handler, t time.Time, path, remote string) bool {
	tb.Helper()
	l, ok := NewLine(h, t, slog.LevelInfo, "request")
	if !ok {
		tb.Fatal("NewLine refused an access-log line")
	}
	l.Text("method", []byte("GET"))
	l.Text("path", []byte(path))
	l.Int("status", 200)
	l.Int("bytes", 664)
	l.Duration("duration", 41*time.Microsecond)
	l.String("remote", remote)
	return l.Write()
}

func TestLineMatchesJSONHandler(t *testing.T) {
	at := time.Date(2026, 11, 23, 10, 4, 5, 123456789, time.FixedZone("", 5*3600+45*60))
	for _, tc := range []struct {
		name   string
		path   string
		remote string
		fast   bool // whether Line writes it, or leaves it to slog
	}{
		{"ipv4", "/clock", "192.0.2.1:43210", true},
		{"ipv6", "/", "[2001:db8::1:0:0:1]:65535", true},
		{"ipv6 zone", "/", "[fe80::1%eth0]:80", true},
		{"unix", "/", "/run/x.sock", true},
		{"html", "/<script>&", "192.0.2.1:1", true},
		{"quote", `/a"b`, "192.0.2.1:1", false},
		{"control", "/a\nb", "192.0.2.1:1", false},
		{"unicode", "/héllo", "192.0.2.1:1", false},
		{"long", "/" + strings.Repeat("a", MaxTextLen), "192.0.2.1:1", false},
		{"at the bound", "/" + strings.Repeat("a", MaxTextLen-1), "192.0.2.1:1", true},
		{"remote to escape", "/", `a"b`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got bytes.Buffer
			if fast := accessLine(t, New(&got, nil), at, tc.path, tc.remote); fast != tc.fast {
				t.Fatalf("Write reported %v, want %v", fast, tc.fast)
			}
			if !tc.fast {
				if got.Len() != 0 {
					t.Errorf("a void line wrote %q", got.String())
				}
				return
			}
			r := record(at, slog.LevelInfo, "request", slog.String("method", "GET"), slog.String("path", tc.path),
				slog.Int("status", 200), slog.Int("bytes", 664), slog.Duration("duration", 41*time.Microsecond),
				slog.String("remote", tc.remote))
			if want := reference(t, r, nil); got.String() != want {
				t.Errorf("got  %s\nwant %s", got.String(), want)
			}
		})
	}
}

func TestNewLineRefuses(t *testing.T) {
	at := time.Date(2026, 11, 23, 10, 4, 5, 0, time.UTC)
	var b bytes.Buffer
	for _, tc := range []struct {
		name string
		h    slog.Handler
		t    time.Time
		msg  string
	}{
		{"another handler", slog.NewJSONHandler(&b, nil), at, "request"},
		{"zero time", New(&b, nil), time.Time{}, "request"},
		{"year 10000", New(&b, nil), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), "request"},
		{"message to escape", New(&b, nil), at, `say "hi"`},
	} {
		if _, ok := NewLine(tc.h, tc.t, slog.LevelInfo, tc.msg); ok {
			t.Errorf("%s: NewLine took it", tc.name)
		}
	}
}

func TestLineAllocations(t *testing.T) {
	h := New(discard{}, nil)
	at := time.Now()
	// A path past the 32 bytes a string conversion may keep on the stack, too.
	for _, path := range [][]byte{[]byte("/clock"), []byte("/" + strings.Repeat("a", 100))} {
		n := testing.AllocsPerRun(100, func() {
			l, _ := NewLine(h, at, slog.LevelInfo, "request")
			l.Text("method", []byte("GET"))
			l.Text("path", path)
			l.Int("status", 200)
			l.Duration("duration", time.Millisecond)
			l.String("remote", "192.0.2.1:43210")
			if !l.Write() {
				t.Fatal("the line was void")
			}
		})
		if n != 0 {
			t.Errorf("path of %d bytes: %v allocations per line, want 0", len(path), n)
		}
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkLine and BenchmarkRecord write the same access-log line, with Line and through
// slog.Record and the handler's short cut.
func BenchmarkLine(b *testing.B) {
	h := New(discard{}, nil)
	b.ReportAllocs()
	for b.Loop() {
		accessLine(b, h, time.Now(), "/clock", "192.0.2.1:43210")
	}
}

func BenchmarkRecord(b *testing.B) {
	h := New(discard{}, nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		r := slog.NewRecord(time.Now(), slog.LevelInfo, "request", 0)
		AddText(&r, "method", string([]byte("GET")))
		AddText(&r, "path", string([]byte("/clock")))
		r.AddAttrs(slog.Int("status", 200), slog.Int("bytes", 664), slog.Duration("duration", 41*time.Microsecond),
			slog.String("remote", "192.0.2.1:43210"))
		_ = h.Handle(ctx, r)
	}
}

// TestAppendTime checks the cached stamp against time.RFC3339Nano: fractions with and without
// trailing zeros, whole seconds, the turn of a second, and another zone in the same second
// (the cache is keyed by both).
func TestAppendTime(t *testing.T) {
	east := time.FixedZone("", 5*3600+45*60)
	west := time.FixedZone("", -(3*3600 + 30*60))
	base := time.Date(2026, 11, 23, 23, 59, 59, 0, time.UTC)
	var times []time.Time
	for _, ns := range []int{0, 1, 10, 100_000, 120_000_000, 123_456_789, 999_999_999} {
		for _, loc := range []*time.Location{time.UTC, east, west, time.Local} {
			at := base.Add(time.Duration(ns)).In(loc)
			times = append(times, at, at.Add(time.Second), at)
		}
	}
	times = append(times, time.Now(), time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 5, east))
	for _, at := range times {
		if got, want := string(appendTime([]byte("x"), at)), "x"+at.Format(time.RFC3339Nano); got != want {
			t.Errorf("appendTime(%v) = %s, want %s", at, got, want)
		}
	}
}
