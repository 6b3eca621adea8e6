package envcfg

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestParsePort(t *testing.T) {
	good := map[string]Port{"1": 1, "80": 80, "8000": 8000, "65535": 65535}
	for in, want := range good {
		if got, err := ParsePort(in); err != nil || got != want {
			t.Errorf("ParsePort(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	// "010" is neither 8 (octal) nor 10: a leading zero is refused.
	for _, in := range []string{"", "0", "00", "010", "08080", "65536", "99999", "123456", "-1", "+80",
		" 80", "80 ", "8_0", "0x50", "0o120", "80.0", "1e3", "٨٠", "８０"} {
		if got, err := ParsePort(in); err == nil || err.Error() != ReasonPort {
			t.Errorf("ParsePort(%q) = %d, %v; want the error %q", in, got, err, ReasonPort)
		}
	}
}

func TestParseHost(t *testing.T) {
	for _, in := range []string{"", "127.0.0.1", "0.0.0.0", "::", "::1", "fe80::1", "localhost",
		"clock-api", "api.internal", "a.b-c.d", strings.Repeat("a", 63) + ".example"} {
		if got, err := ParseHost(in); err != nil || string(got) != in {
			t.Errorf("ParseHost(%q) = %q, %v; want it accepted as is", in, got, err)
		}
	}
	for _, in := range []string{" ", "bad host", "host:80", "[::1]", "1.2.3.4:5", "http://x", "a..b", ".a",
		"a.", "-a", "a-", "a_b", "hôte", "a/b", "a\x00b", strings.Repeat("a", 64),
		strings.Repeat("a.", 127) + "aa"} {
		if got, err := ParseHost(in); err == nil || err.Error() != ReasonHost {
			t.Errorf("ParseHost(%q) = %q, %v; want the error %q", in, got, err, ReasonHost)
		}
	}
}

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]slog.Level{
		"debug": slog.LevelDebug, "info": slog.LevelInfo, "INFO": slog.LevelInfo,
		"Warn": slog.LevelWarn, "error": slog.LevelError,
	} {
		if got, err := ParseLevel(in); err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "warning", "info+1", "debug-4", "0", "-4", "trace", "fatal", " info"} {
		if _, err := ParseLevel(in); err == nil {
			t.Errorf("ParseLevel(%q): no error, want %q", in, ReasonLevel)
		}
	}
}

type Inner struct {
	Host Host          `envconfig:"HOST" desc:"where"`
	Wait time.Duration `envconfig:"WAIT" default:"2s" min:"1s" max:"10s" desc:"how long"`
}

type spec struct {
	Port Port `envconfig:"PORT" default:"8000" desc:"port"`
	Inner
	Name   string     `envconfig:"NAME" default:"clock" desc:"name"`
	Level  slog.Level `envconfig:"LEVEL" default:"info" desc:"level"`
	Share  bool       `envconfig:"SHARE" default:"false" desc:"share"`
	hidden string
}

func env(vars map[string]string) func(string) string {
	return func(key string) string { return vars[key] }
}

func TestLoad(t *testing.T) {
	var got spec
	err := Load("T", &got, env(map[string]string{
		"T_PORT": "9000", "T_HOST": "::1", "T_WAIT": "", "T_NAME": "x", "T_LEVEL": "debug", "T_SHARE": "true",
		"PORT": "1", "HOST": "bad host", "WAIT": "1h",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := spec{Port: 9000, Inner: Inner{Host: "::1", Wait: 2 * time.Second}, Name: "x", Level: slog.LevelDebug, Share: true}
	if got != want {
		t.Errorf("Load = %+v, want %+v", got, want)
	}
}

func TestLoadAsksOnlyForPrefixedNames(t *testing.T) {
	var asked []string
	var s spec
	if err := Load("T", &s, func(k string) string { asked = append(asked, k); return "" }); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(asked, " "), "T_PORT T_HOST T_WAIT T_NAME T_LEVEL T_SHARE"; got != want {
		t.Errorf("Load asked for %q, want exactly %q", got, want)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct{ key, value, reason string }{
		{"T_PORT", "010", ReasonPort},
		{"T_HOST", "a b", ReasonHost},
		{"T_WAIT", "999ms", "not a duration from 1s to 10s (like 500ms, 5s or 1m)"},
		{"T_WAIT", "11s", "not a duration from 1s to 10s (like 500ms, 5s or 1m)"},
		{"T_WAIT", "5", "not a duration from 1s to 10s (like 500ms, 5s or 1m)"},
		{"T_LEVEL", "info+1", ReasonLevel},
		{"T_SHARE", "1", "not true or false"},
		{"T_SHARE", "TRUE", "not true or false"},
	} {
		var s spec
		err := Load("T", &s, env(map[string]string{tc.key: tc.value}))
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != tc.key || ce.Value != tc.value || ce.Reason != tc.reason {
			t.Errorf("%s=%q: %v, want an *Error naming it with %q", tc.key, tc.value, err, tc.reason)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "configuration: "+tc.key+"=") {
			t.Errorf("%s=%q: message %q, want it to start with the variable", tc.key, tc.value, err)
		}
	}
}

func TestLoadPanicsOnDurationWithoutBounds(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("a duration without min and max tags loaded; want a panic (a programming error)")
		}
	}()
	var s struct {
		D time.Duration `envconfig:"D" default:"1s"`
	}
	_ = Load("T", &s, env(nil))
}

func TestAttrs(t *testing.T) {
	s := spec{Port: 80, Inner: Inner{Host: "h", Wait: 1500 * time.Millisecond}, Name: "n", Level: slog.LevelWarn, Share: true}
	var b bytes.Buffer
	slog.New(slog.NewJSONHandler(&b, nil)).LogAttrs(t.Context(), slog.LevelInfo, "m", Attrs("T", s)...)
	if want := `"port":80,"host":"h","wait":"1.5s","name":"n","level":"warn","share":true}`; !strings.Contains(b.String(), want) {
		t.Errorf("Attrs logged %s, want %s", b.String(), want)
	}
}

func TestUsage(t *testing.T) {
	var b bytes.Buffer
	if err := Usage(&b, "T", &spec{}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"empty value counts as unset", "T_PORT", "8000", "T_WAIT", "1s-10s", "how long", "T_LEVEL"} {
		if !strings.Contains(out, want) {
			t.Errorf("usage lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hidden") {
		t.Errorf("usage lists an unexported field:\n%s", out)
	}
}
