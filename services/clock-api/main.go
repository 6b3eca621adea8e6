// Command clock-api serves the current Unix time over HTTP.
//
// Usage:
//
//	clock-api              serve (configured only through CLOCK_API_* variables)
//	clock-api healthcheck  exit 0 if the configured server answers /healthz with 200
//	clock-api version      print the version
//	clock-api -h           list the environment variables
package main

import (
	"context"
	"fmt"
	"io"

	"github.com/clock-app/clock/services/internal/serve"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	serve.Main("clock-api", run)
}

// run is the whole program with the OS passed in, so tests can drive it. args are the
// arguments after the program name.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 1 {
		_ = printUsage(stderr)
		return &serve.UsageError{Msg: fmt.Sprintf("too many arguments %q", args)}
	}
	cmd := ""
	if len(args) > 0 {
		cmd = args[0]
	}
	switch cmd {
	case "-h", "-help", "--help", "help":
		return printUsage(stdout)
	case "version", "-version", "--version":
		_, err := fmt.Fprintln(stdout, version)
		return err
	case "", "healthcheck":
	default:
		_ = printUsage(stderr)
		return &serve.UsageError{Msg: fmt.Sprintf("unknown command %q", cmd)}
	}

	cfg, err := loadConfig(getenv)
	if cmd == "healthcheck" {
		if err != nil {
			return &serve.HealthcheckFailed{Err: err}
		}
		return serve.Healthcheck(ctx, cfg.Host, cfg.Port)
	}
	if err != nil {
		return err
	}
	return serveAddr(ctx, cfg, stdout)
}
