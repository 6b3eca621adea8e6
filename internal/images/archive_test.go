package images

import (
	"archive/tar"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	classicID = "1111111111111111111111111111111111111111111111111111111111111111"
	ociID     = "2222222222222222222222222222222222222222222222222222222222222222"
	// manifest.json of `docker save` in Docker's classic layout (20.10) and in the OCI
	// layout of Docker 25 and later.
	manifestClassic = `[{"Config":"` + classicID + `.json","RepoTags":["clock-api:dev"],"Layers":["abc/layer.tar"]}]`
	manifestOCI     = `[{"Config":"blobs/sha256/` + ociID + `","RepoTags":["clock-web:dev"],"Layers":["blobs/sha256/abc"]}]`
)

// writeArchive writes a tar with a layer-like file first and manifest.json after it, in the
// order docker save writes them.
func writeArchive(t *testing.T, path, manifest string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for _, e := range []struct{ name, body string }{{"abc/layer.tar", "layer"}, {"manifest.json", manifest}} {
		if manifest == "" && e.name == "manifest.json" {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestArchiveImageID(t *testing.T) {
	tests := []struct {
		name, manifest, want, wantErr string
	}{
		{"classic layout", manifestClassic, "sha256:" + classicID, ""},
		{"OCI layout", manifestOCI, "sha256:" + ociID, ""},
		{"no manifest", "", "", "no manifest.json"},
		{"two images", `[{"Config":"` + classicID + `.json"},{"Config":"` + ociID + `.json"}]`, "", "holds 2 images"},
		{"config not a digest", `[{"Config":"../etc/passwd"}]`, "", "not a sha256 config name"},
		{"short digest", `[{"Config":"abc.json"}]`, "", "not a sha256 config name"},
		{"not JSON", `{`, "", "manifest.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "a.tar")
			writeArchive(t, path, tt.manifest, 0o644)
			got, err := ArchiveImageID(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ArchiveImageID = %q, %v; want an error with %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ArchiveImageID = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := ArchiveImageID(filepath.Join(t.TempDir(), "missing.tar")); err == nil {
		t.Error("ArchiveImageID of a missing file: want an error")
	}
}
