// Package envcfg loads a service's configuration from its own environment variables, with
// one set of rules for both services:
//
//   - Only PREFIX_NAME is read, for each field tagged `envconfig:"NAME"`. envconfig.Process
//     would also read a bare NAME (PORT, HOST, VERSION...) when PREFIX_NAME is unset, and CI
//     systems and PaaS set those for their own reasons; this loader never asks for them.
//   - An empty variable counts as unset: the default applies. Docker, Compose and Ansible
//     templates pass an unset value as an empty one, and an empty port or level has no other
//     sensible meaning.
//   - Ports are decimal, 1-65535, without sign or leading zero ("010" is not port 8 or 10).
//   - A host is empty (all interfaces), an IP literal or a host name (RFC 1123 labels).
//   - Log levels are exactly debug, info, warn and error (any case).
//   - Every time.Duration field carries `min` and `max` tags: its floor and ceiling.
//
// The struct tags are envconfig's, so envconfig.Usagef prints the same names, defaults and
// meanings for -h (see Usage).
package envcfg

import (
	"encoding"
	"fmt"
	"io"
	"log/slog"
	"net"
	"reflect"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kelseyhightower/envconfig"
)

// Error is a bad configuration value. It names the variable and quotes the value as given,
// so the operator sees what to fix; services exit 2 on it, before they bind.
type Error struct {
	Key, Value, Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("configuration: %s=%q: %s", e.Key, e.Value, e.Reason)
}

// Host is a listen or dial address without port: empty (all interfaces), an IP literal or a
// host name.
type Host string

// Port is a TCP port, 1-65535, written in decimal.
type Port int

// Reasons shared by both services' messages and tests.
const (
	ReasonPort  = "not a port number (decimal, 1-65535)"
	ReasonHost  = "not an IP address or host name"
	ReasonLevel = "not one of debug, info, warn, error"
)

// ParsePort reads a decimal port: digits only, no leading zero, 1-65535.
func ParsePort(s string) (Port, error) {
	if s == "" || len(s) > 5 || s[0] == '0' {
		return 0, fmt.Errorf("%s", ReasonPort)
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("%s", ReasonPort)
		}
	}
	n, _ := strconv.Atoi(s)
	if n > 65535 {
		return 0, fmt.Errorf("%s", ReasonPort)
	}
	return Port(n), nil
}

// ParseHost accepts an empty host, an IP literal or a host name.
func ParseHost(s string) (Host, error) {
	if s == "" || net.ParseIP(s) != nil || isHostname(s) {
		return Host(s), nil
	}
	return "", fmt.Errorf("%s", ReasonHost)
}

func isHostname(s string) bool {
	if len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
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

// ParseLevel accepts exactly the documented levels. slog.Level's own UnmarshalText also takes
// offsets such as "info+2", which no documentation of ours mentions.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("%s", ReasonLevel)
}

// field is one variable of a spec: its key and where its value goes.
type field struct {
	key string
	tag reflect.StructTag
	v   reflect.Value
}

// fields lists spec's variables in envconfig's order, descending into embedded structs
// without a tag as envconfig does, so the keys here and in the usage text agree.
func fields(prefix string, v reflect.Value) []field {
	var out []field
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue // envconfig cannot set it either
		}
		if f.Anonymous && f.Type.Kind() == reflect.Struct && f.Tag.Get("envconfig") == "" {
			out = append(out, fields(prefix, v.Field(i))...)
			continue
		}
		name := f.Tag.Get("envconfig")
		if name == "" {
			continue
		}
		out = append(out, field{key: prefix + "_" + strings.ToUpper(name), tag: f.Tag, v: v.Field(i)})
	}
	return out
}

// Load fills *spec from getenv (os.Getenv in production) under prefix, for example
// "CLOCK_API". It asks getenv for PREFIX_NAME keys only.
func Load(prefix string, spec any, getenv func(string) string) error {
	v := reflect.ValueOf(spec)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("envcfg: spec must be a pointer to a struct, not %T", spec)
	}
	for _, f := range fields(prefix, v.Elem()) {
		raw := getenv(f.key)
		if raw == "" {
			raw = f.tag.Get("default")
		}
		if err := set(f, raw); err != nil {
			return &Error{Key: f.key, Value: raw, Reason: err.Error()}
		}
	}
	return nil
}

var (
	durationType        = reflect.TypeFor[time.Duration]()
	levelType           = reflect.TypeFor[slog.Level]()
	hostType            = reflect.TypeFor[Host]()
	portType            = reflect.TypeFor[Port]()
	boolType            = reflect.TypeFor[bool]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func set(f field, raw string) error {
	switch f.v.Type() {
	case durationType:
		lo, hi, err := Bounds(f.tag)
		if err != nil {
			panic(fmt.Sprintf("envcfg: %s: %v", f.key, err)) // a programming error, caught by any test
		}
		d, err := time.ParseDuration(raw)
		if err != nil || d < lo || d > hi {
			return fmt.Errorf("not a duration from %s to %s (like 500ms, 5s or 1m)", lo, hi)
		}
		f.v.SetInt(int64(d))
	case levelType:
		l, err := ParseLevel(raw)
		if err != nil {
			return err
		}
		f.v.SetInt(int64(l))
	case hostType:
		h, err := ParseHost(raw)
		if err != nil {
			return err
		}
		f.v.SetString(string(h))
	case portType:
		p, err := ParsePort(raw)
		if err != nil {
			return err
		}
		f.v.SetInt(int64(p))
	case boolType:
		// Exactly the two words the usage text shows: strconv.ParseBool's "t", "0" or
		// "FALSE" are not in any documentation of ours.
		switch raw {
		case "true":
			f.v.SetBool(true)
		case "false":
			f.v.SetBool(false)
		default:
			return fmt.Errorf("not true or false")
		}
	default:
		if u, ok := f.v.Addr().Interface().(encoding.TextUnmarshaler); ok {
			return u.UnmarshalText([]byte(raw))
		}
		if f.v.Kind() != reflect.String {
			panic(fmt.Sprintf("envcfg: %s: unsupported type %s", f.key, f.v.Type()))
		}
		f.v.SetString(raw)
	}
	return nil
}

// Bounds reads a duration field's `min` and `max` tags.
func Bounds(tag reflect.StructTag) (lo, hi time.Duration, err error) {
	lo, err1 := time.ParseDuration(tag.Get("min"))
	hi, err2 := time.ParseDuration(tag.Get("max"))
	if err1 != nil || err2 != nil || lo > hi {
		return 0, 0, fmt.Errorf("duration field needs min and max tags, min <= max")
	}
	return lo, hi, nil
}

// Attrs lists the effective configuration for the start-up log, one attribute per variable
// named by its lower-case suffix (read_header_timeout), durations in the form they are
// written in ("5s"). Configurations hold no secrets.
func Attrs(prefix string, spec any) []slog.Attr {
	var out []slog.Attr
	for _, f := range fields(prefix, reflect.ValueOf(spec)) {
		name := strings.ToLower(strings.TrimPrefix(f.key, prefix+"_"))
		switch x := f.v.Interface().(type) {
		case time.Duration:
			out = append(out, slog.String(name, x.String()))
		case slog.Level:
			out = append(out, slog.String(name, strings.ToLower(x.String())))
		case Port:
			out = append(out, slog.Int(name, int(x)))
		case bool:
			out = append(out, slog.Bool(name, x))
		default:
			out = append(out, slog.String(name, f.v.String()))
		}
	}
	return out
}

// usageFormat is envconfig's table with the rule for empty values, and the range of each
// duration from the same tags Load enforces.
const usageFormat = `Environment variables (an empty value counts as unset: the default applies):

VARIABLE	TYPE	DEFAULT	RANGE	MEANING
{{range .}}{{usage_key .}}	{{usage_type .}}	{{usage_default .}}	{{with .Tags.Get "min"}}{{.}}-{{end}}{{.Tags.Get "max"}}	{{usage_description .}}
{{end}}`

// Usage prints every variable of spec with its type, default, range and meaning.
func Usage(w io.Writer, prefix string, spec any) error {
	tw := tabwriter.NewWriter(w, 1, 0, 2, ' ', 0)
	if err := envconfig.Usagef(prefix, spec, tw, usageFormat); err != nil {
		return err
	}
	return tw.Flush()
}
