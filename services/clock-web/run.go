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
	"text/tabwriter"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/clock-app/clock/services/internal/logjson"
)

// usageError is a bad command line; like a configuration error it exits 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// exitCode maps an error returned by run to the process exit status: 2 for a bad command line
// or configuration (nothing was started), 1 for everything else.
func exitCode(err error) int {
	var hf *healthcheckFailed
	if errors.As(err, &hf) {
		return 1
	}
	var ce *configError
	var ue *usageError
	if errors.As(err, &ce) || errors.As(err, &ue) {
		return 2
	}
	return 1
}

// healthcheckFailed is returned by the healthcheck sub-command. Docker reserves exit status 2 for
// health checks, so every health-check failure, a bad configuration included, exits 1.
type healthcheckFailed struct{ err error }

func (e *healthcheckFailed) Error() string { return "healthcheck: " + e.err.Error() }

func (e *healthcheckFailed) Unwrap() error { return e.err }

// run is the whole program; main only supplies the OS: arguments, environment and output.
// Logs go to stdout; stderr is left to main, which prints the returned error there.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := ""
	if len(args) > 2 {
		return &usageError{fmt.Sprintf("too many arguments %q; run clock-web -h", args[1:])}
	}
	if len(args) == 2 {
		cmd = args[1]
	}
	switch cmd {
	case "":
		return serve(ctx, getenv, stdout)
	case "-h", "-help", "--help", "help":
		return usage(stdout)
	case "version", "-version", "--version":
		_, err := fmt.Fprintln(stdout, version)
		return err
	case "healthcheck":
		if err := healthcheck(ctx, getenv); err != nil {
			return &healthcheckFailed{err}
		}
		return nil
	default:
		return &usageError{fmt.Sprintf("unknown command %q; run clock-web -h", cmd)}
	}
}

func usage(w io.Writer) error {
	fmt.Fprintf(w, `Usage: clock-web [command]

Serves the clock page and proxies GET /clock to clock-api.

Commands:
  (none)        serve
  healthcheck   GET http://127.0.0.1:$CLOCK_WEB_PORT/healthz; exit 0 on 200, 1 otherwise
  version       print the version
  -h, --help    print this help

Environment variables (an empty value means the default):
`)
	tw := tabwriter.NewWriter(w, 1, 0, 4, ' ', 0)
	if err := envconfig.Usagef(envPrefix, &config{}, tw, envconfig.DefaultTableFormat); err != nil {
		return err
	}
	return tw.Flush()
}

func healthcheck(ctx context.Context, getenv func(string) string) error {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	// Well inside Docker's default 30 s health-check timeout.
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	u := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.Port)) + "/healthz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<10))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: status %d", u, res.StatusCode)
	}
	return nil
}

// serve runs the web server until ctx is cancelled, then shuts it down gracefully.
func serve(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	logOut := newBatchWriter(stdout)
	defer logOut.Flush()
	logger := slog.New(logjson.New(logOut, cfg.LogLevel))
	logger.Info("starting", slog.String("version", version), slog.Any("config", cfg.logValue()))

	handler, err := newHandler(cfg, logger)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	logger.Info("listening", slog.String("addr", ln.Addr().String()))

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down", slog.String("timeout", cfg.ShutdownTimeout.String()))
	// ctx is already cancelled: the grace period needs a fresh context.
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("graceful shutdown incomplete, closing connections", slog.String("error", err.Error()))
		_ = srv.Close()
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	logger.Info("stopped")
	return nil
}
