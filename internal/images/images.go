// Package images builds the services' static binaries and their FROM-scratch images, tags
// them with the version, and saves them as archives for the VM. Builds are reproducible: the
// same source gives the same binary and so, through Docker's build cache, the same image ID,
// which is what lets a second deploy change nothing.
package images

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/clock-app/clock/internal/fix"
	"github.com/clock-app/clock/internal/progress"
)

// Service is one of the repo's services: its name is also its image name and binary name.
type Service struct {
	Name string
	Dir  string // relative to the repo root
}

// The two services, by name: code that needs one of them says which.
var (
	API = Service{Name: "clock-api", Dir: "services/clock-api"}
	Web = Service{Name: "clock-web", Dir: "services/clock-web"}
)

// Services are the images that make up the clock.
var Services = []Service{API, Web}

// Meta is what gets stamped into binaries and image labels.
type Meta struct {
	Version  string // tag and -X main.version
	Revision string // full commit hash, or "unknown"
	Created  string // RFC 3339 commit time: a fixed value keeps rebuilds identical
}

// Ref is the image reference of svc at version.
func (s Service) Ref(version string) string { return s.Name + ":" + version }

// Archive is the name of the service's docker save archive in the state folder's images.
func (s Service) Archive() string { return s.Name + ".tar" }

// Binary is where the service's static binary is built, relative to the repo root.
func (s Service) Binary() string { return filepath.Join(s.Dir, "dist", s.Name) }

// Describe reads the version, revision and commit time from git in root. Outside git, or in
// a repo with no commit yet, it falls back to "dev".
func Describe(ctx context.Context, root string) Meta {
	git := func(args ...string) string {
		out, err := exec.CommandContext(ctx, "git", append([]string{"-C", root}, args...)...).Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(out))
	}
	m := Meta{
		Version:  git("describe", "--tags", "--always", "--dirty"),
		Revision: git("rev-parse", "HEAD"),
		Created:  git("log", "-1", "--format=%cI"),
	}
	if m.Version == "" {
		m.Version = "dev"
	}
	if m.Revision == "" {
		m.Revision = "unknown"
	}
	if m.Created == "" {
		m.Created = "1970-01-01T00:00:00Z"
	}
	return m
}

// BuildBinary compiles the service statically into its dist folder and returns the path.
func BuildBinary(ctx context.Context, root string, s Service, m Meta) (string, error) {
	out := filepath.Join(root, s.Binary())
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath",
		"-ldflags", "-s -w -X main.version="+m.Version,
		"-o", out, ".")
	cmd.Dir = filepath.Join(root, s.Dir)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", s.Name, err, b)
	}
	return out, nil
}

// BuildArgs are the docker build arguments for the labels.
func BuildArgs(m Meta) []string {
	return []string{
		"--build-arg", "VERSION=" + m.Version,
		"--build-arg", "REVISION=" + m.Revision,
		"--build-arg", "CREATED=" + m.Created,
	}
}

// BuildImage builds the service's image from its Dockerfile (the binary must be built) and
// tags it with the version and latest. It returns the image ID.
func BuildImage(ctx context.Context, root string, s Service, m Meta) (string, error) {
	if _, err := os.Stat(filepath.Join(root, s.Binary())); err != nil {
		return "", fix.By("build", fmt.Errorf("%s has no binary at %s: build it first", s.Name, s.Binary()))
	}
	args := append([]string{"build", "-q", "-t", s.Ref(m.Version), "-t", s.Ref("latest")}, BuildArgs(m)...)
	args = append(args, filepath.Join(root, s.Dir))
	cmd := exec.CommandContext(ctx, "docker", args...)
	// The legacy builder is what Debian's docker.io 20.10 has; say so, so that newer clients
	// do not ask for a buildx plugin that may not be installed.
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("docker build %s: %v\n%s", s.Name, err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

// ImageID returns the ID of ref, or "" when it does not exist.
func ImageID(ctx context.Context, ref string) string {
	out, err := exec.CommandContext(ctx, "docker", "image", "inspect", "--format", "{{.Id}}", ref).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// Size returns the size of ref in bytes.
func Size(ctx context.Context, ref string) (int64, error) {
	out, err := exec.CommandContext(ctx, "docker", "image", "inspect", "--format", "{{.Size}}", ref).Output()
	if err != nil {
		return 0, fmt.Errorf("docker image inspect %s: %w", ref, err)
	}
	return strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
}

// Save writes `docker save ref` to dir/<name>.tar unless the archive there already holds the
// same image ID, so that an unchanged image keeps a byte-identical archive. It reports
// whether it wrote a new archive.
func Save(ctx context.Context, s Service, version, dir string) (path string, changed bool, err error) {
	ref := s.Ref(version)
	id := ImageID(ctx, ref)
	if id == "" {
		return "", false, fix.By("images", fmt.Errorf("image %s not found: build it first", ref))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", false, err
	}
	path = filepath.Join(dir, s.Archive())
	stamp := path + ".id"
	if old, err := os.ReadFile(stamp); err == nil && string(old) == id+" "+ref {
		if _, err := os.Stat(path); err == nil {
			return path, false, nil
		}
	}
	tmp, err := os.CreateTemp(dir, s.Name+".tar.*")
	if err != nil {
		return "", false, err
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	cmd := exec.CommandContext(ctx, "docker", "save", ref)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = tmp, &stderr
	runErr := cmd.Run()
	if err := errors.Join(runErr, tmp.Close()); err != nil {
		return "", false, fmt.Errorf("docker save %s: %v %s", ref, err, stderr.String())
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return "", false, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", false, err
	}
	return path, true, os.WriteFile(stamp, []byte(id+" "+ref), 0o644)
}

// MaxSize is the most an image may weigh: they are FROM scratch, so more means something
// unexpected got in.
const MaxSize = 15 << 20

// BuildAll builds every service's binary and image, with a progress line per image and its
// size, and fails when an image is over MaxSize.
func BuildAll(ctx context.Context, out io.Writer, root string, m Meta) error {
	step := progress.Start(out, "images: build "+m.Version)
	var sizes []string
	for _, s := range Services {
		if _, err := BuildBinary(ctx, root, s, m); err != nil {
			return step.Fail(err)
		}
		if _, err := BuildImage(ctx, root, s, m); err != nil {
			return step.Fail(err)
		}
		size, err := Size(ctx, s.Ref(m.Version))
		if err != nil {
			return step.Fail(err)
		}
		step.Printf("%s %.1f MB", s.Ref(m.Version), float64(size)/1e6)
		if size > MaxSize {
			return step.Fail(fmt.Errorf("%s is %d bytes, over the %d limit", s.Ref(m.Version), size, MaxSize))
		}
		sizes = append(sizes, fmt.Sprintf("%s %.1f MB", s.Name, float64(size)/1e6))
	}
	step.Done("%s", strings.Join(sizes, ", "))
	return nil
}

// BuildBinaries builds every service's static binary.
func BuildBinaries(ctx context.Context, out io.Writer, root string, m Meta) error {
	step := progress.Start(out, "build: static binaries "+m.Version)
	for _, s := range Services {
		if _, err := BuildBinary(ctx, root, s, m); err != nil {
			return step.Fail(err)
		}
	}
	step.Done("%d binaries in services/*/dist", len(Services))
	return nil
}

var imageIDRe = regexp.MustCompile(`^(?:blobs/sha256/)?([0-9a-f]{64})(?:\.json)?$`)

// ArchiveImageID returns the ID ("sha256:<hex>") of the single image in a `docker save`
// archive: the digest of its config, named by manifest.json's Config, which is `<hex>.json`
// in Docker's classic layout and `blobs/sha256/<hex>` in the OCI layout of Docker 25 and
// later. `docker image inspect --format {{.Id}}` gives the same ID once the archive is loaded.
func ArchiveImageID(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("image archive: %w", err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return "", fmt.Errorf("image archive %s has no manifest.json: write it with docker save (%s does)", path, fix.Command("deploy"))
		}
		if err != nil {
			return "", fmt.Errorf("image archive %s: %w (remove it and deploy again to rewrite it)", path, err)
		}
		if h.Name != "manifest.json" {
			continue
		}
		var manifest []struct{ Config string }
		if err := json.NewDecoder(io.LimitReader(tr, 1<<20)).Decode(&manifest); err != nil {
			return "", fmt.Errorf("image archive %s: manifest.json: %w", path, err)
		}
		if len(manifest) != 1 {
			return "", fmt.Errorf("image archive %s holds %d images, want 1", path, len(manifest))
		}
		m := imageIDRe.FindStringSubmatch(manifest[0].Config)
		if m == nil {
			return "", fmt.Errorf("image archive %s: manifest.json Config %q is not a sha256 config name", path, manifest[0].Config)
		}
		return "sha256:" + m[1], nil
	}
}
