package fix

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"
)

func TestCommand(t *testing.T) {
	for target, want := range map[string]string{
		"vm:image":                   "go run mage.go vm:image",
		"vm:destroy vm:up":           "go run mage.go vm:destroy vm:up",
		"CLOCK_CONVERGE=full deploy": "CLOCK_CONVERGE=full go run mage.go deploy",
	} {
		if got := Command(target); got != want {
			t.Errorf("Command(%q) = %q, want %q", target, got, want)
		}
	}
}

func TestExplainFindsTheTargetThroughWrapping(t *testing.T) {
	cause := fmt.Errorf("base image x.img: %w", fs.ErrNotExist)
	err := fmt.Errorf("vm:up: %w", By("vm:image", cause))
	got := Explain(err)
	if want := "vm:up: base image x.img: file does not exist\n  to fix: go run mage.go vm:image"; got.Error() != want {
		t.Errorf("Explain = %q, want %q", got, want)
	}
	if !errors.Is(got, fs.ErrNotExist) || Target(got) != "vm:image" {
		t.Errorf("Explain lost the cause or the target: %v, %q", errors.Is(got, fs.ErrNotExist), Target(got))
	}
	plain := errors.New("no target fixes this")
	if Explain(plain) != plain || Target(plain) != "" {
		t.Errorf("Explain of an error without a target changed it: %v", Explain(plain))
	}
}
