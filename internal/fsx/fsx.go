// Package fsx holds the one file-system helper the tooling packages share.
package fsx

import (
	"os"
	"path/filepath"
)

// WriteFileAtomic writes data to a temp file next to path, with mode, and renames it into
// place: a reader sees the old file or the new one, never half of one.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	// Chmod, not the create mode, so the umask cannot widen or narrow it.
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
