package images

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestDescribeOutsideGit(t *testing.T) {
	m := Describe(context.Background(), t.TempDir())
	if m.Version != "dev" || m.Revision != "unknown" || m.Created == "" {
		t.Errorf("Describe outside git = %+v, want dev/unknown and a fixed time", m)
	}
}

func TestDescribeInGit(t *testing.T) {
	dir := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q")
	writeFile(t, filepath.Join(dir, "a"), "a")
	git("add", "a")
	git("commit", "-q", "-m", "a")
	git("tag", "v1.2.3")
	if m := Describe(context.Background(), dir); m.Version != "v1.2.3" || len(m.Revision) != 40 {
		t.Errorf("Describe at a tag = %+v, want v1.2.3 and a full hash", m)
	}
	writeFile(t, filepath.Join(dir, "a"), "b")
	if m := Describe(context.Background(), dir); m.Version != "v1.2.3-dirty" {
		t.Errorf("Describe with a change = %q, want v1.2.3-dirty", m.Version)
	}
}

func TestRefAndBinary(t *testing.T) {
	s := API
	if got, want := s.Ref("v1"), "clock-api:v1"; got != want {
		t.Errorf("Ref = %q, want %q", got, want)
	}
	if got, want := s.Binary(), "services/clock-api/dist/clock-api"; got != want {
		t.Errorf("Binary = %q, want %q", got, want)
	}
}

// TestSaveKeepsUnchangedArchive builds a tiny image with the real Docker engine and checks
// that a second Save leaves the archive alone, and that a new image replaces it.
func TestSaveKeepsUnchangedArchive(t *testing.T) {
	if exec.Command("docker", "version", "--format", "{{.Server.Version}}").Run() != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("no Docker engine under CI: run go run mage.go setup")
		}
		t.Skip("no Docker engine: run go run mage.go setup")
	}
	ctx := context.Background()
	ctxDir := t.TempDir()
	s := Service{Name: "clock-images-test", Dir: ctxDir}
	build := func(content string) {
		t.Helper()
		writeFile(t, filepath.Join(ctxDir, "f"), content)
		writeFile(t, filepath.Join(ctxDir, "Dockerfile"), "FROM scratch\nCOPY f /f\n")
		cmd := exec.Command("docker", "build", "-q", "-t", s.Ref("t"), ctxDir)
		cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("docker build: %v\n%s", err, out)
		}
	}
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", s.Ref("t")).Run() })

	build("one")
	dir := t.TempDir()
	path, changed, err := Save(ctx, s, "t", dir)
	if err != nil || !changed {
		t.Fatalf("first Save = %v, changed %v; want a new archive", err, changed)
	}
	sum := fileSum(t, path)
	if _, changed, err := Save(ctx, s, "t", dir); err != nil || changed {
		t.Fatalf("second Save = %v, changed %v; want the archive kept", err, changed)
	}
	if fileSum(t, path) != sum {
		t.Error("the archive changed although the image did not")
	}
	build("two")
	if _, changed, err := Save(ctx, s, "t", dir); err != nil || !changed {
		t.Fatalf("Save of a new image = %v, changed %v; want a new archive", err, changed)
	}
	if _, _, err := Save(ctx, s, "missing", dir); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("Save of a missing image = %v, want a not-found error", err)
	}
}

func writeFile(t testing.TB, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func fileSum(t testing.TB, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(bytes.Clone(b))
}
