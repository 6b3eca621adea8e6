package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/clock-app/clock/services/internal/envcfg"
	"github.com/clock-app/clock/services/internal/logjson"
	"github.com/clock-app/clock/services/internal/serve"
)

// run is the whole program; main only supplies the OS: the arguments after the program
// name, environment and output. Logs go to stdout; stderr is left to serve.Main, which
// prints the returned error there.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 1 {
		return &serve.UsageError{Msg: fmt.Sprintf("too many arguments %q; run clock-web -h", args)}
	}
	cmd := ""
	if len(args) == 1 {
		cmd = args[0]
	}
	switch cmd {
	case "":
		return serveWeb(ctx, getenv, stdout)
	case "-h", "-help", "--help", "help":
		return usage(stdout)
	case "version", "-version", "--version":
		_, err := fmt.Fprintln(stdout, version)
		return err
	case "healthcheck":
		cfg, err := loadConfig(getenv)
		if err != nil {
			return &serve.HealthcheckFailed{Err: err}
		}
		return serve.Healthcheck(ctx, cfg.Host, cfg.Port)
	default:
		return &serve.UsageError{Msg: fmt.Sprintf("unknown command %q; run clock-web -h", cmd)}
	}
}

func usage(w io.Writer) error {
	if _, err := io.WriteString(w, `Usage: clock-web [command]

Serves the clock page and proxies GET /clock to clock-api.

Commands:
  (none)        serve
  healthcheck   GET http://$CLOCK_WEB_HOST:$CLOCK_WEB_PORT/healthz (loopback when HOST is
                empty or unspecified); exit 0 on 200, 1 otherwise
  version       print the version
  -h, --help    print this help

Configuration comes only from the variables below; bare names (PORT, HOST...) are ignored.

`); err != nil {
		return err
	}
	return envcfg.Usage(w, envPrefix, &config{})
}

// serveWeb runs the web server until ctx is cancelled, then drains it (serveHTTP).
func serveWeb(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
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
	// clock-web waits on the API for every /clock: raw reads and writes (serve.RawIO).
	ln, err := serve.Listen(ctx, cfg.Config, cfg.Port, serve.RawIO)
	if err != nil {
		return err
	}
	return serveHTTP(ctx, cfg.Config, ln, newServer(cfg, handler, logger, serve.IdleHook(ln)), logger)
}
