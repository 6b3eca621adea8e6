package main

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestAppendSeconds(t *testing.T) {
	tests := []struct {
		name string
		in   float64
		want string
	}{
		// Expected strings are what CPython 3 prints for the same float,
		// except that the service never uses an exponent where Python
		// would (1e+16, 1e-07): no Unix time is that far out.
		{"python example", 1622556914.9101567, "1622556914.9101567"},
		{"zero fraction", 1622556914, "1622556914.0"},
		{"epoch", 0, "0.0"},
		{"half", 1622556914.5, "1622556914.5"},
		{"microseconds", 1700000000.000001, "1700000000.000001"},
		{"sub-microsecond, rounds to nearest float", 1700000000.0000001, "1700000000.0"},
		{"shortest round trip", 1700000000.1, "1700000000.1"},
		{"near 2038", 2147483647.9999998, "2147483647.9999998"},
		{"far future, no exponent", 1e16, "10000000000000000.0"},
		{"small, no exponent", 0.0001, "0.0001"},
		{"tiny, no exponent", 1e-7, "0.0000001"},
		{"negative", -1.5, "-1.5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(appendSeconds(nil, tt.in))
			if got != tt.want {
				t.Errorf("appendSeconds(%v) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestAppendUnix(t *testing.T) {
	tests := []struct {
		name string
		in   time.Time
		want string
	}{
		{"whole second", time.Unix(1622556914, 0), "1622556914.0"},
		{"python example", time.Unix(1622556914, 910156700), "1622556914.9101567"},
		// float64 has ~0.24µs resolution here: nanoseconds round like
		// Python's float(ns) / 1e9 does.
		{"one nanosecond", time.Unix(1622556914, 1), "1622556914.0"},
		{"sub-microsecond", time.Unix(1622556914, 123456789), "1622556914.1234567"},
		{"last nanosecond", time.Unix(1622556914, 999999999), "1622556915.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(appendUnix(nil, tt.in))
			if got != tt.want {
				t.Errorf("appendUnix(%v) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestAppendUnixNearNow(t *testing.T) {
	now := time.Now()
	for i := range 1000 {
		tm := now.Add(time.Duration(i) * 7919 * time.Microsecond)
		got := string(appendUnix(nil, tm))
		checkSeconds(t, got)
		f, _ := strconv.ParseFloat(got, 64)
		if want := float64(tm.UnixNano()) / 1e9; f != want {
			t.Fatalf("appendUnix(%v) = %q, parses to %v, want %v", tm, got, f, want)
		}
		if d := math.Abs(f - float64(tm.Unix())); d >= 1 {
			t.Fatalf("appendUnix(%v) = %q, %v s away from the whole seconds", tm, got, d)
		}
	}
}

// checkSeconds fails unless s looks like Python's float print: a '.', no
// exponent.
func checkSeconds(tb testing.TB, s string) {
	tb.Helper()
	if !strings.Contains(s, ".") {
		tb.Errorf("%q has no '.'", s)
	}
	if strings.ContainsAny(s, "eE") {
		tb.Errorf("%q has an exponent", s)
	}
}

func FuzzFormatUnix(f *testing.F) {
	for _, v := range []float64{0, 1, 1622556914.9101567, 1622556914, 1e-7, 5e-324, math.MaxFloat64, -2.5, 1e21} {
		f.Add(v)
	}
	f.Add(float64(time.Now().UnixNano()) / 1e9)
	f.Fuzz(func(t *testing.T, v float64) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Skip("time is always finite")
		}
		got := string(appendSeconds(nil, v))
		checkSeconds(t, got)
		back, err := strconv.ParseFloat(got, 64)
		if err != nil {
			t.Fatalf("ParseFloat(%q): %v", got, err)
		}
		if back != v {
			t.Fatalf("%v formatted as %q parses back to %v", v, got, back)
		}
	})
}
