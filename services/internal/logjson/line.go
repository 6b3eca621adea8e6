package logjson

import (
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"
)

// Line is one log line appended straight into bytes: no slog.Record, no attribute values, no
// allocation. It is for the line a service writes on every request, where building a Record
// cost more than the line itself (BenchmarkLine against BenchmarkRecord). Its bytes are
// JSONHandler's for the same attributes in the same order.
//
// A Line takes only what goes into JSON as it is, as the handler's short cut does: a text that
// would need escaping or a cut (AddText's rule) voids it, and Write then reports false, so
// that the caller logs the same attributes through slog instead, with the cut and the escaping
// done there.
type Line struct {
	h  *handler
	bp *[]byte
	b  []byte
	ok bool
}

// NewLine starts a line of h's at t. It reports false when h is not this package's handler,
// or when t or msg would take the JSONHandler's own path. The caller checks the level first.
// A Line is a value, so that it stays on the caller's stack.
func NewLine(h slog.Handler, t time.Time, level slog.Level, msg string) (Line, bool) {
	hh, ok := h.(*handler)
	if y := t.Year(); !ok || t.IsZero() || y < 0 || y >= 10000 || !plainJSON(msg) {
		return Line{}, false
	}
	bp := lineBufs.Get().(*[]byte)
	l := Line{h: hh, bp: bp, ok: true}
	b := append((*bp)[:0], `{"time":"`...)
	b = appendTime(b, t)
	b = append(b, `","level":"`...)
	b = append(b, level.String()...)
	b = append(b, `","msg":"`...)
	b = append(b, msg...)
	l.b = append(b, '"')
	return l, true
}

func (l *Line) key(k string) {
	if k == "" || !plainJSON(k) {
		l.ok = false
		return
	}
	l.b = append(l.b, ',', '"')
	l.b = append(l.b, k...)
	l.b = append(l.b, '"', ':')
}

// Text adds a text a client chose, as AddText would when it fits: over MaxTextLen bytes, or
// needing escaping, it voids the line.
func (l *Line) Text(key string, v []byte) {
	if len(v) > MaxTextLen {
		l.ok = false
	}
	addPlain(l, key, v)
}

// Int adds what slog.Int would.
func (l *Line) Int(key string, v int) {
	l.key(key)
	l.b = strconv.AppendInt(l.b, int64(v), 10)
}

// Duration adds what slog.Duration would: nanoseconds.
func (l *Line) Duration(key string, d time.Duration) {
	l.key(key)
	l.b = strconv.AppendInt(l.b, int64(d), 10)
}

// String adds what slog.String would, for a text that is the program's or the kernel's (a
// remote address), not a client's: one that would need escaping voids the line.
func (l *Line) String(key, v string) { addPlain(l, key, v) }

// addPlain adds key and v, a JSON string as it is; one that would need escaping voids the
// line.
func addPlain[T string | []byte](l *Line, key string, v T) {
	if !plainJSON(v) {
		l.ok = false
	}
	if !l.ok {
		return
	}
	l.key(key)
	l.b = append(l.b, '"')
	l.b = append(l.b, v...)
	l.b = append(l.b, '"')
}

// Write writes the line and reports true, or, when the line is void, writes nothing and
// reports false. Either way the line is done with. A failed write is not reported: a log
// line must not turn into a failed request.
func (l *Line) Write() bool {
	if l.ok {
		l.b = append(l.b, '}', '\n')
		_, _ = l.h.w.Write(l.b)
	}
	if cap(l.b) <= 16<<10 {
		*l.bp = l.b
		lineBufs.Put(l.bp)
	}
	return l.ok
}

// stamp is a second's time as RFC 3339 in one location, cut around the fraction: nearly every
// line of a busy second formats only its fraction (appendTime).
type stamp struct {
	unix       int64
	loc        *time.Location
	head, zone []byte // "2006-01-02T15:04:05" and "Z07:00"
}

var lastStamp atomic.Pointer[stamp]

// appendTime appends t as t.AppendFormat(b, time.RFC3339Nano) does: the fraction without its
// trailing zeros, and none at all on a whole second.
func appendTime(b []byte, t time.Time) []byte {
	s := lastStamp.Load()
	if s == nil || s.unix != t.Unix() || s.loc != t.Location() {
		s = &stamp{unix: t.Unix(), loc: t.Location(),
			head: t.AppendFormat(nil, "2006-01-02T15:04:05"), zone: t.AppendFormat(nil, "Z07:00")}
		lastStamp.Store(s)
	}
	b = append(b, s.head...)
	if ns := t.Nanosecond(); ns != 0 {
		digits := 9
		for ns%10 == 0 {
			ns /= 10
			digits--
		}
		b = append(b, '.')
		var frac [9]byte
		for i := digits - 1; i >= 0; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		b = append(b, frac[:digits]...)
	}
	return append(b, s.zone...)
}
