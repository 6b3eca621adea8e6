package main

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// appendUnix appends t as Unix seconds the way Python's print(time.time())
// does: the shortest decimal that round-trips to the same float64, never an
// exponent, and ".0" when the fraction is zero.
func appendUnix(dst []byte, t time.Time) []byte {
	// Python computes time.time() as float(ns) / 1e9 (one rounding), so the
	// digits match it exactly rather than float(sec) + float(nsec)/1e9.
	return appendSeconds(dst, float64(t.UnixNano())/1e9)
}

// appendSeconds formats a finite float64 as appendUnix describes.
func appendSeconds(dst []byte, secs float64) []byte {
	start := len(dst)
	dst = strconv.AppendFloat(dst, secs, 'f', -1, 64)
	for _, b := range dst[start:] {
		if b == '.' {
			return dst
		}
	}
	return append(dst, '.', '0')
}

// Header values shared by every response; assigning these slices to the
// header map directly saves the allocation Header().Set makes per call.
// net/http only reads them.
var (
	textPlain = []string{"text/plain; charset=utf-8"}
	noStore   = []string{"no-store"}
)

// clockBufs recycles the body buffer: a stack array would escape through the
// io.Writer interface and cost one allocation per request.
var clockBufs = sync.Pool{New: func() any { return new([32]byte) }}

// handleClock answers GET and HEAD /clock with the current Unix time.
func handleClock(now func() time.Time) echo.HandlerFunc {
	return func(c echo.Context) error {
		res := c.Response()
		h := res.Header()
		h["Content-Type"] = textPlain
		h["Cache-Control"] = noStore
		buf := clockBufs.Get().(*[32]byte)
		defer clockBufs.Put(buf)
		body := appendUnix(buf[:0], now())
		if c.Request().Method == http.MethodHead {
			// Same headers as GET, no body (net/http would drop it anyway).
			h["Content-Length"] = []string{strconv.Itoa(len(body))}
			res.WriteHeader(http.StatusOK)
			return nil
		}
		res.WriteHeader(http.StatusOK)
		_, err := res.Write(body)
		return err
	}
}

// handleHealthz answers 200 "ok" while the server is serving.
func handleHealthz(c echo.Context) error {
	return c.String(http.StatusOK, "ok")
}
