package fsx

import (
	"os"
	"path/filepath"
	"testing"
	"time"
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

func TestWriteFileAtomicSweepsStaleTemps(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "known_hosts")
	stale := filepath.Join(dir, ".known_hosts.tmp-123")
	fresh := filepath.Join(dir, ".known_hosts.tmp-456") // another writer, right now
	other := filepath.Join(dir, ".id_ed25519.tmp-789")
	for _, p := range []string{stale, fresh, other} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour)
	os.Chtimes(stale, old, old)
	os.Chtimes(other, old, old)
	if err := WriteFileAtomic(path, []byte("k\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the stale temp file of a killed write survived: %v", err)
	}
	for _, kept := range []string{fresh, other} {
		if _, err := os.Stat(kept); err != nil {
			t.Errorf("%s was removed: %v", kept, err)
		}
	}
}
