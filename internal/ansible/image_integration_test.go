//go:build integration

package ansible

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"
)

// TestEnsureRunnerImageLive builds (or finds) the real runner image and lints the project in
// it. It needs Docker and, without a registry, mmdebstrap: the integration tier.
func TestEnsureRunnerImageLive(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	project := filepath.Join("..", "..", "deploy", "ansible")
	var prog bytes.Buffer
	tag, err := EnsureRunnerImage(ctx, ImageOptions{
		Dockerfile: filepath.Join(project, "Dockerfile"),
		Progress:   &prog,
		Output:     testWriter{t},
	})
	t.Logf("progress:\n%s", prog.String())
	if err != nil {
		t.Fatalf("EnsureRunnerImage: %v", err)
	}
	var lint bytes.Buffer
	if err := Lint(ctx, tag, project, &lint); err != nil {
		t.Fatalf("Lint: %v\n%s", err, lint.String())
	}
	t.Logf("lint:\n%s", lint.String())
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}
