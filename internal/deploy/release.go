package deploy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/clock-app/clock/internal/ansible"
	"github.com/clock-app/clock/internal/images"
	"github.com/clock-app/clock/internal/progress"
	"github.com/clock-app/clock/internal/release"
	"github.com/clock-app/clock/internal/sshx"
)

// On the target: clockctl, where it is installed by the clock role, and the stamp of the last
// playbook run that finished, beside the release book.
const (
	clockctlPath = "/usr/local/bin/clockctl"
	stampPath    = "/var/lib/clock/converged"
)

// buildClockctl compiles clockctl for the target (linux/amd64, static) into the images
// folder the runner mounts. -trimpath and no build ID changes keep it byte-identical for the
// same source, so the playbook stamp changes only when clockctl does.
func (d *Deployer) buildClockctl(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w -buildid=",
		"-o", d.Cfg.State().Image(ansible.Clockctl), "./deploy/clockctl")
	cmd.Dir = d.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build clockctl: %v\n%s", err, out)
	}
	return nil
}

// stamp is the fingerprint of one playbook run: every file of deploy/ansible, clockctl and
// the extra vars. The target keeps the stamp of its last finished run; when it matches, the
// playbook would change nothing (its tasks are idempotent) and is skipped.
func (d *Deployer) stamp() (string, error) {
	h := sha256.New()
	dir := filepath.Join(d.Root, "deploy", "ansible")
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		fmt.Fprintf(h, "%s %d\n", rel, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(d.Cfg.State().Image(ansible.Clockctl))
	if err != nil {
		return "", err
	}
	h.Write(b)
	vars, _ := json.Marshal(d.vars())
	h.Write(vars)
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// spec is the release this deploy asks for: the archives' images, as the target will have
// them, and the services' settings.
func (d *Deployer) spec() (release.Spec, error) {
	s := release.Spec{Version: d.Meta.Version, Replicas: d.Cfg.Replicas,
		APIEnv: map[string]string{"CLOCK_API_LOG_LEVEL": d.Cfg.APILogLevel}}
	for _, x := range []struct {
		svc images.Service
		img *release.Image
	}{{images.API, &s.API}, {images.Web, &s.Web}} {
		id, err := images.ArchiveImageID(d.Cfg.State().Image(x.svc.Archive()))
		if err != nil {
			return s, err
		}
		*x.img = release.Image{Ref: x.svc.Ref(d.Meta.Version), ID: id}
	}
	return s, s.Check()
}

// probe is what one SSH command tells of the target: the stamp of its last playbook run,
// whether dpkg is whole, and clockctl's state (nil when clockctl or Docker cannot answer).
type probe struct {
	Stamp     string
	DpkgWhole bool
	State     *release.State
	Why       string // why State is nil
}

// sep splits the probe's sections; no section's output contains it.
const sep = "--clock-probe--"

// probeTarget reads the target in one command that needs no Python: the fast path's only
// look before it decides there is nothing to do.
func probeTarget(ctx context.Context, c *ssh.Client, t sshx.Target, ids []string) (probe, error) {
	cmd := fmt.Sprintf("cat %s 2>/dev/null; echo; echo %s; dpkg --audit 2>/dev/null | wc -l; echo %s; %s state %s 2>&1",
		stampPath, sep, sep, clockctlPath, strings.Join(ids, " "))
	res, err := sshx.RunOn(ctx, c, sudo(t, "sh -c "+ansible.ShellQuote([]string{cmd})))
	if err != nil && res.Stdout == nil {
		return probe{}, err
	}
	parts := strings.Split(string(res.Stdout), sep+"\n")
	if len(parts) != 3 {
		return probe{}, fmt.Errorf("probing the target: unexpected output %q", string(res.Stdout))
	}
	p := probe{Stamp: strings.TrimSpace(parts[0]), DpkgWhole: strings.TrimSpace(parts[1]) == "0"}
	var st release.State
	if jerr := json.Unmarshal([]byte(parts[2]), &st); jerr != nil {
		p.Why = strings.TrimSpace(parts[2])
		if p.Why == "" {
			p.Why = "clockctl said nothing"
		}
		return p, nil
	}
	p.State = &st
	return p, nil
}

// needsPlaybook says why the playbook must run, or "" when the target is as the last
// finished run left it.
func (p probe) needsPlaybook(stamp, converge string) string {
	switch {
	case converge == "full":
		return "CLOCK_CONVERGE=full"
	case p.Stamp == "":
		return "no finished playbook run on the target yet"
	case p.Stamp != stamp:
		return "deploy/ansible, clockctl or their settings changed since the last run"
	case !p.DpkgWhole:
		return "dpkg reports a half-done package run"
	case p.State == nil:
		return "clockctl could not read the target's state: " + firstLine(p.Why)
	}
	return ""
}

// shipImages loads the spec's images that the target lacks, streaming each archive over SSH
// into clockctl load (the Engine API: the docker CLI costs a second more in a TCG guest):
// only a new build is copied. Both load at once, on two sessions of the one connection: a
// guest with more than one vCPU unpacks them side by side.
func (d *Deployer) shipImages(ctx context.Context, c *ssh.Client, t sshx.Target, have map[string]bool, spec release.Spec, step *progress.Step) (int, error) {
	var wg sync.WaitGroup
	var errs []error
	var mu sync.Mutex
	n := 0
	for _, x := range []struct {
		svc images.Service
		img release.Image
	}{{images.API, spec.API}, {images.Web, spec.Web}} {
		if have[x.img.ID] {
			continue
		}
		n++
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.load(ctx, c, t, x.svc, x.img.Ref, step); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return n, errors.Join(errs...)
}

// load streams svc's archive into the target's Docker.
func (d *Deployer) load(ctx context.Context, c *ssh.Client, t sshx.Target, svc images.Service, ref string, step *progress.Step) error {
	f, err := os.Open(d.Cfg.State().Image(svc.Archive()))
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := sshx.Stream(ctx, c, sudo(t, clockctlPath+" load"), f, io.Discard, io.Discard); err != nil {
		return fmt.Errorf("loading %s into the target's Docker: %w", ref, err)
	}
	step.Printf("loaded %s (%.1f MB) in %s", ref, float64(st.Size())/1e6, progress.Round(time.Since(t0)))
	return nil
}

// clockctl runs a clockctl command on the target with stdin as its input, its progress lines
// (stderr) as the step's, and decodes its JSON result into out.
func clockctl(ctx context.Context, c *ssh.Client, t sshx.Target, args []string, stdin io.Reader, out any, step *progress.Step) error {
	var stdout bytes.Buffer
	lines := lineWriter{f: func(l string) { step.Printf("%s", l) }}
	err := sshx.Stream(ctx, c, sudo(t, clockctlPath+" "+strings.Join(args, " ")), stdin, &stdout, &lines)
	lines.flush()
	if err != nil {
		if ee := (*sshx.ExitError)(nil); errors.As(err, &ee) {
			return &clockctlError{cmd: args[0], status: ee.Status, lines: lines.all()}
		}
		return err
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		return fmt.Errorf("clockctl %s said %q: %w", args[0], stdout.String(), err)
	}
	return nil
}

// clockctlError is clockctl exiting non-zero on the target; its own lines say why.
type clockctlError struct {
	cmd    string
	status int
	lines  string
}

func (e *clockctlError) Error() string {
	return fmt.Sprintf("clockctl %s on the target: %s", e.cmd, e.lines)
}

// switchTo runs clockctl deploy with req over c. Should the SSH connection be lost during
// it (CI saw a session to a just-provisioned bare host end with no exit status), clockctl
// goes on there by itself, as it ignores the hangup; switchTo then dials again, waits for
// that run to finish and sends the same request once more, which finds the release live
// and leaves it alone, or switches to it, or fails with the gate's reason.
func (d *Deployer) switchTo(ctx context.Context, c *conn, t sshx.Target, req []byte, res *release.Result, step *progress.Step) error {
	run := func(ctx context.Context) error {
		cl, err := c.client(ctx)
		if err != nil {
			return &dialError{err}
		}
		err = clockctl(ctx, cl, t, []string{"deploy"}, bytes.NewReader(req), res, step)
		if lostConnection(ctx, err) {
			c.drop(cl)
		}
		return err
	}
	// Long enough for the lost run to finish: both services' gates and the drain.
	return resume(ctx, run, 2*d.Cfg.HealthTimeout+2*time.Minute, 2*time.Second, step)
}

// resume calls run, and again every pause while the connection is lost (or cannot be dialled
// again) or the target's clockctl is still busy with the lost run, for up to window.
func resume(ctx context.Context, run func(context.Context) error, window, pause time.Duration, step *progress.Step) error {
	err := run(ctx)
	if !lostConnection(ctx, err) {
		return err
	}
	t0 := time.Now()
	step.Printf("the SSH connection was lost during the switch (%v): clockctl carries on there; reconnecting to wait for it, for up to %s", err, window)
	for {
		switch {
		case errors.Is(err, sshx.ErrAuthRejected), errors.Is(err, sshx.ErrHostKeyChanged), errors.Is(err, sshx.ErrUnknownHost):
			return err
		case time.Since(t0) > window:
			return fmt.Errorf("the SSH connection was lost during the switch and the target's clockctl did not answer again within %s: %w; "+
				"see what the target runs with go run mage.go releases, then deploy again", window, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
		err = run(ctx)
		var ce *clockctlError
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err == nil:
			step.Printf("reconnected after %s: the release is live", progress.Round(time.Since(t0)))
			return nil
		case errors.As(err, &ce) && ce.status == release.ExitBusy, errors.As(err, new(*dialError)), lostConnection(ctx, err):
			continue
		default:
			return err
		}
	}
}

// dialError is a failure to connect to the target again.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// lostConnection reports whether err is the SSH connection failing under a command that
// was not cancelled: the session ended with no exit status, or the transport broke.
func lostConnection(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	return errors.As(err, new(*ssh.ExitMissingError)) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ETIMEDOUT) || errors.Is(err, syscall.EPIPE)
}

// sudo runs cmd as root on a target whose user is not root.
func sudo(t sshx.Target, cmd string) string {
	if t.NeedsSudo() {
		return "sudo -n " + cmd
	}
	return cmd
}

// lineWriter calls f with each whole line written to it, and keeps them all.
type lineWriter struct {
	f    func(string)
	buf  []byte
	kept []string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.line(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}

func (w *lineWriter) line(l string) {
	w.kept = append(w.kept, l)
	if w.f != nil {
		w.f(l)
	}
}

func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.line(string(w.buf))
		w.buf = nil
	}
}

// all is what the remote command said about its failure: its lines from the first that
// starts with "clockctl:", the error, on.
func (w *lineWriter) all() string {
	for i, l := range w.kept {
		if strings.HasPrefix(l, "clockctl: ") {
			return strings.TrimPrefix(strings.Join(w.kept[i:], "\n"), "clockctl: ")
		}
	}
	return strings.Join(w.kept, "\n")
}

// pruneHere removes this machine's clock-api and clock-web tags that no release kept on the
// target uses, so superseded builds do not pile up here either.
func pruneHere(ctx context.Context, kept []string, current string) int {
	n := 0
	for _, s := range images.Services {
		out, err := exec.CommandContext(ctx, "docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", s.Name).Output()
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			ref := sc.Text()
			if slices.Contains(kept, ref) || ref == s.Ref(current) || ref == s.Ref("latest") || strings.HasSuffix(ref, ":<none>") {
				continue
			}
			if exec.CommandContext(ctx, "docker", "image", "rm", ref).Run() == nil {
				n++
			}
		}
	}
	return n
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

// request is the clockctl deploy request of this deploy.
func (d *Deployer) request(spec release.Spec, by string) release.Request {
	return release.Request{Spec: spec, By: by, HealthTimeout: d.Cfg.HealthTimeout, Keep: d.Cfg.KeepReleases}
}

// rollbackArgs are clockctl's arguments for `rollback`.
func (d *Deployer) rollbackArgs(by string) []string {
	args := []string{"rollback", "--by", ansible.ShellQuote([]string{by}), "--health-timeout", d.Cfg.HealthTimeout.String(), "--keep", strconv.Itoa(d.Cfg.KeepReleases)}
	if d.Cfg.Release != "" {
		args = append(args, ansible.ShellQuote([]string{d.Cfg.Release}))
	}
	return args
}
