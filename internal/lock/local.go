package lock

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// Local is a held lock of this machine: an flock(2) on a file of the state folder.
//
// flock belongs to the open file description, and the kernel drops it when the last
// descriptor closes, so when the process dies (kill -9 included): a stale local lock cannot
// exist, and there is nothing to clear. Go opens files close-on-exec, so the processes a
// deploy starts (docker, ansible) do not inherit it.
type Local struct {
	f *os.File
}

// TakeLocal takes the lock at path for h, or fails at once with a *HeldError naming the
// holder; it never waits.
func TakeLocal(path string, h Holder) (*Local, error) {
	// The lock is the first thing a deploy from a fresh clone writes: its folder may not be
	// there yet. 0755, as the other state folders libvirt's qemu must traverse.
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("open the deploy lock: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open the deploy lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			b, _ := io.ReadAll(f)
			return nil, &HeldError{Where: "this machine (" + path + ")", Holder: holderOf(b)}
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// The record left by an earlier holder is overwritten: only a held lock's record counts.
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, fmt.Errorf("write the deploy lock %s: %w", path, err)
	}
	if _, err := f.WriteAt(h.Marshal(), 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("write the deploy lock %s: %w", path, err)
	}
	return &Local{f: f}, nil
}

// Release gives the lock up. The file stays: removing it would let a process that opened
// it just before take a lock on a file no one else can find.
func (l *Local) Release() error {
	return l.f.Close()
}
