package ansible

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

func TestRunnerTag(t *testing.T) {
	df := []byte("FROM x\n")
	a := RunnerTag(df, map[string]string{"ANSIBLE_VERSION": "7.7.*", "YAMLLINT_VERSION": "1.29.*"})
	if !regexp.MustCompile(`^clock-ansible:[0-9a-f]{12}$`).MatchString(a) {
		t.Fatalf("RunnerTag = %q, want clock-ansible:<12 hex>", a)
	}
	if b := RunnerTag(df, map[string]string{"YAMLLINT_VERSION": "1.29.*", "ANSIBLE_VERSION": "7.7.*"}); b != a {
		t.Errorf("tag depends on map order: %q != %q", b, a)
	}
	if b := RunnerTag(df, map[string]string{"ANSIBLE_VERSION": "7.7.*", "YAMLLINT_VERSION": "1.29.*",
		"BASE_IMAGE": "clock-base:bookworm"}); b != a {
		t.Errorf("tag depends on BASE_IMAGE: %q != %q", b, a)
	}
	if b := RunnerTag(df, map[string]string{"ANSIBLE_VERSION": "7.8.*", "YAMLLINT_VERSION": "1.29.*"}); b == a {
		t.Errorf("tag ignores a changed build arg: %q", b)
	}
	if b := RunnerTag([]byte("FROM y\n"), nil); b == a || b == RunnerTag(df, nil) {
		t.Errorf("tag ignores the Dockerfile: %q", b)
	}
}

// TestEnsureRunnerImageLive builds (or finds) the real runner image and lints the project in
// it. It needs Docker and, without a registry, mmdebstrap: set CLOCK_ANSIBLE_LIVE=1.
func TestEnsureRunnerImageLive(t *testing.T) {
	if os.Getenv("CLOCK_ANSIBLE_LIVE") == "" {
		t.Skip("set CLOCK_ANSIBLE_LIVE=1 to build the runner image with Docker")
	}
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
