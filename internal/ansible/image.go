// Package ansible runs the deploy's Ansible project (deploy/ansible) inside a container: it
// builds the runner image, writes the inventory for a target into the state folder, runs
// site.yml / stop.yml with only an ssh-agent socket for credentials, and reads the PLAY RECAP.
package ansible

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"time"
)

const (
	// DefaultBaseImage is the runner's base where a registry is reachable.
	DefaultBaseImage = "debian:bookworm-slim"
	// DefaultLocalBase is the tag of the base built with mmdebstrap when DefaultBaseImage
	// cannot be pulled.
	DefaultLocalBase = "clock-base:bookworm"
	// ImageRepository is the repository of the runner image; the tag is a content hash.
	ImageRepository = "clock-ansible"
)

// ImageOptions says how to build the runner image. Only Dockerfile is required.
type ImageOptions struct {
	Dockerfile string            // deploy/ansible/Dockerfile; built without a context
	BuildArgs  map[string]string // overrides of the Dockerfile's version pins (BASE_IMAGE is chosen here)
	BaseImage  string            // default DefaultBaseImage
	LocalBase  string            // default DefaultLocalBase
	Suite      string            // Debian suite of the local base, default "bookworm"
	Progress   io.Writer         // one line per step with elapsed time; nil: discard
	Output     io.Writer         // docker build, pull and mmdebstrap output; nil: discard
	Docker     string            // docker binary, default "docker"
}

func (o *ImageOptions) defaults() {
	if o.BaseImage == "" {
		o.BaseImage = DefaultBaseImage
	}
	if o.LocalBase == "" {
		o.LocalBase = DefaultLocalBase
	}
	if o.Suite == "" {
		o.Suite = "bookworm"
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Output == nil {
		o.Output = io.Discard
	}
	if o.Docker == "" {
		o.Docker = "docker"
	}
}

// RunnerTag is the tag EnsureRunnerImage gives the image built from dockerfile and buildArgs:
// clock-ansible:<first 12 hex digits of their SHA-256>. The base image is not part of it:
// Docker Hub's slim Debian and the local mmdebstrap base give the same runner.
func RunnerTag(dockerfile []byte, buildArgs map[string]string) string {
	h := sha256.New()
	h.Write(dockerfile)
	keys := make([]string, 0, len(buildArgs))
	for k := range buildArgs {
		if k != "BASE_IMAGE" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(h, "\x00%s=%s", k, buildArgs[k])
	}
	return ImageRepository + ":" + hex.EncodeToString(h.Sum(nil))[:12]
}

// EnsureRunnerImage returns the tag of the runner image, building it when no image with that
// tag exists. The base is opt.BaseImage when present or pullable; otherwise a local Debian
// base (opt.LocalBase) made with `mmdebstrap --variant=minbase <suite> - | docker import`,
// itself built only when missing.
func EnsureRunnerImage(ctx context.Context, opt ImageOptions) (string, error) {
	opt.defaults()
	start := time.Now()
	dockerfile, err := os.ReadFile(opt.Dockerfile)
	if err != nil {
		return "", fmt.Errorf("runner image: %w", err)
	}
	tag := RunnerTag(dockerfile, opt.BuildArgs)
	if imageExists(ctx, opt.Docker, tag) {
		progress(opt.Progress, start, "runner image %s is present", tag)
		return tag, nil
	}

	base, err := ensureBase(ctx, opt, start)
	if err != nil {
		return "", err
	}

	progress(opt.Progress, start, "building runner image %s on %s", tag, base)
	args := []string{"build", "--tag", tag, "--label", "org.opencontainers.image.title=clock Ansible runner",
		"--build-arg", "BASE_IMAGE=" + base}
	keys := make([]string, 0, len(opt.BuildArgs))
	for k := range opt.BuildArgs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k != "BASE_IMAGE" {
			args = append(args, "--build-arg", k+"="+opt.BuildArgs[k])
		}
	}
	// "-" reads the Dockerfile from stdin with an empty build context: the image needs no file.
	args = append(args, "-")
	cmd := exec.CommandContext(ctx, opt.Docker, args...)
	cmd.Stdin = bytes.NewReader(dockerfile)
	cmd.Stdout, cmd.Stderr = opt.Output, opt.Output
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("runner image: docker build %s: %w", tag, err)
	}
	progress(opt.Progress, start, "runner image %s built", tag)
	return tag, nil
}

// ensureBase returns the base image to build on: opt.BaseImage when present or pullable,
// else the local mmdebstrap base.
func ensureBase(ctx context.Context, opt ImageOptions, start time.Time) (string, error) {
	if imageExists(ctx, opt.Docker, opt.BaseImage) {
		return opt.BaseImage, nil
	}
	progress(opt.Progress, start, "pulling %s", opt.BaseImage)
	// A registry that is unreachable can take long to time out; the local base is the answer.
	pullCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	pull := exec.CommandContext(pullCtx, opt.Docker, "pull", opt.BaseImage)
	pull.Stdout, pull.Stderr = opt.Output, opt.Output
	pullErr := pull.Run()
	if pullErr == nil {
		return opt.BaseImage, nil
	}
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	if imageExists(ctx, opt.Docker, opt.LocalBase) {
		progress(opt.Progress, start, "cannot pull %s (%v); using local base %s", opt.BaseImage, pullErr, opt.LocalBase)
		return opt.LocalBase, nil
	}
	progress(opt.Progress, start, "cannot pull %s (%v); building local base %s with mmdebstrap",
		opt.BaseImage, pullErr, opt.LocalBase)
	if err := buildLocalBase(ctx, opt); err != nil {
		return "", err
	}
	progress(opt.Progress, start, "local base %s built", opt.LocalBase)
	return opt.LocalBase, nil
}

// buildLocalBase runs `mmdebstrap --variant=minbase <suite> - | docker import - <tag>`.
func buildLocalBase(ctx context.Context, opt ImageOptions) error {
	mmdebstrap, err := exec.LookPath("mmdebstrap")
	if err != nil {
		return fmt.Errorf("runner image: %s cannot be pulled and mmdebstrap, which builds a local "+
			"base instead, is not installed (apt-get install mmdebstrap): %w", opt.BaseImage, err)
	}
	strap := exec.CommandContext(ctx, mmdebstrap, "--variant=minbase", opt.Suite, "-")
	// docker import drops the image config: give the base the usual PATH and shell back.
	imp := exec.CommandContext(ctx, opt.Docker, "import",
		"--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"--change", `CMD ["/bin/bash"]`,
		"-", opt.LocalBase)
	pipe, err := strap.StdoutPipe()
	if err != nil {
		return err
	}
	imp.Stdin = pipe
	strap.Stderr = opt.Output
	imp.Stdout, imp.Stderr = opt.Output, opt.Output
	if err := imp.Start(); err != nil {
		return fmt.Errorf("runner image: docker import: %w", err)
	}
	strapErr := strap.Run()
	impErr := imp.Wait()
	if strapErr != nil {
		return fmt.Errorf("runner image: mmdebstrap --variant=minbase %s: %w", opt.Suite, strapErr)
	}
	if impErr != nil {
		return fmt.Errorf("runner image: docker import %s: %w", opt.LocalBase, impErr)
	}
	return nil
}

func imageExists(ctx context.Context, docker, ref string) bool {
	return exec.CommandContext(ctx, docker, "image", "inspect", "--format", "{{.Id}}", ref).Run() == nil
}

func progress(w io.Writer, start time.Time, format string, args ...any) {
	fmt.Fprintf(w, "ansible: %s (%s)\n", fmt.Sprintf(format, args...), time.Since(start).Round(100*time.Millisecond))
}
