//go:build vmtest

package vm_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// vmT is a *testing.T that also keeps each failure and repeats them all when the test ends,
// after the serial console's tail: CI shows only the end of a run's output, and a VM test's
// failures are otherwise hundreds of lines above it.
type vmT struct {
	*testing.T
	mu     sync.Mutex
	step   string // the step under way (Step), in front of each kept failure
	failed []string
}

// summarized wraps t; the summary is its last cleanup, so register it before any other.
func summarized(t *testing.T) *vmT {
	v := &vmT{T: t}
	t.Cleanup(func() {
		v.mu.Lock()
		defer v.mu.Unlock()
		if len(v.failed) > 0 {
			lines := make([]string, len(v.failed))
			for i, f := range v.failed {
				lines[i] = oneLine(f)
			}
			// The first failure is usually the cause of the others, and the one a short tail
			// must not lose: it comes again last.
			t.Logf("%s: %d failure(s), in order:\n  - %s\nfirst failure: %s", t.Name(), len(v.failed), strings.Join(lines, "\n  - "), lines[0])
		}
	})
	return v
}

// Step names the part of the test that follows, in the output and in front of each of its
// failures in the summary.
func (v *vmT) Step(name string) {
	v.T.Helper()
	v.mu.Lock()
	v.step = name
	v.mu.Unlock()
	v.T.Logf("--- step: %s", name)
}

func (v *vmT) keep(msg string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.step != "" {
		msg = "[" + v.step + "] " + msg
	}
	v.failed = append(v.failed, msg)
}

func (v *vmT) Errorf(format string, args ...any) {
	v.T.Helper()
	msg := fmt.Sprintf(format, args...)
	v.keep(msg)
	v.T.Error(msg)
}

func (v *vmT) Fatalf(format string, args ...any) {
	v.T.Helper()
	msg := fmt.Sprintf(format, args...)
	v.keep(msg)
	v.T.Fatal(msg)
}

func (v *vmT) Fatal(args ...any) {
	v.T.Helper()
	msg := fmt.Sprint(args...)
	v.keep(msg)
	v.T.Fatal(msg)
}

// oneLine folds a failure onto one line of at most 400 bytes, so that the summary of many
// failures still fits in the tail CI keeps.
func oneLine(msg string) string {
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) > 400 {
		msg = msg[:400] + "..."
	}
	return msg
}
