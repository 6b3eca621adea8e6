// Package serve is the lifecycle both services share: the listener with its connection cap,
// the timeouts and header limit, serving until a signal, the graceful drain, the healthcheck
// sub-command and the exit codes. A service supplies its handler and its configuration, which
// embeds Config. clock-api serves through Serve (net/http); clock-web runs fasthttp's server
// with the same Config, limits, Listen and IdleHook, and drains it the same way.
package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/clock-app/clock/services/internal/envcfg"
	"golang.org/x/sys/unix"
)

// The limits that bound a service's memory whatever its clients do. Measured with
// cmd/flood against both images under a 128 MiB limit: 5,000 connections holding unfinished
// header lines, idle keep-alive ones, or half-sent bodies peaked at 80 MiB VmHWM (README,
// "Limits"); without the cap, 1,000 unfinished 60 KB header lines took clock-web to 124 MiB.
const (
	// MaxHeaderBytes caps a request's line and headers. A clock request carries a few hundred
	// bytes, a browser's about one KiB. net/http reads 4 KiB past it before it answers 431,
	// so a request up to about 8 KiB, nginx's limit for one header line, still passes.
	MaxHeaderBytes = 4 << 10
	// MaxConns caps the connections a server holds at once, idle keep-alive ones included;
	// more wait in the kernel's accept queue, which costs the process nothing, until a slot
	// frees (READ_HEADER_TIMEOUT ends a slow client's hold, IDLE_TIMEOUT an idle one's).
	MaxConns = 1024
)

// Config is the part of a service's configuration that the lifecycle uses. Each service
// embeds it in its own config struct, so names, defaults and ranges are written here once;
// the port's default differs per service and lives there.
type Config struct {
	Host     envcfg.Host `envconfig:"HOST" desc:"address to listen on: an IP address or host name; empty means all interfaces"`
	LogLevel slog.Level  `envconfig:"LOG_LEVEL" default:"info" desc:"minimum log level: debug, info, warn or error"`
	// Several instances in one network namespace share the port with SO_REUSEPORT: the
	// kernel spreads new connections over them, and one that drains or dies leaves the rest
	// serving (DESIGN.md, "Releases"). Off by default, so a second server started by mistake
	// on a taken port fails instead of silently sharing it.
	ReusePort bool `envconfig:"REUSE_PORT" default:"false" desc:"share the port with other instances (SO_REUSEPORT): true or false"`
	// The header timeout is the slow-client guard: a connection that has not sent its headers
	// by then is closed, so a slowloris holds a slot for at most this long.
	ReadHeaderTimeout time.Duration `envconfig:"READ_HEADER_TIMEOUT" default:"5s" min:"100ms" max:"30s" desc:"time allowed to read a request's headers (slow-client guard)"`
	ReadTimeout       time.Duration `envconfig:"READ_TIMEOUT" default:"10s" min:"100ms" max:"1m" desc:"time allowed to read a whole request"`
	WriteTimeout      time.Duration `envconfig:"WRITE_TIMEOUT" default:"10s" min:"100ms" max:"1m" desc:"time allowed to write a response"`
	IdleTimeout       time.Duration `envconfig:"IDLE_TIMEOUT" default:"60s" min:"1s" max:"5m" desc:"how long an idle keep-alive connection stays open"`
	// The ceiling keeps the whole drain inside Docker's stop timeout (the role's stop_timeout,
	// 30 s): the process exits by SHUTDOWN_TIMEOUT plus the time to close connections.
	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"10s" min:"100ms" max:"20s" desc:"how long in-flight requests may take to finish after SIGTERM/SIGINT"`
}

// NewServer builds the http.Server for handler with cfg's timeouts and MaxHeaderBytes.
// Server errors (TLS noise, accept retries) go to logger at warn level.
func NewServer(cfg Config, handler http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// Listen binds cfg's host and port with the MaxConns cap, sharing the port when
// cfg.ReusePort is set; its connections read and write as mode says.
func Listen(ctx context.Context, cfg Config, port envcfg.Port, mode IO) (net.Listener, error) {
	var lc net.ListenConfig
	if cfg.ReusePort {
		lc.Control = reusePort
	}
	ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort(string(cfg.Host), strconv.Itoa(int(port))))
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	return newLimitListener(ln, MaxConns, mode), nil
}

// reusePort sets SO_REUSEPORT on a listening socket before it binds.
func reusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("SO_REUSEPORT: %w", serr)
	}
	return nil
}

// Serve runs handler on ln until ctx is done, then drains: in-flight requests get
// cfg.ShutdownTimeout to finish, after which the remaining connections are closed. It
// returns nil after a clean drain. ln is closed when Serve returns.
func Serve(ctx context.Context, cfg Config, ln net.Listener, handler http.Handler, logger *slog.Logger) error {
	srv := NewServer(cfg, handler, logger)
	if idle := IdleHook(ln); idle != nil {
		srv.ConnState = func(c net.Conn, s http.ConnState) { idle(c, s == http.StateIdle) }
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Info("listening", slog.String("addr", ln.Addr().String()),
		slog.Int("max_conns", MaxConns), slog.Int("max_header_bytes", MaxHeaderBytes))

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down", slog.String("timeout", cfg.ShutdownTimeout.String()))
	// ctx is already done: the drain needs a deadline of its own.
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("drain incomplete, closing connections", slog.String("error", err.Error()))
		_ = srv.Close()
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// healthcheckTimeout is well inside the health checks' own timeouts (the images' 3 s, the
// role's 10 s), so the check reports a failure rather than being killed.
const healthcheckTimeout = 2 * time.Second

// Healthcheck GETs /healthz from the server configured at host:port, for the HEALTHCHECK of a
// scratch image that has no curl. An unspecified host (empty, 0.0.0.0, ::) is reached on
// loopback; a specific one is dialled as configured, since the server listens only there.
// Every failure is a HealthcheckFailed.
func Healthcheck(ctx context.Context, host envcfg.Host, port envcfg.Port) error {
	u := "http://" + net.JoinHostPort(dialHost(host), strconv.Itoa(int(port))) + "/healthz"
	ctx, cancel := context.WithTimeout(ctx, healthcheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return &HealthcheckFailed{err}
	}
	// No proxy from the environment and no pooled connection: the check is one request.
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	res, err := client.Do(req)
	if err != nil {
		return &HealthcheckFailed{err}
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<10))
	if res.StatusCode != http.StatusOK {
		return &HealthcheckFailed{fmt.Errorf("%s answered %s", u, res.Status)}
	}
	return nil
}

// dialHost is the address that reaches a server listening on host.
func dialHost(host envcfg.Host) string {
	if host == "" {
		return "127.0.0.1"
	}
	if ip := net.ParseIP(string(host)); ip != nil && ip.IsUnspecified() {
		if ip.To4() != nil {
			return "127.0.0.1"
		}
		return "::1"
	}
	return string(host)
}

// HealthcheckFailed is a failed health check. Docker reserves exit status 2 for health
// checks, so every failure, a bad configuration included, exits 1.
type HealthcheckFailed struct{ Err error }

func (e *HealthcheckFailed) Error() string { return "healthcheck: " + e.Err.Error() }

func (e *HealthcheckFailed) Unwrap() error { return e.Err }

// UsageError is a bad command line; like a configuration error it exits 2.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// ExitCode is the one exit policy of both services: 0 for nil; 1 for a failed health check
// whatever its cause; 2 for a bad configuration or command line (nothing was started);
// 1 for everything else.
func ExitCode(err error) int {
	var hf *HealthcheckFailed
	var ce *envcfg.Error
	var ue *UsageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &hf):
		return 1
	case errors.As(err, &ce), errors.As(err, &ue):
		return 2
	}
	return 1
}

// RunFunc is a service's whole program with the OS passed in; args follow the program name.
type RunFunc func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error

// Main runs run with the process's arguments, environment and output, and exits with
// ExitCode. The first SIGINT or SIGTERM cancels run's context (the graceful drain); a second
// one exits 1 at once, for an operator who will not wait for the drain.
func Main(name string, run RunFunc) {
	os.Exit(main(name, run, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, os.Exit))
}

func main(name string, run RunFunc, args []string, getenv func(string) string, stdout, stderr io.Writer, exit func(int)) int {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		first := <-sigs
		cancel()
		second := <-sigs
		fmt.Fprintf(stderr, "%s: %v during the drain after %v: stopping at once\n", name, second, first)
		exit(1)
	}()
	err := run(ctx, args, getenv, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
	}
	return ExitCode(err)
}
