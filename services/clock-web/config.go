package main

import (
	"encoding"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// envPrefix is the prefix of every environment variable of the service.
const envPrefix = "CLOCK_WEB"

// config is the whole configuration, read once at start-up from the environment. The tags
// follow github.com/kelseyhightower/envconfig, which also prints the usage (-h).
type config struct {
	Host     string     `envconfig:"HOST" default:"" desc:"address to listen on (empty: all interfaces)"`
	Port     int        `envconfig:"PORT" default:"8080" desc:"TCP port to listen on (0: any free port)"`
	APIURL   string     `envconfig:"API_URL" default:"http://127.0.0.1:8000" desc:"base URL of clock-api (http or https); GET /clock is proxied to API_URL + /clock"`
	LogLevel slog.Level `envconfig:"LOG_LEVEL" default:"info" desc:"log level: debug, info, warn or error"`

	ReadHeaderTimeout time.Duration `envconfig:"READ_HEADER_TIMEOUT" default:"5s" desc:"time to read a request's headers"`
	ReadTimeout       time.Duration `envconfig:"READ_TIMEOUT" default:"10s" desc:"time to read a whole request"`
	WriteTimeout      time.Duration `envconfig:"WRITE_TIMEOUT" default:"10s" desc:"time to write a response (must exceed PROXY_TIMEOUT)"`
	IdleTimeout       time.Duration `envconfig:"IDLE_TIMEOUT" default:"60s" desc:"how long an idle keep-alive connection stays open"`
	// Dialling loopback or a container network takes microseconds; a short dial timeout turns a
	// vanished API into a quick 502 instead of a hanging page.
	ProxyDialTimeout time.Duration `envconfig:"PROXY_DIAL_TIMEOUT" default:"500ms" desc:"time to connect to the API (502 after it)"`
	ProxyTimeout     time.Duration `envconfig:"PROXY_TIMEOUT" default:"5s" desc:"time to wait for the API's response headers (504 after it)"`
	ShutdownTimeout  time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"10s" desc:"time for in-flight requests to finish on SIGTERM/SIGINT"`
}

// configError is a bad configuration value: it names the variable and the value.
type configError struct {
	Key, Value, Reason string
}

func (e *configError) Error() string {
	return fmt.Sprintf("configuration: %s=%q: %s", e.Key, e.Value, e.Reason)
}

// loadConfig reads the configuration through getenv (os.Getenv in production) so that tests
// can pass their own environment. envconfig itself reads only the process environment, so the
// fields are filled here from the same tags envconfig uses for the usage text: one source for
// names, defaults and meanings. An empty variable counts as unset.
func loadConfig(getenv func(string) string) (config, error) {
	var c config
	raws := map[string]string{}
	v := reflect.ValueOf(&c).Elem()
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		key := envKey(f)
		raw := getenv(key)
		if raw == "" {
			raw = f.Tag.Get("default")
		}
		raws[key] = raw
		if err := setField(v.Field(i), raw); err != nil {
			reason := err.Error()
			// The same words as validate uses for a value that parses but is out of range.
			switch f.Name {
			case "Port":
				reason = reasonPort
			case "LogLevel":
				reason = reasonLogLevel
			}
			return config{}, &configError{Key: key, Value: raw, Reason: reason}
		}
	}
	return c, c.validate(raws)
}

const (
	reasonPort     = "not a port number (0-65535)"
	reasonLogLevel = "not one of debug, info, warn, error"
)

// envKey is the variable name of a config field, computed as envconfig does.
func envKey(f reflect.StructField) string {
	return envPrefix + "_" + strings.ToUpper(f.Tag.Get("envconfig"))
}

var (
	durationType        = reflect.TypeFor[time.Duration]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func setField(f reflect.Value, raw string) error {
	if f.Addr().Type().Implements(textUnmarshalerType) {
		if err := f.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(raw)); err != nil {
			return err
		}
		return nil
	}
	if f.Type() == durationType {
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("not a duration (like 500ms, 5s or 1m)")
		}
		f.SetInt(int64(d))
		return nil
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(raw)
	case reflect.Int:
		n, err := strconv.Atoi(raw)
		if err != nil {
			return fmt.Errorf("not an integer")
		}
		f.SetInt(int64(n))
	default:
		return fmt.Errorf("unsupported field type %s", f.Type())
	}
	return nil
}

// validate checks the parsed values; raws holds the variables as given, so that an error
// quotes exactly what the operator wrote.
func (c *config) validate(raws map[string]string) error {
	bad := func(name, value, reason string) error {
		key := envPrefix + "_" + name
		if raw, ok := raws[key]; ok {
			value = raw
		}
		return &configError{Key: key, Value: value, Reason: reason}
	}
	if c.Host != "" && net.ParseIP(c.Host) == nil && !isHostname(c.Host) {
		return bad("HOST", c.Host, "not an IP address or host name")
	}
	if c.Port < 0 || c.Port > 65535 {
		return bad("PORT", strconv.Itoa(c.Port), reasonPort)
	}
	if _, err := parseAPIURL(c.APIURL); err != nil {
		return bad("API_URL", c.APIURL, err.Error())
	}
	switch c.LogLevel {
	case slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError:
	default:
		return bad("LOG_LEVEL", c.LogLevel.String(), reasonLogLevel)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"READ_HEADER_TIMEOUT", c.ReadHeaderTimeout},
		{"READ_TIMEOUT", c.ReadTimeout},
		{"WRITE_TIMEOUT", c.WriteTimeout},
		{"IDLE_TIMEOUT", c.IdleTimeout},
		{"PROXY_DIAL_TIMEOUT", c.ProxyDialTimeout},
		{"PROXY_TIMEOUT", c.ProxyTimeout},
		{"SHUTDOWN_TIMEOUT", c.ShutdownTimeout},
	} {
		if d.v <= 0 {
			return bad(d.name, d.v.String(), "must be a positive duration")
		}
	}
	// The 504 has to be written before the server's own write deadline cuts the connection.
	if c.ProxyTimeout >= c.WriteTimeout {
		return bad("PROXY_TIMEOUT", c.ProxyTimeout.String(),
			"must be shorter than CLOCK_WEB_WRITE_TIMEOUT ("+c.WriteTimeout.String()+")")
	}
	return nil
}

// parseAPIURL accepts an absolute http or https URL with a host and nothing that would be
// lost or leaked when /clock is appended: no query, fragment or credentials.
func parseAPIURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, fmt.Errorf("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("not an absolute http or https URL")
	case u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("URL has no host")
	case u.User != nil:
		return nil, fmt.Errorf("URL must not contain credentials")
	case u.RawQuery != "" || u.ForceQuery:
		return nil, fmt.Errorf("URL must not have a query")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return nil, fmt.Errorf("URL must not have a fragment")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("URL has an invalid port")
		}
	}
	return u, nil
}

func isHostname(s string) bool {
	if len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// logValue lists the effective configuration for the start-up log (it holds no secrets:
// credentials in API_URL are refused).
func (c config) logValue() slog.Value {
	return slog.GroupValue(
		slog.String("host", c.Host),
		slog.Int("port", c.Port),
		slog.String("api_url", c.APIURL),
		slog.String("log_level", c.LogLevel.String()),
		slog.String("read_header_timeout", c.ReadHeaderTimeout.String()),
		slog.String("read_timeout", c.ReadTimeout.String()),
		slog.String("write_timeout", c.WriteTimeout.String()),
		slog.String("idle_timeout", c.IdleTimeout.String()),
		slog.String("proxy_dial_timeout", c.ProxyDialTimeout.String()),
		slog.String("proxy_timeout", c.ProxyTimeout.String()),
		slog.String("shutdown_timeout", c.ShutdownTimeout.String()),
	)
}
