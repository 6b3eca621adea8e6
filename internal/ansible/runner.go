package ansible

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Playbooks of deploy/ansible.
const (
	PlaybookDeploy = "site.yml"
	PlaybookStop   = "stop.yml"
)

// Image archive names in <state>/images, as the clock role expects them.
const (
	APIArchive = "clock-api.tar"
	WebArchive = "clock-web.tar"
)

// Runner runs the Ansible project in the runner image. The private key is never given to it:
// ssh inside the container authenticates through the agent socket alone.
type Runner struct {
	Image       string    // runner image tag, from EnsureRunnerImage
	ProjectDir  string    // deploy/ansible on this machine
	StateDir    string    // the state folder (.state): ansible/inventory.yml, images/, ssh/known_hosts
	AgentSocket string    // ssh-agent socket holding the deploy key (sshx.StartAgent)
	Output      io.Writer // ansible-playbook output; nil: discard
	Progress    io.Writer // one line per step with elapsed time; nil: discard
	Docker      string    // docker binary, default "docker"
}

// Vars are the extra vars a deploy passes to site.yml. Empty fields keep the role defaults.
type Vars struct {
	APIImage string            // clock_api_image, e.g. clock-api:v1.2.0 (the tag inside clock-api.tar)
	WebImage string            // clock_web_image, e.g. clock-web:v1.2.0
	WebPort  int               // clock_web_port: host port of clock-web (default 80)
	APIEnv   map[string]string // clock_api_env: CLOCK_API_* environment of clock-api
	Extra    map[string]any    // any other role variable, e.g. clock_api_memory
}

func (v Vars) extraVars() map[string]any {
	m := map[string]any{}
	for k, val := range v.Extra {
		m[k] = val
	}
	if v.APIImage != "" {
		m["clock_api_image"] = v.APIImage
	}
	if v.WebImage != "" {
		m["clock_web_image"] = v.WebImage
	}
	if v.WebPort != 0 {
		m["clock_web_port"] = v.WebPort
	}
	if len(v.APIEnv) > 0 {
		m["clock_api_env"] = v.APIEnv
	}
	return m
}

func (r Runner) docker() string {
	if r.Docker == "" {
		return "docker"
	}
	return r.Docker
}

// KnownHostsPath is the pinned known_hosts the runner's ssh checks host keys against.
func KnownHostsPath(stateDir string) string { return filepath.Join(stateDir, "ssh", "known_hosts") }

// ImagesDir is the folder of docker save archives mounted into the runner.
func ImagesDir(stateDir string) string { return filepath.Join(stateDir, "images") }

// Args returns the arguments of `docker` that run playbook with vars: the runner on the host
// network (the VM's network is reachable from the host, not from Docker's bridge); the project,
// inventory, image archives (site.yml only) and known_hosts mounted read-only; the agent socket
// as SSH_AUTH_SOCK. No key file is mounted.
func (r Runner) Args(playbook string, vars Vars) ([]string, error) {
	if r.Image == "" || r.ProjectDir == "" || r.StateDir == "" || r.AgentSocket == "" {
		return nil, errors.New("ansible runner: Image, ProjectDir, StateDir and AgentSocket are required")
	}
	abs := func(p string) (string, error) { return filepath.Abs(p) }
	project, err := abs(r.ProjectDir)
	if err != nil {
		return nil, err
	}
	state, err := abs(r.StateDir)
	if err != nil {
		return nil, err
	}
	agent, err := abs(r.AgentSocket)
	if err != nil {
		return nil, err
	}
	mount := func(src, dst string, ro bool) string {
		m := "type=bind,source=" + src + ",target=" + dst
		if ro {
			m += ",readonly"
		}
		return m
	}
	args := []string{"run", "--rm", "--network", "host",
		"--mount", mount(project, containerProject, true),
		"--mount", mount(InventoryPath(state), containerInventory, true),
		"--mount", mount(KnownHostsPath(state), containerKnownHosts, true),
	}
	if playbook == PlaybookDeploy {
		args = append(args, "--mount", mount(ImagesDir(state), containerImages, true))
	}
	args = append(args,
		"--mount", mount(agent, containerAgent, false),
		"--env", "SSH_AUTH_SOCK="+containerAgent,
		"--env", "ANSIBLE_CONFIG="+containerProject+"/ansible.cfg",
		"--workdir", containerProject,
		r.Image,
		"ansible-playbook", "--inventory", "inventories/vm", "--inventory", containerInventory,
	)
	if ev := vars.extraVars(); len(ev) > 0 {
		b, err := json.Marshal(ev) // map keys come out sorted: a stable command line
		if err != nil {
			return nil, fmt.Errorf("ansible extra vars: %w", err)
		}
		args = append(args, "--extra-vars", string(b))
	}
	return append(args, playbook), nil
}

// CommandLine is the `docker run ...` that Deploy (playbook PlaybookDeploy) or Stop
// (PlaybookStop) executes, quoted for a POSIX shell: what to run by hand.
func (r Runner) CommandLine(playbook string, vars Vars) (string, error) {
	args, err := r.Args(playbook, vars)
	if err != nil {
		return "", err
	}
	return ShellQuote(append([]string{r.docker()}, args...)), nil
}

// Deploy writes the inventory for t and runs site.yml: Docker, the app user, the images and
// both containers. The recap is returned also when the run fails.
func (r Runner) Deploy(ctx context.Context, t Target, vars Vars) (Recap, error) {
	images := ImagesDir(r.StateDir)
	for _, name := range []string{APIArchive, WebArchive} {
		if err := checkReadable(filepath.Join(images, name), "image archive (docker save)"); err != nil {
			return nil, err
		}
	}
	return r.run(ctx, PlaybookDeploy, t, vars)
}

// Stop writes the inventory for t and runs stop.yml: removes both containers and their
// networks, leaving the VM, Docker and the loaded images.
func (r Runner) Stop(ctx context.Context, t Target) (Recap, error) {
	return r.run(ctx, PlaybookStop, t, Vars{})
}

func (r Runner) run(ctx context.Context, playbook string, t Target, vars Vars) (Recap, error) {
	start := time.Now()
	pw := r.Progress
	if pw == nil {
		pw = io.Discard
	}
	out := r.Output
	if out == nil {
		out = io.Discard
	}
	if _, err := WriteInventory(r.StateDir, t); err != nil {
		return nil, err
	}
	if err := checkReadable(KnownHostsPath(r.StateDir), "pinned known_hosts"); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(r.AgentSocket); err != nil || fi.Mode()&fs.ModeSocket == 0 {
		return nil, fmt.Errorf("ansible runner: ssh-agent socket %s: not a socket (start one with sshx.StartAgent)", r.AgentSocket)
	}
	args, err := r.Args(playbook, vars)
	if err != nil {
		return nil, err
	}
	tt, _ := t.withDefaults()
	progress(pw, start, "running %s against %s@%s:%d", playbook, tt.User, tt.Host, tt.Port)

	var buf bytes.Buffer
	cmd := exec.CommandContext(ctx, r.docker(), args...)
	cmd.Stdout = io.MultiWriter(out, &buf)
	cmd.Stderr = io.MultiWriter(out, &buf)
	runErr := cmd.Run()
	recap, recapErr := ParseRecap(buf.String())
	if runErr != nil {
		if ctx.Err() != nil {
			return recap, fmt.Errorf("ansible-playbook %s: %w", playbook, ctx.Err())
		}
		if recapErr == nil {
			return recap, fmt.Errorf("ansible-playbook %s failed (%v): %s", playbook, runErr, recap)
		}
		return nil, fmt.Errorf("ansible-playbook %s failed before the recap (%v): %s", playbook, runErr, lastLines(buf.String(), 5))
	}
	if recapErr != nil {
		return nil, fmt.Errorf("ansible-playbook %s: %w", playbook, recapErr)
	}
	if recap.Problems() > 0 {
		return recap, fmt.Errorf("ansible-playbook %s: %s", playbook, recap)
	}
	progress(pw, start, "%s done: changed=%d", playbook, recap.Changed())
	return recap, nil
}

// Lint runs yamllint (strict) and ansible-lint (production profile, from .ansible-lint) on the
// project in the runner image, with the project mounted read-only and no network.
func Lint(ctx context.Context, image, projectDir string, out io.Writer) error {
	if out == nil {
		out = io.Discard
	}
	project, err := filepath.Abs(projectDir)
	if err != nil {
		return err
	}
	for _, tool := range [][]string{
		{"yamllint", "--strict", "."},
		{"ansible-lint"},
	} {
		args := append([]string{"run", "--rm", "--network", "none",
			"--mount", "type=bind,source=" + project + ",target=" + containerProject + ",readonly",
			"--env", "ANSIBLE_CONFIG=" + containerProject + "/ansible.cfg",
			"--workdir", containerProject, image}, tool...)
		cmd := exec.CommandContext(ctx, "docker", args...)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s on %s: %w", tool[0], projectDir, err)
		}
	}
	return nil
}

// checkReadable fails unless path is a regular file the runner's non-root user can read.
func checkReadable(path, what string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("ansible runner: %s: %w", what, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("ansible runner: %s %s: not a regular file", what, path)
	}
	// The runner runs as uid 1000, not as the owner of the state folder.
	if fi.Mode().Perm()&0o004 == 0 {
		return fmt.Errorf("ansible runner: %s %s has mode %04o; the runner container's user (uid 1000) "+
			"needs it world-readable (0644)", what, path, fi.Mode().Perm())
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ShellQuote joins args into one POSIX shell command line, single-quoting where needed.
func ShellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
				strings.ContainsRune("-_./:=,@%+", r))
		}) < 0 {
			q[i] = a
			continue
		}
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}
