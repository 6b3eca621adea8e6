package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/clock-app/clock/services/internal/envcfg"
	"github.com/clock-app/clock/services/internal/serve"
)

// env turns a map into a getenv function, so tests never depend on the process environment.
func env(vars map[string]string) func(string) string {
	return func(key string) string { return vars[key] }
}

func TestLoadConfigDefaults(t *testing.T) {
	got, err := loadConfig(env(nil))
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	want := config{Port: 8000, Config: serve.Config{
		Host: "", LogLevel: 0, // slog.LevelInfo
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second,
		ShutdownTimeout: 10 * time.Second,
	}}
	if got != want {
		t.Errorf("loadConfig() = %+v, want %+v", got, want)
	}
}

func TestLoadConfigFromEnv(t *testing.T) {
	got, err := loadConfig(env(map[string]string{
		"CLOCK_API_HOST":                "127.0.0.1",
		"CLOCK_API_PORT":                "9001",
		"CLOCK_API_LOG_LEVEL":           "WARN",
		"CLOCK_API_READ_HEADER_TIMEOUT": "250ms",
		"CLOCK_API_SHUTDOWN_TIMEOUT":    "15s",
		"CLOCK_API_IDLE_TIMEOUT":        "",  // empty counts as unset: the default
		"CLOCK_API_LOG_LEVEL_EXTRA":     "x", // not a variable of ours
	}))
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	if got.Host != "127.0.0.1" || got.Port != 9001 || got.LogLevel.String() != "WARN" ||
		got.ReadHeaderTimeout != 250*time.Millisecond || got.ShutdownTimeout != 15*time.Second ||
		got.IdleTimeout != 60*time.Second {
		t.Errorf("loadConfig() = %+v", got)
	}
}

// TestLoadConfigIgnoresBareNames checks that only CLOCK_API_* is read: envconfig.Process
// falls back to PORT, HOST... when the prefixed variable is unset, and CI systems and PaaS
// set those for their own purposes.
func TestLoadConfigIgnoresBareNames(t *testing.T) {
	for _, kv := range os.Environ() {
		if key, _, _ := strings.Cut(kv, "="); strings.HasPrefix(key, envPrefix+"_") {
			t.Setenv(key, "") // an empty value counts as unset; restored at cleanup
		}
	}
	for _, key := range []string{"PORT", "HOST", "LOG_LEVEL", "READ_TIMEOUT", "SHUTDOWN_TIMEOUT", "VERSION"} {
		t.Setenv(key, "1")
	}
	t.Setenv("HOST", "bad host")
	var asked []string
	got, err := loadConfig(func(key string) string {
		asked = append(asked, key)
		return os.Getenv(key)
	})
	if err != nil {
		t.Fatalf("loadConfig with PORT=1 HOST=bad set: %v, want the defaults", err)
	}
	if got.Port != 8000 || got.Host != "" || got.ReadTimeout != 10*time.Second {
		t.Errorf("loadConfig() = %+v, want the defaults", got)
	}
	for _, key := range asked {
		if !strings.HasPrefix(key, envPrefix+"_") {
			t.Errorf("loadConfig read %s, want only %s_* variables", key, envPrefix)
		}
	}
}

// badConfigs are values that must stop the service before it binds, with the reason the
// error gives.
var badConfigs = []struct{ key, value, reason string }{
	{"CLOCK_API_PORT", "abc", envcfg.ReasonPort},
	{"CLOCK_API_PORT", "70000", envcfg.ReasonPort},
	{"CLOCK_API_PORT", "0", envcfg.ReasonPort},
	{"CLOCK_API_PORT", "-1", envcfg.ReasonPort},
	{"CLOCK_API_PORT", "+80", envcfg.ReasonPort},
	{"CLOCK_API_PORT", "010", envcfg.ReasonPort},
	{"CLOCK_API_PORT", "0x1f", envcfg.ReasonPort},
	{"CLOCK_API_PORT", " 80", envcfg.ReasonPort},
	{"CLOCK_API_PORT", "80.5", envcfg.ReasonPort},
	{"CLOCK_API_PORT", "٨٠", envcfg.ReasonPort}, // Arabic-Indic digits
	{"CLOCK_API_PORT", "99999999999999999999", envcfg.ReasonPort},
	{"CLOCK_API_HOST", "bad host", envcfg.ReasonHost},
	{"CLOCK_API_HOST", "-lead.example", envcfg.ReasonHost},
	{"CLOCK_API_HOST", "a..b", envcfg.ReasonHost},
	{"CLOCK_API_HOST", "127.0.0.1:80", envcfg.ReasonHost},
	{"CLOCK_API_HOST", "[::1]", envcfg.ReasonHost},
	{"CLOCK_API_HOST", "http://x", envcfg.ReasonHost},
	{"CLOCK_API_HOST", strings.Repeat("a", 64), envcfg.ReasonHost},
	{"CLOCK_API_HOST", "hôte", envcfg.ReasonHost},
	{"CLOCK_API_LOG_LEVEL", "verbose", envcfg.ReasonLevel},
	{"CLOCK_API_LOG_LEVEL", "info+1", envcfg.ReasonLevel},
	{"CLOCK_API_LOG_LEVEL", "-4", envcfg.ReasonLevel},
	{"CLOCK_API_LOG_LEVEL", "warning", envcfg.ReasonLevel},
	{"CLOCK_API_READ_HEADER_TIMEOUT", "0", "not a duration from 100ms to 30s"},
	{"CLOCK_API_READ_HEADER_TIMEOUT", "1m", "not a duration from 100ms to 30s"},
	{"CLOCK_API_READ_TIMEOUT", "-1s", "not a duration from 100ms to 1m0s"},
	{"CLOCK_API_READ_TIMEOUT", "1ns", "not a duration from 100ms to 1m0s"},
	{"CLOCK_API_WRITE_TIMEOUT", "10", "not a duration from 100ms to 1m0s"},
	{"CLOCK_API_WRITE_TIMEOUT", "2h", "not a duration from 100ms to 1m0s"},
	{"CLOCK_API_IDLE_TIMEOUT", "soon", "not a duration from 1s to 5m0s"},
	{"CLOCK_API_IDLE_TIMEOUT", "9999999999h", "not a duration from 1s to 5m0s"},
	{"CLOCK_API_SHUTDOWN_TIMEOUT", "0s", "not a duration from 100ms to 20s"},
	{"CLOCK_API_SHUTDOWN_TIMEOUT", "21s", "not a duration from 100ms to 20s"},
}

func TestRunRejectsBadConfig(t *testing.T) {
	for _, tt := range badConfigs {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), nil, env(map[string]string{tt.key: tt.value}), &stdout, &stderr)
			if err == nil {
				t.Fatalf("run with %s=%q: no error, want a configuration error", tt.key, tt.value)
			}
			if code := serve.ExitCode(err); code != 2 {
				t.Errorf("exit code %d, want 2 (err: %v)", code, err)
			}
			want := tt.key + `="` + tt.value + `": ` + tt.reason
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q, want it to contain %q", err, want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing: the service must stop before it starts", stdout.String())
			}
		})
	}
}

// TestMain lets a test run the real main in a child process: exit codes and
// stderr are part of the contract.
func TestMain(m *testing.M) {
	if os.Getenv("CLOCK_API_TEST_RUN_MAIN") == "1" {
		os.Args = []string{os.Args[0]}
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestMainExitsTwoOnBadConfig(t *testing.T) {
	for _, tt := range badConfigs[:3] {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "CLOCK_API_TEST_RUN_MAIN=1", tt.key+"="+tt.value)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("clock-api with %s=%q: %v, want exit status 2", tt.key, tt.value, err)
			}
			want := `clock-api: configuration: ` + tt.key + `="` + tt.value + `": ` + tt.reason + "\n"
			if got := stderr.String(); got != want {
				t.Errorf("stderr %q, want %q", got, want)
			}
		})
	}
}

func TestRunHelpListsEveryVariable(t *testing.T) {
	for _, arg := range []string{"-h", "--help"} {
		t.Run(arg, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			// help works even with a bad config
			if err := run(context.Background(), []string{arg}, env(map[string]string{"CLOCK_API_PORT": "abc"}), &stdout, &stderr); err != nil {
				t.Fatalf("run %s: %v", arg, err)
			}
			lines := strings.Split(stdout.String(), "\n")
			for _, f := range specFields(reflect.TypeFor[config]()) {
				key := envPrefix + "_" + f.Tag.Get("envconfig")
				line := findLine(lines, key+" ")
				if line == "" {
					t.Errorf("%s: no line for %s in:\n%s", arg, key, stdout.String())
					continue
				}
				want := []string{f.Tag.Get("default"), f.Tag.Get("desc")}
				if lo := f.Tag.Get("min"); lo != "" {
					want = append(want, lo+"-"+f.Tag.Get("max"))
				}
				for _, w := range want {
					if !strings.Contains(line, w) {
						t.Errorf("%s: line %q lacks %q", arg, line, w)
					}
				}
			}
			if !strings.Contains(stdout.String(), "empty value counts as unset") {
				t.Errorf("%s: usage does not state the rule for empty values:\n%s", arg, stdout.String())
			}
		})
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

func findLine(lines []string, prefix string) string {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

func TestRunVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"version"}, env(nil), &stdout, &stderr); err != nil {
		t.Fatalf("run version: %v", err)
	}
	if got, want := stdout.String(), version+"\n"; got != want {
		t.Errorf("version printed %q, want %q", got, want)
	}
}

func TestRunUnknownCommand(t *testing.T) {
	for _, args := range [][]string{{"serve-please"}, {"version", "extra"}} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), args, env(nil), &stdout, &stderr)
		if err == nil || serve.ExitCode(err) != 2 {
			t.Fatalf("run %q: %v, want a usage error (exit 2)", args, err)
		}
		if !strings.Contains(stderr.String(), "Usage:") {
			t.Errorf("run %q: stderr %q, want the usage", args, stderr.String())
		}
	}
}
