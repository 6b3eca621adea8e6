package main

import (
	"log/slog"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/clock-app/clock/services/internal/logjson"
	"github.com/clock-app/clock/services/internal/serve"
)

// setSecurityHeaders puts the security headers on an answer. The names are canonical, so
// fasthttp copies them as they are.
func setSecurityHeaders(h *fasthttp.ResponseHeader) {
	h.SetCanonical(hdrCSPName, hdrCSP)
	h.SetCanonical(hdrNosniffName, hdrNosniff)
	h.SetCanonical(hdrReferrerName, hdrNoReferrer)
}

// securityHeaders sets the security headers before the handler runs, so they are on every
// answer, errors included.
func securityHeaders(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		setSecurityHeaders(&ctx.Response.Header)
		next(ctx)
	}
}

// accessLog writes one JSON line per request.
//
// The line is appended straight into bytes (logjson.Line): a slog.Record cost twice as much
// as the line itself, six allocations included. A method or path that needs escaping or a cut
// takes slog's path, with AddText's bound. The duration runs from when fasthttp had read the
// request (RequestCtx.Time), and the line's time is the end, so the clock is read once per
// request.
func accessLog(logger *slog.Logger, next fasthttp.RequestHandler) fasthttp.RequestHandler {
	h := logger.Handler()
	return func(ctx *fasthttp.RequestCtx) {
		if !h.Enabled(ctx, slog.LevelInfo) {
			next(ctx)
			return
		}
		next(ctx)
		end := time.Now()
		bytes := 0
		if !ctx.IsHead() && !ctx.Response.SkipBody {
			bytes = len(ctx.Response.Body())
		}
		took := end.Sub(ctx.Time())
		if l, ok := logjson.NewLine(h, end, slog.LevelInfo, "request"); ok {
			l.Text("method", ctx.Method())
			l.Text("path", ctx.Path())
			l.Int("status", ctx.Response.StatusCode())
			l.Int("bytes", bytes)
			l.Duration("duration", took)
			l.String("remote", serve.RemoteAddr(ctx.Conn()))
			if l.Write() {
				return
			}
		}
		// The record goes straight to the handler: Logger.LogAttrs would also capture the
		// caller's PC (runtime.Callers), which nothing prints.
		line := slog.NewRecord(end, slog.LevelInfo, "request", 0)
		// Method and path are the client's: bounded, so a flood of long URLs cannot wipe
		// the rotated log history. The remote address is the kernel's.
		logjson.AddText(&line, "method", string(ctx.Method()))
		logjson.AddText(&line, "path", string(ctx.Path()))
		line.AddAttrs(
			slog.Int("status", ctx.Response.StatusCode()),
			slog.Int("bytes", bytes),
			slog.Duration("duration", took),
			slog.String("remote", serve.RemoteAddr(ctx.Conn())),
		)
		// A failed log write must not turn into a failed request.
		_ = h.Handle(ctx, line)
	}
}
