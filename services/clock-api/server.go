package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clock-app/clock/services/internal/logjson"
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
	ln, err := net.Listen("tcp", cfg.addr())
	if err != nil {
		return err
	}
	return serve(ctx, cfg, ln, handler, logger)
}

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(logjson.New(w, level))
}

// serve runs handler on ln until ctx is done, then shuts down gracefully:
// in-flight requests get cfg.ShutdownTimeout to finish. It returns nil after a
// clean shutdown.
func serve(ctx context.Context, cfg config, ln net.Listener, handler http.Handler, logger *slog.Logger) error {
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	logger.LogAttrs(ctx, slog.LevelInfo, "starting",
		append([]slog.Attr{slog.String("version", version)}, cfg.attrs()...)...)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Info("listening", slog.String("addr", ln.Addr().String()))

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	logger.Info("shutting down", slog.String("timeout", cfg.ShutdownTimeout.String()))
	// ctx is already done: the shutdown needs a fresh deadline of its own.
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// healthcheck asks the local server for /healthz, for the Docker HEALTHCHECK
// of a scratch image that has no curl. nil means 200.
func healthcheck(ctx context.Context, cfg config) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	url := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.Port)) + "/healthz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %s", url, res.Status)
	}
	return nil
}
