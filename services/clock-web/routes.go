package main

import (
	"io/fs"
	"log/slog"

	"github.com/valyala/fasthttp"
)

// newHandler builds the whole HTTP surface of the service.
func newHandler(cfg config, logger *slog.Logger) (fasthttp.RequestHandler, error) {
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	files, err := newStaticFiles(static)
	if err != nil {
		return nil, err
	}
	clock, err := newClockProxy(cfg, logger)
	if err != nil {
		return nil, err
	}
	healthz := getOrHead(serveHealthz)
	proxy := getOrHead(clock.serve)

	// The routes are a fixed table of exact paths. fasthttp has already cleaned the path
	// (dot segments resolved, repeated slashes merged, percent-escapes decoded), so
	// /clock/../metrics is /metrics here, and an unknown path is a 404: exactly /clock
	// reaches the API, and /clock/x, /metrics and everything else end in the static table.
	route := func(ctx *fasthttp.RequestCtx) {
		path := ctx.Path()
		switch string(path) { // no allocation: the compiler compares the bytes
		case "/clock":
			proxy(ctx)
		case "/healthz":
			healthz(ctx)
		default:
			if a, ok := files[string(path)]; ok {
				a.serve(ctx)
				return
			}
			writeError(ctx, fasthttp.StatusNotFound)
		}
	}

	// Outermost first: the access log sees the final status; the security headers are in
	// place before any handler writes.
	return accessLog(logger, securityHeaders(route)), nil
}

// getOrHead answers 405 to every other method.
func getOrHead(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if !ctx.IsGet() && !ctx.IsHead() {
			methodNotAllowed(ctx)
			return
		}
		next(ctx)
	}
}

// methodNotAllowed is the answer to any method but GET and HEAD.
func methodNotAllowed(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.SetCanonical(hdrAllowName, hdrAllowGetHead)
	writeError(ctx, fasthttp.StatusMethodNotAllowed)
}

var healthzBody = []byte("ok")

func serveHealthz(ctx *fasthttp.RequestCtx) {
	h := &ctx.Response.Header
	h.SetContentTypeBytes(hdrTextPlainCT)
	h.SetCanonical(hdrCacheControl, hdrNoStore)
	ctx.Response.SetBodyRaw(healthzBody)
}
