// Package e2e tests the clock-api and clock-web images black-box: it builds
// both images from their Dockerfiles once, runs them on one Docker network
// the way they run in production, and talks to them only over HTTP, the
// Docker API and a headless browser.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
)

// Image tags built once per test binary: every test runs the same image without rebuilding
// it, apart from the release tags. The process ID keeps two runs on one Docker engine (two
// checkouts, or a `go test -list` next to a real run) from removing each other's images.
var (
	runTag   = fmt.Sprintf("e2e-%d", os.Getpid())
	apiImage = "clock-api:" + runTag
	webImage = "clock-web:" + runTag
)

// services are the service folders under services/, each with
// dist/<svc> (built by mage) and a Dockerfile whose context is the folder.
var services = []string{"clock-api", "clock-web"}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if err := setup(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	code := m.Run()
	removeImages()
	return code
}

// setup checks the prerequisites and builds the images.
func setup() error {
	defaultTestcontainersEnv()

	root, err := repoRoot()
	if err != nil {
		return err
	}
	for _, svc := range services {
		bin := filepath.Join(root, "services", svc, "dist", svc)
		if _, err := os.Stat(bin); err != nil {
			return fmt.Errorf("%s is missing: build the binaries first: go run mage.go build", bin)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	provider, err := testcontainers.NewDockerProvider()
	if err != nil {
		return fmt.Errorf("docker: %w", err)
	}
	defer provider.Close()

	for _, svc := range services {
		start := time.Now()
		if err := buildImage(ctx, provider, filepath.Join(root, "services", svc), svc); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "e2e: built %s:e2e in %v\n", svc, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// defaultTestcontainersEnv sets the two testcontainers settings this suite
// needs when the caller (mage test:e2e) did not: Ryuk cannot be pulled without
// a registry, and every container here is cleaned up by the tests themselves;
// inside a container (/.dockerenv) testcontainers would otherwise dial the
// bridge gateway instead of the local daemon's published ports.
func defaultTestcontainersEnv() {
	if _, ok := os.LookupEnv("TESTCONTAINERS_RYUK_DISABLED"); !ok {
		os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	}
	host := os.Getenv("DOCKER_HOST")
	local := host == "" || strings.HasPrefix(host, "unix://")
	if _, ok := os.LookupEnv("TESTCONTAINERS_HOST_OVERRIDE"); !ok && local {
		os.Setenv("TESTCONTAINERS_HOST_OVERRIDE", "localhost")
	}
}

// repoRoot is the monorepo root: go test runs in test/e2e.
func repoRoot() (string, error) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(root, "services")); err != nil {
		return "", fmt.Errorf("repository root not found from the test folder (%s): %w", root, err)
	}
	return root, nil
}

func buildImage(ctx context.Context, provider *testcontainers.DockerProvider, dir, svc string) error {
	version := runTag
	var buildLog bytes.Buffer
	req := &testcontainers.ContainerRequest{
		FromDockerfile: testcontainers.FromDockerfile{
			Context:        dir,
			Dockerfile:     "Dockerfile",
			Repo:           svc,
			Tag:            runTag,
			BuildArgs:      map[string]*string{"VERSION": &version},
			BuildLogWriter: &buildLog,
			KeepImage:      true,
		},
	}
	if _, err := provider.BuildImage(ctx, req); err != nil {
		return fmt.Errorf("build %s:%s from %s: %w\n%s", svc, runTag, dir, err, buildLog.String())
	}
	return nil
}

func removeImages() {
	if os.Getenv("CLOCK_E2E_KEEP_IMAGES") != "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	provider, err := testcontainers.NewDockerProvider()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: remove images: %v\n", err)
		return
	}
	defer provider.Close()
	for _, img := range []string{apiImage, webImage} {
		_, err := provider.Client().ImageRemove(ctx, img, client.ImageRemoveOptions{PruneChildren: true})
		if err != nil && !isNotFound(err) {
			fmt.Fprintf(os.Stderr, "e2e: remove image %s: %v\n", img, err)
		}
	}
}

func isNotFound(err error) bool {
	return cerrdefs.IsNotFound(err) || strings.Contains(err.Error(), "No such")
}

// readAll reads a log stream fully; used for container logs.
func readAll(rc io.ReadCloser) (string, error) {
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return string(b), err
}
