package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clock-app/clock/services/internal/logjson"
	"github.com/clock-app/clock/services/internal/serve"
)

// logFlushInterval bounds how late a log line can reach stdout.
const logFlushInterval = 100 * time.Millisecond

// serveAddr binds the configured address and serves until ctx is done.
func serveAddr(ctx context.Context, cfg config, stdout io.Writer) error {
	out := newBufferedLog(stdout, 64<<10)
	stopFlush := out.flushEvery(logFlushInterval)
	defer stopFlush()
	logger := newLogger(out, cfg.LogLevel)
	handler, err := newRouter(logger, prometheus.NewRegistry(), time.Now)
	if err != nil {
		return err
	}
	ln, err := serve.Listen(ctx, cfg.Config, cfg.Port, serve.StdIO)
	if err != nil {
		return err
	}
	return serveOn(ctx, cfg, ln, handler, logger)
}

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(logjson.New(w, level))
}

// serveOn logs the effective configuration and serves handler on ln until ctx is done
// (serve.Serve: the drain, then nil).
func serveOn(ctx context.Context, cfg config, ln net.Listener, handler http.Handler, logger *slog.Logger) error {
	logger.LogAttrs(ctx, slog.LevelInfo, "starting", slog.String("version", version), cfg.attrs())
	return serve.Serve(ctx, cfg.Config, ln, handler, logger)
}
