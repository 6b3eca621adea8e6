// Package gotool runs the Go toolchain over every module of the workspace: `go test ./...`
// at the root covers only the root module, so checks loop over the modules go.work lists.
package gotool

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Modules returns the module folders of the workspace at root, relative to root, in go.work
// order.
func Modules(ctx context.Context, root string) ([]string, error) {
	cmd := exec.CommandContext(ctx, "go", "work", "edit", "-json")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go work edit -json in %s: %w", root, err)
	}
	var work struct{ Use []struct{ DiskPath string } }
	if err := json.Unmarshal(out, &work); err != nil {
		return nil, fmt.Errorf("reading go.work: %w", err)
	}
	var mods []string
	for _, u := range work.Use {
		mods = append(mods, filepath.Clean(u.DiskPath))
	}
	return mods, nil
}

// Unformatted lists the files gofmt would change in the given folders.
func Unformatted(ctx context.Context, root string, dirs ...string) ([]string, error) {
	cmd := exec.CommandContext(ctx, "gofmt", append([]string{"-l"}, dirs...)...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("gofmt: %v: %s", err, stderr.String())
	}
	var files []string
	for _, f := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		// The state folder may hold Go files of nobody's (a module cache, say); skip it.
		if f != "" && !strings.HasPrefix(f, ".state/") && !strings.Contains(f, "/dist/") {
			files = append(files, f)
		}
	}
	return files, nil
}

// Go runs `go args...` in root/mod with its output streamed to out. env is added to the
// process environment.
func Go(ctx context.Context, out io.Writer, root, mod string, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = filepath.Join(root, mod)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s in %s: %w", strings.Join(args, " "), mod, err)
	}
	return nil
}

// Lint runs gofmt and go vet over every module and fails on any finding.
func Lint(ctx context.Context, out io.Writer, root string) error {
	mods, err := Modules(ctx, root)
	if err != nil {
		return err
	}
	bad, err := Unformatted(ctx, root, ".") // "." holds every module of the workspace
	if err != nil {
		return err
	}
	if len(bad) > 0 {
		return fmt.Errorf("gofmt would change %s: run gofmt -w on them", strings.Join(bad, ", "))
	}
	fmt.Fprintf(out, "    gofmt: clean (%d modules)\n", len(mods))
	for _, m := range mods {
		// The vmtest tag brings the VM test (test/vm) under vet as well.
		if err := Go(ctx, out, root, m, nil, "vet", "-tags=vmtest", "./..."); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "    go vet: clean (%d modules)\n", len(mods))
	return nil
}
