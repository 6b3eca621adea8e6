package main

import (
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/clock-app/clock/services/internal/envcfg"
	"github.com/clock-app/clock/services/internal/serve"
)

// envPrefix is the prefix of every environment variable of the service.
const envPrefix = "CLOCK_WEB"

// config is the whole configuration, read once at start-up from the environment. The
// lifecycle's part (host, log level, server timeouts) and the rules for every value are
// serve.Config's and envcfg's, shared with clock-api.
type config struct {
	Port   envcfg.Port `envconfig:"PORT" default:"8080" desc:"TCP port to listen on (decimal, 1-65535)"`
	APIURL string      `envconfig:"API_URL" default:"http://127.0.0.1:8000" desc:"base URL of clock-api (http or https); GET /clock is proxied to API_URL + /clock"`
	serve.Config
	// Dialling loopback or a container network takes microseconds; a short dial timeout turns a
	// vanished API into a quick 502 instead of a hanging page.
	ProxyDialTimeout time.Duration `envconfig:"PROXY_DIAL_TIMEOUT" default:"500ms" min:"10ms" max:"10s" desc:"time to connect to the API (502 after it)"`
	ProxyTimeout     time.Duration `envconfig:"PROXY_TIMEOUT" default:"5s" min:"100ms" max:"1m" desc:"time for the whole exchange with the API, dial to body (504 after it); shorter than WRITE_TIMEOUT"`
}

// loadConfig reads the configuration through getenv (os.Getenv in production), so that tests
// can pass their own environment: only CLOCK_WEB_* variables, under envcfg's rules.
func loadConfig(getenv func(string) string) (config, error) {
	var c config
	if err := envcfg.Load(envPrefix, &c, getenv); err != nil {
		return config{}, err
	}
	if _, err := parseAPIURL(c.APIURL); err != nil {
		return config{}, &envcfg.Error{Key: envPrefix + "_API_URL", Value: c.APIURL, Reason: err.Error()}
	}
	// The 504 has to be written before the server's own write deadline cuts the connection.
	if c.ProxyTimeout >= c.WriteTimeout {
		return config{}, &envcfg.Error{Key: envPrefix + "_PROXY_TIMEOUT", Value: c.ProxyTimeout.String(),
			Reason: "must be shorter than " + envPrefix + "_WRITE_TIMEOUT (" + c.WriteTimeout.String() + ")"}
	}
	return c, nil
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

// logValue lists the effective configuration for the start-up log (it holds no secrets:
// credentials in API_URL are refused).
func (c config) logValue() slog.Value {
	return slog.GroupValue(envcfg.Attrs(envPrefix, c)...)
}
