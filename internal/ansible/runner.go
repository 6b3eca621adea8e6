package ansible

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/clock-app/clock/internal/state"
)

// PlaybookDeploy is deploy/ansible's playbook: it prepares the host for releases.
const PlaybookDeploy = "site.yml"

// Clockctl is the file in <state>/images that the clock role installs on the target.
const Clockctl = "clockctl"

// Labels on every runner container. A mage process that dies without cleaning up (kill -9,
// or a second Ctrl-C that forces the exit) leaves its container behind; the next run finds it by
// LabelRunner and removes it when the process named by LabelPID on LabelHost is gone.
const (
	LabelRunner = "clock.runner"
	LabelPID    = "clock.pid"
	LabelHost   = "clock.host"
)

// Limits of the runner container. A deploy to one VM peaked at 103 MB (page cache
// included) and 9 processes over three test:vm runs (its cgroup sampled every 3 s); the
// limits leave room for Ansible's 5 forks against several hosts and still stop a runaway.
const (
	runnerMemory = "512m"
	runnerPIDs   = "128"
	// What Ansible writes under a read-only root: its local temp and ssh control sockets
	// (~/.ansible) and Python's temp files (/tmp).
	runnerTmpfsHome = containerHome + "/.ansible:rw,nosuid,nodev,size=64m,uid=1000,gid=1000,mode=0700"
	runnerTmpfsTmp  = "/tmp:rw,nosuid,nodev,size=64m,mode=1777"
	containerHome   = "/home/ansible" // the runner user's home in deploy/ansible/Dockerfile
)

// removeTimeout bounds the `docker rm -f` after a run; it must fit in the 5 s mage gives
// targets after a Ctrl-C before it exits.
const removeTimeout = 4 * time.Second

// Runner runs the Ansible project in the runner image. The private key is never given to it:
// ssh inside the container authenticates through the agent socket alone.
type Runner struct {
	Image       string    // runner image tag, from EnsureRunnerImage
	ProjectDir  string    // deploy/ansible on this machine
	StateDir    string    // the state folder (.state): ansible/inventory.yml, images/, ssh/known_hosts
	AgentSocket string    // ssh-agent socket holding the deploy key (sshx.AgentConfig.Start)
	Output      io.Writer // ansible-playbook output; nil: discard
	Progress    io.Writer // one line per step with elapsed time; nil: discard
	Docker      string    // docker binary, default "docker"

	// container names the container of a run (set by run); empty in a CommandLine for
	// people, who have no sweep to label it for.
	container string
}

// Vars are the extra vars a deploy passes to site.yml. Empty fields keep the role defaults.
type Vars struct {
	WebPort int            // clock_web_port: host port of clock-web (default 80)
	Extra   map[string]any // any other role variable, e.g. clock_api_memory
}

func (v Vars) extraVars() map[string]any {
	m := map[string]any{}
	for k, val := range v.Extra {
		m[k] = val
	}
	if v.WebPort != 0 {
		m["clock_web_port"] = v.WebPort
	}
	return m
}

func (r Runner) docker() string {
	if r.Docker == "" {
		return "docker"
	}
	return r.Docker
}

// Args returns the arguments of `docker` that run playbook with vars: the runner on the host
// network (the VM's network is reachable from the host, not from Docker's bridge); the project,
// inventory, image archives (site.yml only) and known_hosts mounted read-only; the agent socket
// as SSH_AUTH_SOCK. No key file is mounted. The container runs with least privilege: a
// read-only root with tmpfs for what Ansible writes, no capabilities, no-new-privileges,
// memory and pids limits; a run's container is named and labelled for its cleanup.
func (r Runner) Args(playbook string, vars Vars) ([]string, error) {
	if r.Image == "" || r.ProjectDir == "" || r.StateDir == "" || r.AgentSocket == "" {
		return nil, errors.New("ansible runner: Image, ProjectDir, StateDir and AgentSocket are required")
	}
	abs := func(p string) (string, error) { return filepath.Abs(p) }
	project, err := abs(r.ProjectDir)
	if err != nil {
		return nil, err
	}
	dir := state.New(r.StateDir)
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
	args := []string{"run", "--rm"}
	if r.container != "" {
		args = append(args, nameArgs(r.container)...)
	}
	args = append(args, "--network", "host",
		"--read-only",
		"--tmpfs", runnerTmpfsHome,
		"--tmpfs", runnerTmpfsTmp,
		"--cap-drop", "ALL",
		"--security-opt", "no-new-privileges",
		"--memory", runnerMemory,
		"--pids-limit", runnerPIDs,
		"--mount", mount(project, containerProject, true),
		"--mount", mount(dir.Inventory(), containerInventory, true),
		"--mount", mount(dir.KnownHosts(), containerKnownHosts, true),
	)
	args = append(args, "--mount", mount(dir.Images(), containerImages, true))
	args = append(args,
		"--mount", mount(agent, containerAgent, false),
		"--env", "SSH_AUTH_SOCK="+containerAgent,
		"--env", "ANSIBLE_CONFIG="+containerProject+"/ansible.cfg",
		// Task lines reach the log as they start, not when Python's buffer fills.
		"--env", "PYTHONUNBUFFERED=1",
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

// CommandLine is the `docker run ...` that Deploy executes, quoted for a POSIX shell: what
// to run by hand.
func (r Runner) CommandLine(playbook string, vars Vars) (string, error) {
	args, err := r.Args(playbook, vars)
	if err != nil {
		return "", err
	}
	return ShellQuote(append([]string{r.docker()}, args...)), nil
}

// Deploy writes the inventory for t and runs site.yml: Docker, the firewall, the app user,
// clockctl and the release settings. The recap is returned also when the run fails.
func (r Runner) Deploy(ctx context.Context, t Target, vars Vars) (Recap, error) {
	if err := checkReadable(state.New(r.StateDir).Image(Clockctl), "clockctl (built by the deploy)"); err != nil {
		return nil, err
	}
	return r.run(ctx, PlaybookDeploy, t, vars)
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
	if err := checkReadable(state.New(r.StateDir).KnownHosts(), "pinned known_hosts"); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(r.AgentSocket); err != nil || fi.Mode()&fs.ModeSocket == 0 {
		return nil, fmt.Errorf("ansible runner: ssh-agent socket %s: not a socket (start one with sshx.AgentConfig.Start)", r.AgentSocket)
	}
	// mage cancels ctx on Ctrl-C (SIGINT) only; the magefile turns SIGTERM into SIGINT, but a
	// caller outside mage (test:vm's in-process deploys) would end at once on a SIGTERM and
	// leave ansible-playbook running in its container until the next run's sweep: while the
	// container runs, SIGTERM cancels the run the same way.
	ctx, stopSignals := signal.NotifyContext(ctx, syscall.SIGTERM)
	defer stopSignals()
	if err := r.removeStale(ctx, pw, start); err != nil {
		return nil, err
	}
	name, err := containerName()
	if err != nil {
		return nil, err
	}
	r.container = name
	args, err := r.Args(playbook, vars)
	if err != nil {
		return nil, err
	}
	tt, _ := t.withDefaults()
	progress(pw, start, "running %s against %s@%s:%d in container %s", playbook, tt.User, tt.Host, tt.Port, r.container)

	var buf bytes.Buffer
	cmd := exec.CommandContext(ctx, r.docker(), args...)
	cmd.Stdout = io.MultiWriter(out, &buf)
	cmd.Stderr = io.MultiWriter(out, &buf)
	runErr := cmd.Run()
	var removeErr error
	if runErr != nil {
		// Killing the docker client leaves its container running ansible-playbook against
		// the target: remove it, with a context of its own since ctx may be the one that ended.
		removeErr = r.remove(r.container)
	}
	recap, recapErr := ParseRecap(buf.String())
	if runErr != nil {
		if ctx.Err() != nil {
			return recap, errors.Join(fmt.Errorf("ansible-playbook %s: %w", playbook, ctx.Err()), removeErr)
		}
		if removeErr != nil {
			return recap, errors.Join(fmt.Errorf("ansible-playbook %s failed: %v", playbook, runErr), removeErr)
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

// containerName is unique per run: the pid tells runs of this machine apart, the random
// part runs of one process.
func containerName() (string, error) {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return fmt.Sprintf("clock-ansible-%d-%s", os.Getpid(), hex.EncodeToString(b)), nil
}

// nameArgs name a container of this process and label it for the sweep of stale ones.
func nameArgs(name string) []string {
	host, _ := os.Hostname()
	return []string{"--name", name,
		"--label", LabelRunner + "=1",
		"--label", LabelPID + "=" + strconv.Itoa(os.Getpid()),
		"--label", LabelHost + "=" + host}
}

// remove force-removes a runner container; one that is gone already is no error.
func (r Runner) remove(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), removeTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, r.docker(), "rm", "--force", name).CombinedOutput()
	if err != nil && !strings.Contains(string(out), "No such container") {
		return fmt.Errorf("remove the runner container %s (run: docker rm -f %s): %v %s", name, name, err, bytes.TrimSpace(out))
	}
	return nil
}

// removeStale removes the runner containers that mage processes of this host left behind
// when they died.
func (r Runner) removeStale(ctx context.Context, pw io.Writer, start time.Time) error {
	out, err := exec.CommandContext(ctx, r.docker(), "ps", "--all", "--filter", "label="+LabelRunner,
		"--format", "{{.Names}}\t{{.Label \""+LabelPID+"\"}}\t{{.Label \""+LabelHost+"\"}}").Output()
	if err != nil {
		return fmt.Errorf("ansible runner: list earlier runner containers (docker ps): %w", err)
	}
	host, _ := os.Hostname()
	for _, name := range StaleRunners(string(out), host, pidAlive) {
		progress(pw, start, "removing runner container %s: the mage process that started it is gone", name)
		if err := r.remove(name); err != nil {
			return err
		}
	}
	return nil
}

// StaleRunners picks, from `docker ps` lines "name<TAB>pid<TAB>host", the containers to
// remove: those started on host whose pid is no longer alive, and those whose pid label is
// not a pid (no run of ours writes one). Containers of other hosts sharing the daemon are
// left alone: their pids mean nothing here.
func StaleRunners(psOutput, host string, alive func(pid int) bool) []string {
	var stale []string
	for _, line := range strings.Split(psOutput, "\n") {
		f := strings.Split(strings.TrimSpace(line), "\t")
		if len(f) != 3 || f[0] == "" {
			continue
		}
		name, pidLabel, h := f[0], f[1], f[2]
		if h != host {
			continue
		}
		pid, err := strconv.Atoi(pidLabel)
		if err != nil || pid <= 0 || !alive(pid) {
			stale = append(stale, name)
		}
	}
	return stale
}

// pidAlive reports whether a process with this pid exists (EPERM: it does, as another user's).
func pidAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Lint runs yamllint (strict) and ansible-lint (production profile, from .ansible-lint) on the
// project in the runner image, with the project mounted read-only and no network.
// Its containers are named, labelled and removed like the runs'.
func Lint(ctx context.Context, image, projectDir string, out io.Writer) error {
	if out == nil {
		out = io.Discard
	}
	project, err := filepath.Abs(projectDir)
	if err != nil {
		return err
	}
	r := Runner{}
	if err := r.removeStale(ctx, io.Discard, time.Now()); err != nil {
		return err
	}
	for _, tool := range [][]string{
		{"yamllint", "--strict", "."},
		{"ansible-lint"},
	} {
		name, err := containerName()
		if err != nil {
			return err
		}
		args := append([]string{"run", "--rm"}, nameArgs(name)...)
		args = append(append(args, "--network", "none",
			"--mount", "type=bind,source="+project+",target="+containerProject+",readonly",
			"--env", "ANSIBLE_CONFIG="+containerProject+"/ansible.cfg",
			"--workdir", containerProject, image), tool...)
		cmd := exec.CommandContext(ctx, r.docker(), args...)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Run(); err != nil {
			// A lint interrupted with Ctrl-C must not keep running in its container.
			return errors.Join(fmt.Errorf("%s on %s: %w", tool[0], projectDir, err), r.remove(name))
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
