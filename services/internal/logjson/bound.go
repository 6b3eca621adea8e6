package logjson

import (
	"log/slog"
	"unicode/utf8"
)

// MaxTextLen is the most bytes of one client-controlled string (a request path, a method)
// that a log line carries. Every path the services serve is under 20 bytes, so nothing real
// is ever cut; and a line stays under 2 KiB even when every byte of the value has to be
// escaped as \u00XX, so that a flood of long URLs costs the rotated log history no more than
// a flood of short ones would.
const MaxTextLen = 256

// AddText adds key=s to r for a string that a client chose. A value longer than MaxTextLen
// is cut to that many bytes at most (at a UTF-8 boundary, so the cut adds no invalid text)
// and the line gets key_truncated=true as well, so that its reader knows the value is not
// whole. Values that fit cost nothing more than r.AddAttrs.
func AddText(r *slog.Record, key, s string) {
	if len(s) <= MaxTextLen {
		r.AddAttrs(slog.String(key, s))
		return
	}
	r.AddAttrs(slog.String(key, Cut(s)), slog.Bool(key+"_truncated", true))
}

// Cut returns s cut as AddText cuts it: s itself when it fits in MaxTextLen bytes, else its
// longest prefix of at most MaxTextLen bytes that does not split a UTF-8 sequence.
func Cut(s string) string {
	if len(s) <= MaxTextLen {
		return s
	}
	// s[MaxTextLen] is the first byte left out: when it continues a rune, that rune would be
	// split, so the cut moves back to where the rune starts. Bytes that continue nothing
	// (invalid UTF-8 already) are cut where they fall.
	i := MaxTextLen
	for i > MaxTextLen-(utf8.UTFMax-1) && !utf8.RuneStart(s[i]) {
		i--
	}
	if utf8.RuneStart(s[i]) {
		return s[:i]
	}
	return s[:MaxTextLen]
}
