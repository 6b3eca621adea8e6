package main

import (
	"context"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	got, err := loadConfig(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := config{
		Host: "", Port: 8080, APIURL: "http://127.0.0.1:8000", LogLevel: slog.LevelInfo,
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second,
		ProxyDialTimeout: 500 * time.Millisecond, ProxyTimeout: 5 * time.Second,
		ShutdownTimeout: 10 * time.Second,
	}
	if got != want {
		t.Errorf("defaults:\ngot  %+v\nwant %+v", got, want)
	}
}

func TestConfigValues(t *testing.T) {
	got, err := loadConfig(env(map[string]string{
		"CLOCK_WEB_HOST": "127.0.0.1", "CLOCK_WEB_PORT": "9090", "CLOCK_WEB_LOG_LEVEL": "debug",
		"CLOCK_WEB_API_URL": "https://api.internal:8443/v1", "CLOCK_WEB_PROXY_TIMEOUT": "2s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if got.Host != "127.0.0.1" || got.Port != 9090 || got.LogLevel != slog.LevelDebug ||
		got.APIURL != "https://api.internal:8443/v1" || got.ProxyTimeout != 2*time.Second {
		t.Errorf("got %+v", got)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		key, value, reason string
	}{
		{"CLOCK_WEB_PORT", "abc", "not a port number (0-65535)"},
		{"CLOCK_WEB_PORT", "8080.5", "not a port number"},
		{"CLOCK_WEB_PORT", "70000", "not a port number"},
		{"CLOCK_WEB_PORT", "-1", "not a port number"},
		{"CLOCK_WEB_HOST", "bad host", "not an IP address or host name"},
		{"CLOCK_WEB_API_URL", "ftp://x", "not an absolute http or https URL"},
		{"CLOCK_WEB_API_URL", "/clock", "not an absolute http or https URL"},
		{"CLOCK_WEB_API_URL", "127.0.0.1:8000", "not"},
		{"CLOCK_WEB_API_URL", "http://", "no host"},
		{"CLOCK_WEB_API_URL", "http://:8000", "no host"},
		{"CLOCK_WEB_API_URL", "http://api:0", "invalid port"},
		{"CLOCK_WEB_API_URL", "http://api?x=1", "query"},
		{"CLOCK_WEB_API_URL", "http://api/?", "query"},
		{"CLOCK_WEB_API_URL", "http://api#top", "fragment"},
		{"CLOCK_WEB_API_URL", "http://user:pw@api", "credentials"},
		{"CLOCK_WEB_API_URL", "http://a pi", "not a URL"},
		{"CLOCK_WEB_LOG_LEVEL", "loud", "not one of debug, info, warn, error"},
		{"CLOCK_WEB_LOG_LEVEL", "info+1", "not one of"},
		{"CLOCK_WEB_READ_HEADER_TIMEOUT", "5", "not a duration"},
		{"CLOCK_WEB_READ_TIMEOUT", "0s", "positive"},
		{"CLOCK_WEB_WRITE_TIMEOUT", "-1s", "positive"},
		{"CLOCK_WEB_IDLE_TIMEOUT", "soon", "not a duration"},
		{"CLOCK_WEB_PROXY_DIAL_TIMEOUT", "0", "positive"},
		{"CLOCK_WEB_PROXY_TIMEOUT", "10s", "shorter than CLOCK_WEB_WRITE_TIMEOUT"},
		{"CLOCK_WEB_SHUTDOWN_TIMEOUT", "x", "not a duration"},
	} {
		t.Run(tc.key+"="+tc.value, func(t *testing.T) {
			var stdout, stderr syncBuffer
			err := run(context.Background(), []string{"clock-web"}, env(map[string]string{tc.key: tc.value}), &stdout, &stderr)
			if err == nil {
				t.Fatal("run: no error")
			}
			if got := exitCode(err); got != 2 {
				t.Errorf("exit code %d, want 2", got)
			}
			msg := err.Error()
			mustContain(t, "error", msg, "configuration: "+tc.key+"=")
			mustContain(t, "error", msg, tc.reason)
			if want := tc.key + "=" + strconv.Quote(tc.value) + ": "; tc.key != "CLOCK_WEB_PROXY_TIMEOUT" && !strings.Contains(msg, want) {
				t.Errorf("error %q does not quote the value as %q", msg, want)
			}
			if tc.key != "CLOCK_WEB_PROXY_TIMEOUT" {
				mustContain(t, "error", msg, tc.value)
			}
			if strings.Contains(stdout.String(), "listening") {
				t.Errorf("bound a port despite the bad configuration: %s", stdout.String())
			}
		})
	}
}

func TestUsageListsEveryVariable(t *testing.T) {
	for _, arg := range []string{"-h", "--help"} {
		var stdout, stderr syncBuffer
		if err := run(context.Background(), []string{"clock-web", arg}, env(nil), &stdout, &stderr); err != nil {
			t.Fatalf("run %s: %v", arg, err)
		}
		out := stdout.String()
		typ := reflect.TypeFor[config]()
		for i := range typ.NumField() {
			f := typ.Field(i)
			key := envKey(f)
			line := ""
			for l := range strings.Lines(out) {
				if strings.HasPrefix(l, key+" ") {
					line = l
				}
			}
			if line == "" {
				t.Errorf("%s: %s missing from usage:\n%s", arg, key, out)
				continue
			}
			mustContain(t, key, line, f.Tag.Get("default"))
			mustContain(t, key, line, f.Tag.Get("desc"))
		}
		mustContain(t, "usage", out, "healthcheck")
	}
}
