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
)

// clearEnv unsets every CLOCK_API_* variable for the test, so defaults apply
// whatever the machine running the tests has set.
func clearEnv(tb testing.TB) {
	tb.Helper()
	for _, kv := range os.Environ() {
		key, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(key, envPrefix+"_") {
			tb.Setenv(key, "") // restores the old value at cleanup
			os.Unsetenv(key)
		}
	}
}

func TestLoadConfigDefaults(t *testing.T) {
	clearEnv(t)
	got, err := loadConfig()
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	want := config{
		Host: "", Port: 8000, LogLevel: 0, // slog.LevelInfo
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second,
		ShutdownTimeout: 10 * time.Second,
	}
	if got != want {
		t.Errorf("loadConfig() = %+v, want %+v", got, want)
	}
	if got.addr() != ":8000" {
		t.Errorf("addr() = %q, want %q", got.addr(), ":8000")
	}
}

func TestLoadConfigFromEnv(t *testing.T) {
	clearEnv(t)
	t.Setenv("CLOCK_API_HOST", "127.0.0.1")
	t.Setenv("CLOCK_API_PORT", "9001")
	t.Setenv("CLOCK_API_LOG_LEVEL", "WARN")
	t.Setenv("CLOCK_API_READ_HEADER_TIMEOUT", "250ms")
	t.Setenv("CLOCK_API_SHUTDOWN_TIMEOUT", "1m30s")
	got, err := loadConfig()
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	if got.addr() != "127.0.0.1:9001" || got.LogLevel.String() != "WARN" ||
		got.ReadHeaderTimeout != 250*time.Millisecond || got.ShutdownTimeout != 90*time.Second {
		t.Errorf("loadConfig() = %+v", got)
	}
}

// badConfigs are values that must stop the service before it binds.
var badConfigs = []struct{ key, value, allowed string }{
	{"CLOCK_API_PORT", "abc", allowedPort},
	{"CLOCK_API_PORT", "70000", allowedPort},
	{"CLOCK_API_PORT", "0", allowedPort},
	{"CLOCK_API_PORT", "-1", allowedPort},
	{"CLOCK_API_PORT", "", allowedPort},
	{"CLOCK_API_PORT", "80.5", allowedPort},
	{"CLOCK_API_LOG_LEVEL", "verbose", allowedLevel},
	{"CLOCK_API_LOG_LEVEL", "", allowedLevel},
	{"CLOCK_API_READ_HEADER_TIMEOUT", "0", allowedDuration},
	{"CLOCK_API_READ_TIMEOUT", "-1s", allowedDuration},
	{"CLOCK_API_WRITE_TIMEOUT", "10", allowedDuration},
	{"CLOCK_API_IDLE_TIMEOUT", "soon", allowedDuration},
	{"CLOCK_API_SHUTDOWN_TIMEOUT", "0s", allowedDuration},
}

func TestRunRejectsBadConfig(t *testing.T) {
	for _, tt := range badConfigs {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			clearEnv(t)
			t.Setenv(tt.key, tt.value)
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), nil, &stdout, &stderr)
			if err == nil {
				t.Fatalf("run with %s=%q: no error, want a configuration error", tt.key, tt.value)
			}
			if code := exitCode(err); code != 2 {
				t.Errorf("exit code %d, want 2 (err: %v)", code, err)
			}
			want := tt.key + `="` + tt.value + `": ` + tt.allowed
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
			want := `clock-api: configuration: ` + tt.key + `="` + tt.value + `": ` + tt.allowed + "\n"
			if got := stderr.String(); got != want {
				t.Errorf("stderr %q, want %q", got, want)
			}
		})
	}
}

func TestRunHelpListsEveryVariable(t *testing.T) {
	for _, arg := range []string{"-h", "--help"} {
		t.Run(arg, func(t *testing.T) {
			clearEnv(t)
			t.Setenv("CLOCK_API_PORT", "abc") // help works even with a bad config
			var stdout, stderr bytes.Buffer
			if err := run(context.Background(), []string{arg}, &stdout, &stderr); err != nil {
				t.Fatalf("run %s: %v", arg, err)
			}
			lines := strings.Split(stdout.String(), "\n")
			typ := reflect.TypeFor[config]()
			for i := range typ.NumField() {
				f := typ.Field(i)
				key := envPrefix + "_" + f.Tag.Get("envconfig")
				line := findLine(lines, key+" ")
				if line == "" {
					t.Errorf("%s: no line for %s in:\n%s", arg, key, stdout.String())
					continue
				}
				for _, want := range []string{f.Tag.Get("default"), f.Tag.Get("desc")} {
					if !strings.Contains(line, want) {
						t.Errorf("%s: line %q lacks %q", arg, line, want)
					}
				}
			}
		})
	}
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
	if err := run(context.Background(), []string{"version"}, &stdout, &stderr); err != nil {
		t.Fatalf("run version: %v", err)
	}
	if got, want := stdout.String(), version+"\n"; got != want {
		t.Errorf("version printed %q, want %q", got, want)
	}
}

func TestRunUnknownCommand(t *testing.T) {
	clearEnv(t)
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"serve-please"}, &stdout, &stderr)
	if err == nil || exitCode(err) != 2 {
		t.Fatalf("run serve-please: %v, want a usage error (exit 2)", err)
	}
	if !strings.Contains(stderr.String(), "Usage:") {
		t.Errorf("stderr %q, want the usage", stderr.String())
	}
}
