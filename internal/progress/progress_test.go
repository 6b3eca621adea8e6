package progress

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestStepLines(t *testing.T) {
	var b bytes.Buffer
	s := Start(&b, "build images")
	s.Printf("clock-api %d MB", 6)
	s.Done("2 images")
	out := b.String()
	for _, want := range []string{"==> build images\n", "] clock-api 6 MB\n", "<== build images: 2 images ("} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q does not contain %q", out, want)
		}
	}
}

func TestFailWrapsError(t *testing.T) {
	var b bytes.Buffer
	base := errors.New("boom")
	err := Start(&b, "vm:up").Fail(base)
	if !errors.Is(err, base) || !strings.HasPrefix(err.Error(), "vm:up: ") {
		t.Errorf("Fail = %v, want it to wrap %v with the step name", err, base)
	}
	if !strings.Contains(b.String(), "FAILED") {
		t.Errorf("output %q does not say FAILED", b.String())
	}
}

func TestRound(t *testing.T) {
	tests := []struct{ in, want time.Duration }{
		{1234 * time.Millisecond, 1200 * time.Millisecond},
		{61*time.Second + 700*time.Millisecond, 62 * time.Second},
	}
	for _, tt := range tests {
		if got := Round(tt.in); got != tt.want {
			t.Errorf("Round(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
