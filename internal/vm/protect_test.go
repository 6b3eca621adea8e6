package vm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReachableByQEMU(t *testing.T) {
	base := t.TempDir()
	for _, dir := range []string{filepath.Dir(base), base} { // t.TempDir makes them 0700
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	stateDir := filepath.Join(base, "repo", ".state")
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(stateDir, "ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(stateDir, 0o700); err != nil { // as MkdirAll leaves it under a strict umask
		t.Fatal(err)
	}
	const uri = "qemu:///system"
	if err := ReachableByQEMU(uri, stateDir); err != nil {
		t.Fatalf("ReachableByQEMU = %v, want the folders opened up", err)
	}
	for _, dir := range []string{stateDir, filepath.Join(stateDir, "vm")} {
		if st, _ := os.Stat(dir); st.Mode().Perm() != 0o755 {
			t.Errorf("%s is %04o, want 0755", dir, st.Mode().Perm())
		}
	}
	if st, _ := os.Stat(filepath.Join(stateDir, "ssh")); st.Mode().Perm() != 0o700 {
		t.Errorf("ssh/ is %04o, want it kept 0700", st.Mode().Perm())
	}

	private := filepath.Dir(stateDir)
	if err := os.Chmod(private, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(private, 0o755) })
	err := ReachableByQEMU(uri, stateDir)
	if err == nil || !strings.Contains(err.Error(), "chmod o+x "+private) {
		t.Errorf("ReachableByQEMU under a private folder = %v, want the chmod fix named", err)
	}
}
