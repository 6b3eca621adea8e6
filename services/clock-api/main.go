// Command clock-api serves the current Unix time over HTTP.
//
// Usage:
//
//	clock-api              serve (configured only through CLOCK_API_* variables)
//	clock-api healthcheck  exit 0 if the local server answers /healthz with 200
//	clock-api version      print the version
//	clock-api -h           list the environment variables
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "clock-api: %v\n", err)
		os.Exit(exitCode(err))
	}
}

// run is the whole program with the OS passed in, so tests can drive it.
// The environment is not a parameter: envconfig reads the process environment
// itself (it has no lookup hook), so tests set it with t.Setenv.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
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
	}

	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	switch cmd {
	case "":
		return serveAddr(ctx, cfg, stdout)
	case "healthcheck":
		return healthcheck(ctx, cfg)
	default:
		_ = printUsage(stderr)
		return &usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
}

// usageError is a wrong command line: exit code 2, like a configuration error.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// exitCode maps run's error to the process exit status: 2 for a bad
// configuration or command line (nothing was started), 1 for anything else.
func exitCode(err error) int {
	var ce *configError
	var ue *usageError
	if errors.As(err, &ce) || errors.As(err, &ue) {
		return 2
	}
	return 1
}
