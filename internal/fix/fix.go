// Package fix carries the mage target that fixes an error from the package that knows the
// cause up to the magefile, and spells a target the one way a user types it: the leaf
// packages name the target, Explain and Command say how to run it.
package fix

import (
	"errors"
	"fmt"
	"strings"
)

// Error is an error that running a mage target fixes.
type Error struct {
	Err error
	// Target is the mage target that fixes Err, with any variables it needs in front:
	// "vm:image", "vm:destroy vm:up", "CLOCK_CONVERGE=full deploy".
	Target string
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// By returns err as fixed by running target.
func By(target string, err error) error { return &Error{Err: err, Target: target} }

// Target is the target that fixes err, from the innermost Error that names one; "" when
// none does.
func Target(err error) string {
	var f *Error
	if errors.As(err, &f) {
		return f.Target
	}
	return ""
}

// Explain returns err with the command that fixes it on a line of its own, when a package
// named one; the magefile calls it on every target's error.
func Explain(err error) error {
	if t := Target(err); t != "" {
		return fmt.Errorf("%w\n  to fix: %s", err, Command(t))
	}
	return err
}

// Command spells target as the user runs it from the repository: variables first, then
// go run mage.go and the target names ("CLOCK_CONVERGE=full go run mage.go deploy").
func Command(target string) string {
	fields := strings.Fields(target)
	var env []string
	for len(fields) > 0 && strings.Contains(fields[0], "=") {
		env, fields = append(env, fields[0]), fields[1:]
	}
	return strings.Join(append(env, append([]string{"go", "run", "mage.go"}, fields...)...), " ")
}
