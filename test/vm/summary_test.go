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
	failed []string
}

// summarized wraps t; the summary is its last cleanup, so register it before any other.
func summarized(t *testing.T) *vmT {
	v := &vmT{T: t}
	t.Cleanup(func() {
		v.mu.Lock()
		defer v.mu.Unlock()
		if len(v.failed) > 0 {
			t.Logf("%s: %d failure(s), in order:\n  - %s", t.Name(), len(v.failed), strings.Join(v.failed, "\n  - "))
		}
	})
	return v
}

func (v *vmT) keep(msg string) {
	v.mu.Lock()
	defer v.mu.Unlock()
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
