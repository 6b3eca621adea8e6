package logjson

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

// accessLine writes with Line what accessRecord holds, for the given path and remote.
func accessLine(tb testing.TB, h slog.Handler, t time.Time, path string, remote net.Addr) bool {
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
	l.Addr("remote", remote)
	return l.Write()
}

func TestLineMatchesJSONHandler(t *testing.T) {
	at := time.Date(2026, 11, 23, 10, 4, 5, 123456789, time.FixedZone("", 5*3600+45*60))
	for _, tc := range []struct {
		name   string
		path   string
		remote net.Addr
		fast   bool // whether Line writes it, or leaves it to slog
	}{
		{"ipv4", "/clock", &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1).To4(), Port: 43210}, true},
		{"v4 in v6", "/", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, true},
		{"ipv6", "/", &net.TCPAddr{IP: net.ParseIP("2001:db8::1:0:0:1"), Port: 65535}, true},
		{"ipv6 zone", "/", &net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 80, Zone: "eth0"}, true},
		{"no ip", "/", &net.TCPAddr{Port: 80}, true},
		{"unix", "/", &net.UnixAddr{Name: "/run/x.sock", Net: "unix"}, true},
		{"html", "/<script>&", &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1}, true},
		{"quote", `/a"b`, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1}, false},
		{"control", "/a\nb", &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1}, false},
		{"unicode", "/héllo", &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1}, false},
		{"long", "/" + strings.Repeat("a", MaxTextLen), &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1}, false},
		{"at the bound", "/" + strings.Repeat("a", MaxTextLen-1), &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1}, true},
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
				slog.String("remote", tc.remote.String()))
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
	remote := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 43210}
	at := time.Now()
	// A path past the 32 bytes a string conversion may keep on the stack, too.
	for _, path := range [][]byte{[]byte("/clock"), []byte("/" + strings.Repeat("a", 100))} {
		n := testing.AllocsPerRun(100, func() {
			l, _ := NewLine(h, at, slog.LevelInfo, "request")
			l.Text("method", []byte("GET"))
			l.Text("path", path)
			l.Int("status", 200)
			l.Duration("duration", time.Millisecond)
			l.Addr("remote", remote)
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
	remote := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 43210}
	b.ReportAllocs()
	for b.Loop() {
		accessLine(b, h, time.Now(), "/clock", remote)
	}
}

func BenchmarkRecord(b *testing.B) {
	h := New(discard{}, nil)
	remote := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 43210}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		r := slog.NewRecord(time.Now(), slog.LevelInfo, "request", 0)
		AddText(&r, "method", string([]byte("GET")))
		AddText(&r, "path", string([]byte("/clock")))
		r.AddAttrs(slog.Int("status", 200), slog.Int("bytes", 664), slog.Duration("duration", 41*time.Microsecond),
			slog.String("remote", remote.String()))
		_ = h.Handle(ctx, r)
	}
}
