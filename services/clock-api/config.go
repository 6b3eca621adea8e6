package main

import (
	"io"
	"log/slog"

	"github.com/clock-app/clock/services/internal/envcfg"
	"github.com/clock-app/clock/services/internal/serve"
)

// envPrefix is the prefix of every environment variable (DESIGN.md).
const envPrefix = "CLOCK_API"

// config is the whole configuration, read once from the environment. The lifecycle's part
// (host, log level, timeouts) and its rules are serve.Config's.
type config struct {
	Port envcfg.Port `envconfig:"PORT" default:"8000" desc:"TCP port to listen on (decimal, 1-65535)"`
	serve.Config
}

// loadConfig reads and validates the configuration through getenv (os.Getenv in
// production): only CLOCK_API_* variables, under envcfg's rules.
func loadConfig(getenv func(string) string) (config, error) {
	var c config
	err := envcfg.Load(envPrefix, &c, getenv)
	return c, err
}

// attrs lists the effective configuration for the start-up log.
func (c config) attrs() slog.Attr {
	return slog.Any("config", slog.GroupValue(envcfg.Attrs(envPrefix, c)...))
}

const usageText = `Usage: clock-api [healthcheck | version | -h]

  (no argument)  serve GET/HEAD /clock, /healthz and /metrics
  healthcheck    GET http://$CLOCK_API_HOST:$CLOCK_API_PORT/healthz (loopback when HOST is
                 empty or unspecified); exit 0 on 200, 1 otherwise
  version        print the version
  -h, --help     print this help

Configuration comes only from the variables below; bare names (PORT, HOST...) are ignored.

`

// printUsage lists every environment variable with its default and meaning.
func printUsage(w io.Writer) error {
	if _, err := io.WriteString(w, usageText); err != nil {
		return err
	}
	return envcfg.Usage(w, envPrefix, &config{})
}
