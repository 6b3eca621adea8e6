package main

import (
	"errors"
	"testing"
)

// TestLockDir: a second clockctl on the host is refused at once with errBusy, which main
// turns into release.ExitBusy for the deploying machine to wait on; the lock frees on unlock.
func TestLockDir(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockDir(dir); !errors.Is(err, errBusy) {
		t.Fatalf("second lockDir = %v, want errBusy", err)
	}
	unlock()
	again, err := lockDir(dir)
	if err != nil {
		t.Fatalf("lockDir after unlock = %v", err)
	}
	again()
}
