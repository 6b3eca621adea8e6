// Package fsx holds the one file-system helper the tooling packages share.
package fsx

import (
	"os"
	"path/filepath"
	"strings"
	"time"
)

// WriteFileAtomic writes data to a temp file next to path, with mode, and renames it into
// place: a reader sees the old file or the new one, never half of one.
// Temp files of earlier writes to path that a killed process left are removed first.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	removeStaleTemps(path, time.Now())
	tmp, err := os.CreateTemp(filepath.Dir(path), tempPattern(path))
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

func tempPattern(path string) string { return "." + filepath.Base(path) + ".tmp-*" }

// staleAfter is the age from which a temp file is a dead writer's, not a slow one's: a
// write takes milliseconds.
const staleAfter = time.Minute

// removeStaleTemps removes path's temp files older than staleAfter. Failing to is only
// litter, so errors are ignored.
func removeStaleTemps(path string, now time.Time) {
	entries, _ := os.ReadDir(filepath.Dir(path))
	prefix := strings.TrimSuffix(tempPattern(path), "*")
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		if info, err := e.Info(); err == nil && now.Sub(info.ModTime()) > staleAfter {
			os.Remove(filepath.Join(filepath.Dir(path), e.Name()))
		}
	}
}
