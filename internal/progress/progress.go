// Package progress prints what a long step is doing, with the elapsed time, and a one-line
// result at the end, so that a user watching `mage deploy` always knows where it is.
package progress

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Func receives the progress lines of a long piece of work, formatted as by fmt.Printf:
// the one type every package takes them as (Step.Printf and Step.Logf are two). Printf on a
// nil Func discards the line.
type Func func(format string, args ...any)

// Printf passes a line to f, if there is an f.
func (f Func) Printf(format string, args ...any) {
	if f != nil {
		f(format, args...)
	}
}

// Step is one long piece of work, started by Start.
type Step struct {
	w     io.Writer
	name  string
	start time.Time
	mu    sync.Mutex
}

// Start prints the step's name and returns it; call Done or Fail when it ends.
func Start(w io.Writer, name string) *Step {
	s := &Step{w: w, name: name, start: time.Now()}
	fmt.Fprintf(w, "==> %s\n", name)
	return s
}

// Elapsed is the time since Start, rounded for people.
func (s *Step) Elapsed() time.Duration { return Round(time.Since(s.start)) }

// Printf prints a progress line of the step with the elapsed time in front.
func (s *Step) Printf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.w, "    [%6s] %s\n", s.Elapsed(), fmt.Sprintf(format, args...))
}

// Logf prints a line of the step as it is, for packages that put their own elapsed time in
// front of their lines.
func (s *Step) Logf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.w, "    %s\n", fmt.Sprintf(format, args...))
}

// Done prints the step's one-line result.
func (s *Step) Done(format string, args ...any) {
	fmt.Fprintf(s.w, "<== %s: %s (%s)\n", s.name, fmt.Sprintf(format, args...), s.Elapsed())
}

// Fail prints that the step failed and returns err wrapped with the step's name.
func (s *Step) Fail(err error) error {
	fmt.Fprintf(s.w, "<== %s: FAILED after %s\n", s.name, s.Elapsed())
	return fmt.Errorf("%s: %w", s.name, err)
}

// Round keeps durations readable: tenths of a second under a minute, whole seconds above.
func Round(d time.Duration) time.Duration {
	if d < time.Minute {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}
