package deploy

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/clock-app/clock/internal/ansible"
	"github.com/clock-app/clock/internal/config"
	"github.com/clock-app/clock/internal/images"
	"github.com/clock-app/clock/internal/progress"
	"github.com/clock-app/clock/internal/sshx"
	"golang.org/x/crypto/ssh"
)

// The playbook run: the service and runner images, the agent that lends the runner the
// deploy key, and the runner container itself.

// prepare builds and saves the service images and the Ansible runner image.
func (d *Deployer) prepare(ctx context.Context) (runnerImage string, err error) {
	if err := images.BuildAll(ctx, d.out(), d.Root, d.Meta); err != nil {
		return "", err
	}
	step := progress.Start(d.out(), "images: save for the target")
	for _, s := range images.Services {
		path, changed, err := images.Save(ctx, s, d.Meta.Version, d.Cfg.State().Images())
		if err != nil {
			return "", step.Fail(err)
		}
		if changed {
			step.Printf("wrote %s", path)
		}
	}
	if err := d.buildClockctl(ctx); err != nil {
		return "", step.Fail(err)
	}
	step.Done("%s", d.Cfg.State().Images())
	return d.RunnerImage(ctx)
}

// RunnerImage builds the Ansible runner image unless it exists.
func (d *Deployer) RunnerImage(ctx context.Context) (string, error) {
	step := progress.Start(d.out(), "ansible: runner image")
	tag, err := ansible.EnsureRunnerImage(ctx, ansible.ImageOptions{
		Dockerfile: filepath.Join(d.Root, "deploy", "ansible", "Dockerfile"),
		BaseImage:  d.Cfg.AnsibleBaseImage,
		Progress:   stepWriter{s: step},
		// A cold build takes minutes: show docker's "Step N/M" lines, not its whole output.
		Output: stepWriter{s: step, only: "Step "},
	})
	if err != nil {
		return "", step.Fail(err)
	}
	step.Done("%s", tag)
	return tag, nil
}

// stepWriter turns the lines a package writes into progress lines of a step; with only set,
// just the lines that start with it.
type stepWriter struct {
	s    *progress.Step
	only string
}

func (w stepWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		if line = strings.TrimSpace(line); line != "" && strings.HasPrefix(line, w.only) {
			w.s.Printf("%s", line)
		}
	}
	return len(p), nil
}

// agent serves the deploy key to the runner for one playbook run: list and sign only, on
// a socket only the runner's user may use.
func (d *Deployer) agent() (socket string, stop func() error, err error) {
	// The project folder and the socket are bind-mounted too, and neither is a knob that
	// config could check: the repository's path and TMPDIR.
	if err := config.CheckMountPath(d.Root); err != nil {
		return "", nil, fmt.Errorf("the repository's path %q %v (the runner mounts deploy/ansible from it)", d.Root, err)
	}
	keyPath, _ := d.Cfg.DeployKey()
	socket, stop, err = sshx.AgentConfig{ClientUID: ansible.RunnerUID}.StartFromFile(keyPath)
	if err != nil {
		return "", nil, err
	}
	if err := config.CheckMountPath(socket); err != nil {
		stop()
		return "", nil, fmt.Errorf("the agent socket %q %v: set TMPDIR to a folder without them", socket, err)
	}
	return socket, stop, nil
}

// runner is the Ansible runner for this deploy, with the agent socket that holds the key.
func (d *Deployer) runner(image, socket string, step *progress.Step) ansible.Runner {
	return ansible.Runner{
		Image:       image,
		ProjectDir:  filepath.Join(d.Root, "deploy", "ansible"),
		StateDir:    d.Cfg.State().Root(),
		AgentSocket: socket,
		Output:      d.out(),
		Progress:    stepWriter{s: step},
	}
}

func (d *Deployer) vars() ansible.Vars {
	return ansible.Vars{WebPort: d.Cfg.HTTPPort}
}

func ansibleTarget(t sshx.Target) (ansible.Target, error) {
	host, port, err := net.SplitHostPort(t.Addr)
	if err != nil {
		return ansible.Target{}, err
	}
	p, _ := strconv.Atoi(port)
	return ansible.Target{Host: host, Port: p, User: t.User}, nil
}

// playbook runs site.yml on target and records stamp there once it finished.
func (d *Deployer) playbook(ctx context.Context, client *ssh.Client, target sshx.Target, runnerImage, stamp string, sum *Summary) error {
	step := progress.Start(d.out(), "ansible: site.yml on "+target.Addr)
	socket, stop, err := d.agent()
	if err != nil {
		return step.Fail(err)
	}
	defer stop()
	at, err := ansibleTarget(target)
	if err != nil {
		return step.Fail(err)
	}
	sum.Recap, err = d.runner(runnerImage, socket, step).Deploy(ctx, at, d.vars())
	if err != nil {
		return step.Fail(err)
	}
	write := fmt.Sprintf("sh -c 'mkdir -p %s && echo %s > %s.tmp && mv %s.tmp %s'", filepath.Dir(stampPath), stamp, stampPath, stampPath, stampPath)
	if _, err := sshx.RunOn(ctx, client, sudo(target, write)); err != nil {
		return step.Fail(fmt.Errorf("recording the playbook run on the target: %w", err))
	}
	step.Done("changed=%d", sum.Recap.Changed())
	return nil
}

// CommandLine is the docker run command that deploy runs, for people who run Ansible by hand.
func (d *Deployer) CommandLine(image string) (string, error) {
	return d.runner(image, "/path/to/ssh-agent.sock", nil).CommandLine(ansible.PlaybookDeploy, d.vars())
}
