package main

import (
	"context"
	"log/slog"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clock-app/clock/services/internal/envcfg"
	"github.com/clock-app/clock/services/internal/serve"
)

func TestConfigDefaults(t *testing.T) {
	got, err := loadConfig(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := config{
		Port: 8080, APIURL: "http://127.0.0.1:8000",
		Config: serve.Config{
			Host: "", LogLevel: slog.LevelInfo,
			ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
			WriteTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second,
			ShutdownTimeout: 10 * time.Second,
		},
		ProxyDialTimeout: 500 * time.Millisecond, ProxyTimeout: 5 * time.Second,
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
		{"CLOCK_WEB_PORT", "abc", envcfg.ReasonPort},
		{"CLOCK_WEB_PORT", "8080.5", envcfg.ReasonPort},
		{"CLOCK_WEB_PORT", "70000", envcfg.ReasonPort},
		{"CLOCK_WEB_PORT", "-1", envcfg.ReasonPort},
		{"CLOCK_WEB_PORT", "0", envcfg.ReasonPort},
		{"CLOCK_WEB_PORT", "010", envcfg.ReasonPort},
		{"CLOCK_WEB_PORT", "08080", envcfg.ReasonPort},
		{"CLOCK_WEB_PORT", "0o17", envcfg.ReasonPort},
		{"CLOCK_WEB_PORT", "8080 ", envcfg.ReasonPort},
		{"CLOCK_WEB_PORT", "1_000", envcfg.ReasonPort},
		{"CLOCK_WEB_HOST", "bad host", envcfg.ReasonHost},
		{"CLOCK_WEB_HOST", "0.0.0.0:80", envcfg.ReasonHost},
		{"CLOCK_WEB_HOST", "exa_mple.com", envcfg.ReasonHost},
		{"CLOCK_WEB_HOST", "host-", envcfg.ReasonHost},
		{"CLOCK_WEB_HOST", "host/x", envcfg.ReasonHost},
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
		{"CLOCK_WEB_LOG_LEVEL", "loud", envcfg.ReasonLevel},
		{"CLOCK_WEB_LOG_LEVEL", "info+1", envcfg.ReasonLevel},
		{"CLOCK_WEB_LOG_LEVEL", "8", envcfg.ReasonLevel},
		{"CLOCK_WEB_READ_HEADER_TIMEOUT", "5", "not a duration from 100ms to 30s"},
		{"CLOCK_WEB_READ_HEADER_TIMEOUT", "31s", "not a duration from 100ms to 30s"},
		{"CLOCK_WEB_READ_TIMEOUT", "0s", "not a duration from 100ms to 1m0s"},
		{"CLOCK_WEB_WRITE_TIMEOUT", "-1s", "not a duration from 100ms to 1m0s"},
		{"CLOCK_WEB_IDLE_TIMEOUT", "soon", "not a duration from 1s to 5m0s"},
		{"CLOCK_WEB_IDLE_TIMEOUT", "999ms", "not a duration from 1s to 5m0s"},
		{"CLOCK_WEB_PROXY_DIAL_TIMEOUT", "0", "not a duration from 10ms to 10s"},
		{"CLOCK_WEB_PROXY_DIAL_TIMEOUT", "1h", "not a duration from 10ms to 10s"},
		{"CLOCK_WEB_PROXY_TIMEOUT", "10s", "shorter than CLOCK_WEB_WRITE_TIMEOUT"},
		{"CLOCK_WEB_PROXY_TIMEOUT", "50ms", "not a duration from 100ms to 1m0s"},
		{"CLOCK_WEB_SHUTDOWN_TIMEOUT", "x", "not a duration from 100ms to 20s"},
		{"CLOCK_WEB_SHUTDOWN_TIMEOUT", "1m", "not a duration from 100ms to 20s"},
	} {
		t.Run(tc.key+"="+tc.value, func(t *testing.T) {
			var stdout, stderr syncBuffer
			err := run(context.Background(), nil, env(map[string]string{tc.key: tc.value}), &stdout, &stderr)
			if err == nil {
				t.Fatal("run: no error")
			}
			if got := serve.ExitCode(err); got != 2 {
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
		if err := run(context.Background(), []string{arg}, env(nil), &stdout, &stderr); err != nil {
			t.Fatalf("run %s: %v", arg, err)
		}
		out := stdout.String()
		for _, f := range specFields(reflect.TypeFor[config]()) {
			key := envPrefix + "_" + f.Tag.Get("envconfig")
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
			if lo := f.Tag.Get("min"); lo != "" {
				mustContain(t, key, line, lo+"-"+f.Tag.Get("max"))
			}
		}
		mustContain(t, "usage", out, "empty value counts as unset")
		mustContain(t, "usage", out, "healthcheck")
	}
}

// specFields lists the variables' fields of a config struct, embedded ones included.
func specFields(t reflect.Type) []reflect.StructField {
	var out []reflect.StructField
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous {
			out = append(out, specFields(f.Type)...)
			continue
		}
		out = append(out, f)
	}
	return out
}

// TestConfigEmptyMeansUnset checks the one rule for empty values: the default applies.
func TestConfigEmptyMeansUnset(t *testing.T) {
	vars := map[string]string{}
	for _, f := range specFields(reflect.TypeFor[config]()) {
		vars[envPrefix+"_"+f.Tag.Get("envconfig")] = ""
	}
	got, err := loadConfig(env(vars))
	if err != nil {
		t.Fatalf("every variable empty: %v, want the defaults", err)
	}
	want, _ := loadConfig(env(nil))
	if got != want {
		t.Errorf("every variable empty: %+v, want the defaults %+v", got, want)
	}
}

// TestConfigIgnoresBareNames checks that only CLOCK_WEB_* is read, never the bare PORT, HOST
// or API_URL that CI systems and PaaS set for their own purposes.
func TestConfigIgnoresBareNames(t *testing.T) {
	for _, kv := range os.Environ() {
		if key, _, _ := strings.Cut(kv, "="); strings.HasPrefix(key, envPrefix+"_") {
			t.Setenv(key, "") // an empty value counts as unset; restored at cleanup
		}
	}
	t.Setenv("PORT", "1")
	t.Setenv("HOST", "bad host")
	t.Setenv("API_URL", "ftp://elsewhere")
	t.Setenv("PROXY_TIMEOUT", "1h")
	var asked []string
	got, err := loadConfig(func(key string) string {
		asked = append(asked, key)
		return os.Getenv(key)
	})
	if err != nil {
		t.Fatalf("loadConfig with PORT=1 HOST=bad set: %v, want the defaults", err)
	}
	if got.Port != 8080 || got.Host != "" || got.APIURL != "http://127.0.0.1:8000" {
		t.Errorf("loadConfig() = %+v, want the defaults", got)
	}
	for _, key := range asked {
		if !strings.HasPrefix(key, envPrefix+"_") {
			t.Errorf("loadConfig read %s, want only %s_* variables", key, envPrefix)
		}
	}
}
