package gotool

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestModulesReadsGoWork(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "go.work"), "go 1.26\n\nuse (\n\t.\n\t./services/a\n\t./test/e2e\n)\n")
	got, err := Modules(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{".", "services/a", "test/e2e"}; !slices.Equal(got, want) {
		t.Errorf("Modules = %q, want %q", got, want)
	}
}

func TestUnformatted(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "ok.go"), "package x\n")
	write(t, filepath.Join(root, "bad.go"), "package x\nfunc  f( ) {}\n")
	got, err := Unformatted(context.Background(), root, ".")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"bad.go"}; !slices.Equal(got, want) {
		t.Errorf("Unformatted = %q, want %q", got, want)
	}
}

func write(t testing.TB, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
