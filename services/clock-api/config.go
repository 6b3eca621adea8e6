package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/kelseyhightower/envconfig"
)

// envPrefix is the prefix of every environment variable (DESIGN.md).
const envPrefix = "CLOCK_API"

// config is the whole configuration, read once from the environment.
type config struct {
	Host              string        `envconfig:"HOST" desc:"address to listen on; empty means all interfaces"`
	Port              int           `envconfig:"PORT" default:"8000" desc:"TCP port to listen on (1-65535)"`
	LogLevel          slog.Level    `envconfig:"LOG_LEVEL" default:"info" desc:"minimum log level: debug, info, warn or error"`
	ReadHeaderTimeout time.Duration `envconfig:"READ_HEADER_TIMEOUT" default:"5s" desc:"time allowed to read request headers (slow-client guard)"`
	ReadTimeout       time.Duration `envconfig:"READ_TIMEOUT" default:"10s" desc:"time allowed to read a whole request"`
	WriteTimeout      time.Duration `envconfig:"WRITE_TIMEOUT" default:"10s" desc:"time allowed to write a response"`
	IdleTimeout       time.Duration `envconfig:"IDLE_TIMEOUT" default:"60s" desc:"how long an idle keep-alive connection stays open"`
	ShutdownTimeout   time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"10s" desc:"how long in-flight requests may take to finish after SIGTERM/SIGINT"`
}

// addr is the listen address, host:port.
func (c config) addr() string {
	return net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
}

// attrs lists the effective configuration for the start-up log.
func (c config) attrs() []slog.Attr {
	// Durations as strings ("5s"), the form the variables are written in.
	return []slog.Attr{
		slog.String("host", c.Host),
		slog.Int("port", c.Port),
		slog.String("log_level", c.LogLevel.String()),
		slog.String("read_header_timeout", c.ReadHeaderTimeout.String()),
		slog.String("read_timeout", c.ReadTimeout.String()),
		slog.String("write_timeout", c.WriteTimeout.String()),
		slog.String("idle_timeout", c.IdleTimeout.String()),
		slog.String("shutdown_timeout", c.ShutdownTimeout.String()),
	}
}

// configError is a bad environment variable; it stops the program before it
// binds, with exit code 2.
type configError struct {
	key, value, allowed string
}

func (e *configError) Error() string {
	return fmt.Sprintf("configuration: %s=%q: %s", e.key, e.value, e.allowed)
}

const (
	allowedPort     = "not a port number (1-65535)"
	allowedDuration = "not a positive duration (e.g. 500ms, 5s, 1m)"
	allowedLevel    = "not a log level (debug, info, warn, error)"
)

// loadConfig reads and validates the configuration from the environment.
func loadConfig() (config, error) {
	var c config
	if err := envconfig.Process(envPrefix, &c); err != nil {
		var pe *envconfig.ParseError
		if !errors.As(err, &pe) {
			return c, fmt.Errorf("configuration: %w", err)
		}
		allowed := "invalid value"
		switch pe.FieldName {
		case "Port":
			allowed = allowedPort
		case "LogLevel":
			allowed = allowedLevel
		default:
			if pe.TypeName == "time.Duration" {
				allowed = allowedDuration
			}
		}
		return c, &configError{key: pe.KeyName, value: pe.Value, allowed: allowed}
	}

	if c.Port < 1 || c.Port > 65535 {
		return c, &configError{key: envPrefix + "_PORT", value: os.Getenv(envPrefix + "_PORT"), allowed: allowedPort}
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"READ_HEADER_TIMEOUT", c.ReadHeaderTimeout},
		{"READ_TIMEOUT", c.ReadTimeout},
		{"WRITE_TIMEOUT", c.WriteTimeout},
		{"IDLE_TIMEOUT", c.IdleTimeout},
		{"SHUTDOWN_TIMEOUT", c.ShutdownTimeout},
	} {
		if d.v <= 0 {
			key := envPrefix + "_" + d.key
			return c, &configError{key: key, value: os.Getenv(key), allowed: allowedDuration}
		}
	}
	return c, nil
}

const usageFormat = `Usage: clock-api [healthcheck | version | -h]

  (no argument)  serve GET/HEAD /clock, /healthz and /metrics
  healthcheck    GET http://127.0.0.1:$CLOCK_API_PORT/healthz; exit 0 on 200, 1 otherwise
  version        print the version
  -h, --help     print this help

Configuration comes only from these environment variables:

VARIABLE	TYPE	DEFAULT	MEANING
{{range .}}{{usage_key .}}	{{usage_type .}}	{{usage_default .}}	{{usage_description .}}
{{end}}`

// printUsage lists every environment variable with its default and meaning.
func printUsage(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 1, 0, 2, ' ', 0)
	if err := envconfig.Usagef(envPrefix, &config{}, tw, usageFormat); err != nil {
		return err
	}
	return tw.Flush()
}
