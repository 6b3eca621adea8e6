package main

import (
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/clock-app/clock/services/internal/logjson"
)

// The security headers of every response. The page has no inline script or style, so the
// CSP allows only same-origin files and same-origin fetches.
var (
	hdrCSP = []string{"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
		"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"}
	hdrNosniff    = []string{"nosniff"}
	hdrNoReferrer = []string{"no-referrer"}
)

// securityHeaders sets the security headers before the handler runs, so they are on every
// answer, errors and redirects from the mux included. Shared slices: no allocation.
//
// There is no X-Frame-Options: the CSP's frame-ancestors replaces it in every browser
// that is still maintained, and every header costs each response a map entry that
// net/http copies (Header.Clone in WriteHeader). Nine entries outgrow a map's first
// group of eight, which the page's answer did with X-Frame-Options.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Security-Policy"] = hdrCSP
		h["X-Content-Type-Options"] = hdrNosniff
		h["Referrer-Policy"] = hdrNoReferrer
		next.ServeHTTP(w, r)
	})
}

// statusRecorder remembers the status and size of a response for the access log. Unwrap
// lets http.ResponseController (deadlines, flushing) reach the real writer.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Recorders are pooled: at tens of thousands of requests a second the access log should not
// be what the garbage collector spends its time on.
var recorderPool = sync.Pool{New: func() any { return new(statusRecorder) }}

// accessLog writes one JSON line per request.
//
// The record goes straight to the handler: Logger.LogAttrs would also capture the caller's
// PC (runtime.Callers), which nothing prints and which cost about as much as encoding the
// line. The record's time is the end of the request, so the clock is read twice, not three
// times.
func accessLog(logger *slog.Logger, next http.Handler) http.Handler {
	h := logger.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if !h.Enabled(ctx, slog.LevelInfo) {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		rec := recorderPool.Get().(*statusRecorder)
		rec.ResponseWriter = w
		next.ServeHTTP(rec, r)
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		end := time.Now()
		line := slog.NewRecord(end, slog.LevelInfo, "request", 0)
		// Method and path are the client's: bounded, so a flood of long URLs cannot wipe
		// the rotated log history. The remote address is the kernel's.
		logjson.AddText(&line, "method", r.Method)
		logjson.AddText(&line, "path", r.URL.Path)
		line.AddAttrs(
			slog.Int("status", status),
			slog.Int64("bytes", rec.bytes),
			slog.Duration("duration", end.Sub(start)),
			slog.String("remote", r.RemoteAddr),
		)
		// A failed log write must not turn into a failed request.
		_ = h.Handle(ctx, line)
		*rec = statusRecorder{}
		recorderPool.Put(rec)
	})
}
