package logjson

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// reference prints r with slog.JSONHandler, the format handler promises.
func reference(tb testing.TB, r slog.Record, level slog.Leveler) string {
	tb.Helper()
	var b bytes.Buffer
	if err := slog.NewJSONHandler(&b, &slog.HandlerOptions{Level: level}).Handle(context.Background(), r); err != nil {
		tb.Fatalf("JSONHandler: %v", err)
	}
	return b.String()
}

func handled(tb testing.TB, r slog.Record, level slog.Leveler) string {
	tb.Helper()
	var b bytes.Buffer
	if err := New(&b, level).Handle(context.Background(), r); err != nil {
		tb.Fatalf("handler: %v", err)
	}
	return b.String()
}

func record(t time.Time, level slog.Level, msg string, attrs ...slog.Attr) slog.Record {
	r := slog.NewRecord(t, level, msg, 0)
	r.AddAttrs(attrs...)
	return r
}

// accessRecord is a record like the ones accessLog writes.
func accessRecord(path string) slog.Record {
	return record(time.Date(2026, 11, 23, 10, 4, 5, 123456789, time.UTC), slog.LevelInfo, "request",
		slog.String("method", "GET"), slog.String("path", path), slog.Int("status", 200),
		slog.Int64("bytes", 664), slog.Duration("duration", 41*time.Microsecond),
		slog.String("remote", "127.0.0.1:43210"))
}

func TestFastPath(t *testing.T) {
	// The access log's records must take the short cut, or the handler is only overhead.
	line, ok := appendFastJSON(nil, accessRecord("/app.js"))
	if !ok {
		t.Fatal("an access-log record fell back to the JSONHandler")
	}
	want := `{"time":"2026-11-23T10:04:05.123456789Z","level":"INFO","msg":"request","method":"GET",` +
		`"path":"/app.js","status":200,"bytes":664,"duration":41000,"remote":"127.0.0.1:43210"}` + "\n"
	if string(line) != want {
		t.Errorf("got  %s\nwant %s", line, want)
	}
}

func TestMatchesJSONHandler(t *testing.T) {
	at := time.Date(2026, 11, 23, 10, 4, 5, 120000000, time.FixedZone("", 5*3600+45*60))
	for _, tc := range []struct {
		name string
		r    slog.Record
		fast bool // whether the short cut handles it
	}{
		{"access", accessRecord("/"), true},
		{"levels", record(at, slog.LevelWarn+2, "shutting down", slog.Bool("ok", false), slog.Uint64("n", math.MaxUint64)), true},
		{"no attrs", record(at, slog.LevelDebug, "x"), true},
		{"negative", record(at, slog.LevelError, "e", slog.Int("i", -7), slog.Duration("d", -time.Second)), true},
		{"empty string", record(at, slog.LevelInfo, "", slog.String("path", "")), true},
		{"quote in path", accessRecord(`/a"b`), false},
		{"backslash", accessRecord(`/a\b`), false},
		{"control", accessRecord("/a\nb\x00\x7f"), false},
		{"html", accessRecord("/<script>&"), true},
		{"unicode", accessRecord("/héllo\u2028"), false},
		{"invalid utf-8", accessRecord("/\xff"), false},
		{"message escaped", record(at, slog.LevelInfo, "say \"hi\""), false},
		{"key escaped", record(at, slog.LevelInfo, "m", slog.Int("a\tb", 1)), false},
		{"empty key", record(at, slog.LevelInfo, "m", slog.Int("", 1)), false},
		{"empty attr", record(at, slog.LevelInfo, "m", slog.Attr{}), false},
		{"float", record(at, slog.LevelInfo, "m", slog.Float64("f", 0.1)), false},
		{"time attr", record(at, slog.LevelInfo, "m", slog.Time("t", at)), false},
		{"any", record(at, slog.LevelInfo, "m", slog.Any("err", context.Canceled)), false},
		{"group", record(at, slog.LevelInfo, "m", slog.Group("g", slog.Int("a", 1))), false},
		{"zero time", record(time.Time{}, slog.LevelInfo, "m"), false},
		{"year 10000", record(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), slog.LevelInfo, "m"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, fast := appendFastJSON(nil, tc.r); fast != tc.fast {
				t.Errorf("short cut taken: %v, want %v", fast, tc.fast)
			}
			if got, want := handled(t, tc.r, nil), reference(t, tc.r, nil); got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

func TestWithAttrsAndLevel(t *testing.T) {
	ctx := context.Background()
	r := record(time.Unix(1732312345, 0).UTC(), slog.LevelWarn, "shown", slog.Int("n", 1))
	var got, want bytes.Buffer
	for _, h := range []slog.Handler{
		New(&got, slog.LevelWarn),
		slog.NewJSONHandler(&want, &slog.HandlerOptions{Level: slog.LevelWarn}),
	} {
		if h.Enabled(ctx, slog.LevelInfo) || !h.Enabled(ctx, slog.LevelWarn) {
			t.Errorf("%T: Enabled(INFO) %v, Enabled(WARN) %v; want false, true",
				h, h.Enabled(ctx, slog.LevelInfo), h.Enabled(ctx, slog.LevelWarn))
		}
		if err := h.WithAttrs([]slog.Attr{slog.String("svc", "clock-web")}).WithGroup("g").Handle(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if got.String() != want.String() || !strings.Contains(got.String(), `"svc":"clock-web","g":{"n":1}`) {
		t.Errorf("got  %s\nwant %s", &got, &want)
	}
}

// Lines from the short cut and from the JSONHandler share one lock: none interleave even on
// a writer that is not safe for concurrent use.
func TestConcurrent(t *testing.T) {
	var b bytes.Buffer
	h := New(&b, nil)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				path := "/plain"
				if (g+i)%2 == 0 {
					path = "/esc\aped" // takes the JSONHandler
				}
				_ = h.Handle(context.Background(), accessRecord(path))
			}
		}()
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 8*200 {
		t.Fatalf("%d lines, want %d", len(lines), 8*200)
	}
	for _, l := range lines {
		if !json.Valid([]byte(l)) {
			t.Fatalf("not one JSON object: %q", l)
		}
	}
}

// FuzzHandler holds the handler to slog.JSONHandler's bytes for any text: either the
// short cut writes the same line or it hands the record over.
func FuzzHandler(f *testing.F) {
	f.Add("request", "path", "/app.js", int64(200))
	f.Add("m", "k\"", "\x00\u2028\xff", int64(-1))
	f.Add("", "a", "<&>", int64(math.MinInt64))
	f.Fuzz(func(t *testing.T, msg, key, val string, n int64) {
		r := record(time.Unix(1732312345, 987654321).UTC(), slog.LevelInfo, msg,
			slog.String(key, val), slog.Int64("n", n), slog.Duration("d", time.Duration(n)))
		if got, want := handled(t, r, nil), reference(t, r, nil); got != want {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	})
}

func BenchmarkAccessLogLine(b *testing.B) {
	var buf bytes.Buffer
	for _, bc := range []struct {
		name string
		h    slog.Handler
	}{{"logjson", New(&buf, nil)}, {"slog.JSONHandler", slog.NewJSONHandler(&buf, nil)}} {
		b.Run(bc.name, func(b *testing.B) {
			r := accessRecord("/")
			b.ReportAllocs()
			for b.Loop() {
				buf.Reset()
				_ = bc.h.Handle(context.Background(), r)
			}
		})
	}
}

func TestAddText(t *testing.T) {
	long := "/" + strings.Repeat("a", 2*MaxTextLen)
	at := time.Date(2026, 11, 23, 10, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name, in, want string
		cut            bool
	}{
		{"short", "/app.js", "/app.js", false},
		{"empty", "", "", false},
		{"exactly the limit", long[:MaxTextLen], long[:MaxTextLen], false},
		{"one over", long[:MaxTextLen+1], long[:MaxTextLen], true},
		{"long", long, long[:MaxTextLen], true},
		// é is 2 bytes, € 3, 𝄞 4: a rune that would straddle the limit is left out whole.
		{"2-byte rune across the cut", long[:MaxTextLen-1] + "é", long[:MaxTextLen-1], true},
		{"3-byte rune across the cut", long[:MaxTextLen-2] + "€x", long[:MaxTextLen-2], true},
		{"4-byte rune across the cut", long[:MaxTextLen-1] + "𝄞", long[:MaxTextLen-1], true},
		{"4-byte rune ending at the cut", long[:MaxTextLen-4] + "𝄞x", long[:MaxTextLen-4] + "𝄞", true},
		{"stray continuation bytes", long[:MaxTextLen-4] + "\x80\x80\x80\x80\x80", long[:MaxTextLen-4] + "\x80\x80\x80\x80", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := slog.NewRecord(at, slog.LevelInfo, "request", 0)
			AddText(&r, "path", tc.in)
			got := map[string]slog.Value{}
			r.Attrs(func(a slog.Attr) bool { got[a.Key] = a.Value; return true })
			if v := got["path"].String(); v != tc.want {
				t.Errorf("path = %q (%d bytes), want %q (%d bytes)", v, len(v), tc.want, len(tc.want))
			}
			if len(got["path"].String()) > MaxTextLen {
				t.Errorf("path is %d bytes, over MaxTextLen %d", len(got["path"].String()), MaxTextLen)
			}
			flag, flagged := got["path_truncated"]
			if flagged != tc.cut || flagged && !flag.Bool() {
				t.Errorf("path_truncated = %v (present %v), want present %v and true", flag, flagged, tc.cut)
			}
			if wantAttrs := 1 + btoi(tc.cut); r.NumAttrs() != wantAttrs {
				t.Errorf("%d attributes, want %d", r.NumAttrs(), wantAttrs)
			}
			if Cut(tc.in) != tc.want {
				t.Errorf("Cut = %q, want %q", Cut(tc.in), tc.want)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// A bounded access line still takes the short cut, flag included, and prints what the
// JSONHandler would.
func TestAddTextFastPath(t *testing.T) {
	r := slog.NewRecord(time.Date(2026, 11, 23, 10, 4, 5, 0, time.UTC), slog.LevelInfo, "request", 0)
	AddText(&r, "method", "GET")
	AddText(&r, "path", "/"+strings.Repeat("x", 10*MaxTextLen))
	r.AddAttrs(slog.Int("status", 404))
	line, ok := appendFastJSON(nil, r)
	if !ok {
		t.Fatal("a cut access line fell back to the JSONHandler")
	}
	if want := reference(t, r, nil); string(line) != want {
		t.Errorf("got  %s\nwant %s", line, want)
	}
	if !strings.Contains(string(line), `"path_truncated":true,"status":404}`) {
		t.Errorf("line %s has no path_truncated flag before status", line)
	}
}

// FuzzCut holds Cut to its promise for any text: a prefix, at most MaxTextLen bytes, and
// never the cause of invalid UTF-8.
func FuzzCut(f *testing.F) {
	f.Add(strings.Repeat("é", MaxTextLen))
	f.Add(strings.Repeat("a", MaxTextLen-1) + "𝄞")
	f.Add("\xff")
	f.Fuzz(func(t *testing.T, s string) {
		got := Cut(s)
		if !strings.HasPrefix(s, got) || len(got) > MaxTextLen {
			t.Fatalf("Cut(%q) = %q: not a prefix of at most %d bytes", s, got, MaxTextLen)
		}
		if len(s) <= MaxTextLen && got != s {
			t.Fatalf("Cut(%q) = %q, want it whole", s, got)
		}
		if utf8.ValidString(s) && !utf8.ValidString(got) {
			t.Fatalf("Cut(%q) = %q: valid text cut into invalid", s, got)
		}
		if utf8.ValidString(s) && len(s) > MaxTextLen && len(got) < MaxTextLen-(utf8.UTFMax-1) {
			t.Fatalf("Cut(%q) = %q: cut more than one rune short", s, got)
		}
	})
}
