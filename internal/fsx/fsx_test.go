package fsx

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "known_hosts")
	for _, tt := range []struct {
		data string
		mode os.FileMode
	}{{"one\n", 0o600}, {"two\n", 0o644}} {
		if err := WriteFileAtomic(path, []byte(tt.data), tt.mode); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(path)
		if string(got) != tt.data || st.Mode().Perm() != tt.mode {
			t.Errorf("file = %q mode %v, want %q mode %v", got, st.Mode().Perm(), tt.data, tt.mode)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("folder holds %d entries, want only the file (no temp files left)", len(entries))
	}
}
