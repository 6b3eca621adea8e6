// Package deploy puts the pieces in order: images, the target (the local VM, or a given
// host), Ansible in its container, and the check from the host. The magefile's deploy, stop,
// status and logs targets are one call each into this package.
package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/clock-app/clock/internal/ansible"
	"github.com/clock-app/clock/internal/config"
	"github.com/clock-app/clock/internal/guestclock"
	"github.com/clock-app/clock/internal/images"
	"github.com/clock-app/clock/internal/lock"
	"github.com/clock-app/clock/internal/progress"
	"github.com/clock-app/clock/internal/release"
	"github.com/clock-app/clock/internal/sshx"
	"github.com/clock-app/clock/internal/verify"
	"github.com/clock-app/clock/internal/vm"
	"github.com/clock-app/clock/internal/vmimage"
)

// Deployer runs the deploy steps for one configuration, from the repo at Root.
type Deployer struct {
	Cfg  config.Config
	Root string
	Out  io.Writer
	Meta images.Meta
}

// Phase is one timed step of a deploy.
type Phase struct {
	Name string
	Took time.Duration
}

// Summary is what a deploy did.
type Summary struct {
	URL      string
	Target   string
	Playbook string        // why the playbook ran; "" when the target needed no run
	Recap    ansible.Recap // of the playbook run, if any
	Loaded   int           // images copied to the target
	Release  release.Result
	Phases   []Phase
	Took     time.Duration
}

// Changed counts what the deploy changed: the playbook's changed tasks, and one for a
// release switch.
func (s Summary) Changed() int {
	n := s.Recap.Changed()
	if s.Release.Changed {
		n++
	}
	return n
}

func (d *Deployer) out() io.Writer {
	if d.Out == nil {
		return os.Stdout
	}
	return d.Out
}

// keyPath is the deploy key: the user's for their own image or host, else the generated one.
func (d *Deployer) keyPath() string {
	switch {
	case d.Cfg.Remote():
		return d.Cfg.TargetKey
	case d.Cfg.VMKey != "":
		return d.Cfg.VMKey
	}
	return d.Cfg.State().Key()
}

// key loads the deploy key, generating ours when the user gave none.
func (d *Deployer) key() (*sshx.Key, error) {
	if d.Cfg.Remote() || d.Cfg.VMKey != "" {
		return sshx.LoadKey(d.keyPath())
	}
	return sshx.EnsureKey(d.Cfg.State().Key())
}

// baseImage is the VM's base disk: the user's, or the one vm:image builds for the suite.
func (d *Deployer) baseImage() string {
	if d.Cfg.VMImage != "" {
		return d.Cfg.VMImage
	}
	return d.Cfg.State().BaseImage(d.Cfg.VMSuite)
}

// VM returns the VM layer for this configuration; logf gets its progress lines.
func (d *Deployer) VM(logf func(string, ...any)) (*vm.VM, error) {
	return vm.New(vm.Config{
		Name:        d.Cfg.VMName,
		MemoryMiB:   d.Cfg.VMMemoryMiB,
		VCPUs:       d.Cfg.VMVCPUs,
		Accel:       d.Cfg.VMAccel,
		MAC:         d.Cfg.VMMAC,
		URI:         d.Cfg.LibvirtURI,
		StateDir:    d.Cfg.State().Root(),
		BaseImage:   d.baseImage(),
		KeyPath:     d.keyPath(),
		User:        d.Cfg.VMUser,
		Template:    filepath.Join(d.Root, "deploy", "libvirt", "domain.xml.tmpl"),
		BootTimeout: d.Cfg.VMBoot,
		Logf:        logf,
	})
}

// Image builds the Debian base image unless the user brings their own or it is up to date.
func (d *Deployer) Image(ctx context.Context) error {
	step := progress.Start(d.out(), "vm:image")
	if d.Cfg.VMImage != "" {
		step.Done("using your image %s", d.Cfg.VMImage)
		return nil
	}
	key, err := d.key()
	if err != nil {
		return step.Fail(err)
	}
	built, err := vmimage.Build(ctx, vmimage.Options{
		Output:    d.baseImage(),
		PublicKey: key.AuthorizedKey,
		Suite:     d.Cfg.VMSuite,
		Logf:      step.Logf,
	})
	if err != nil {
		return step.Fail(err)
	}
	if built {
		step.Done("built %s", d.baseImage())
	} else {
		step.Done("%s is up to date", d.baseImage())
	}
	return nil
}

// Up makes sure the VM runs and answers SSH, and returns its address.
func (d *Deployer) Up(ctx context.Context) (string, error) {
	if err := d.Image(ctx); err != nil {
		return "", err
	}
	step := progress.Start(d.out(), "vm:up "+d.Cfg.VMName)
	if err := vm.ReachableByQEMU(d.Cfg.LibvirtURI, d.Cfg.State().Root()); err != nil {
		return "", step.Fail(err)
	}
	v, err := d.VM(step.Logf)
	if err != nil {
		return "", step.Fail(err)
	}
	res, err := v.Up(ctx)
	if err != nil {
		return "", step.Fail(err)
	}
	if res.Started {
		step.Done("%s booted under %s: lease after %s, SSH after %s", res.IP, strings.ToUpper(res.Accel),
			progress.Round(res.LeaseAfter), progress.Round(res.SSHAfter))
	} else {
		step.Done("%s already running", res.IP)
	}
	return res.IP, nil
}

// target is where Ansible goes: the VM's address, or the given host once its host key is
// pinned.
func (d *Deployer) target(ctx context.Context) (sshx.Target, error) {
	key, err := d.key()
	if err != nil {
		return sshx.Target{}, err
	}
	kh := d.Cfg.State().KnownHosts()
	if !d.Cfg.Remote() {
		ip, err := d.Up(ctx)
		if err != nil {
			return sshx.Target{}, err
		}
		return sshx.Target{Addr: net.JoinHostPort(ip, "22"), User: d.Cfg.VMUser, Signer: key.Signer, KnownHosts: kh}, nil
	}
	t := sshx.Target{
		Addr:       net.JoinHostPort(d.Cfg.TargetHost, strconv.Itoa(d.Cfg.TargetPort)),
		User:       d.Cfg.TargetUser,
		Signer:     key.Signer,
		KnownHosts: kh,
	}
	step := progress.Start(d.out(), "target "+t.Addr)
	if err := d.pinOnFirstContact(ctx, t, step); err != nil {
		return t, step.Fail(targetError(err, t.Addr))
	}
	step.Done("SSH as %s with a pinned host key", t.User)
	return t, nil
}

// setClock sets the VM's clock from this host's (package guestclock). A given host
// (CLOCK_TARGET_HOST) keeps its own: its time is its owner's business.
func (d *Deployer) setClock(ctx context.Context, c *conn, t sshx.Target) error {
	step := progress.Start(d.out(), "clock: the VM's from this host's")
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	client, err := c.client(ctx)
	if err != nil {
		return step.Fail(err)
	}
	s, err := guestclock.Sync(ctx, client, sudo(t, ""))
	if err != nil {
		return step.Fail(err)
	}
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	if !s.Set {
		step.Done("%s off: left alone", ms(s.Before))
		return nil
	}
	step.Done("was %s off, now %s", ms(s.Before), ms(s.After))
	return nil
}

// targetWait bounds the first login to a given host: it should be up already, so this
// only rides out a slow network, not a boot.
const targetWait = time.Minute

// pinOnFirstContact logs in to a given host once. A host never seen before is pinned on
// this first contact (as ssh's accept-new does); a pinned one must show the pinned key.
// A refusing or unknown host is not waited on.
func (d *Deployer) pinOnFirstContact(ctx context.Context, t sshx.Target, step *progress.Step) error {
	ctx, cancel := context.WithTimeout(ctx, targetWait)
	defer cancel()
	return sshx.WaitForSSH(ctx, sshx.Wait{Addr: t.Addr, User: t.User, Signer: t.Signer, KnownHosts: t.KnownHosts, Progress: step.Printf})
}

// targetError adds to a failed login to CLOCK_TARGET_HOST what to check for that cause;
// there is no VM on this path, so no console to look at.
func targetError(err error, addr string) error {
	var na *sshx.NotAnsweringError
	if !errors.As(err, &na) {
		return err
	}
	return fmt.Errorf("%w: %s", err, targetHint(na.Kind, addr))
}

// targetHint is the fix for each way a given host can fail to answer SSH.
func targetHint(kind sshx.ErrorKind, addr string) string {
	switch kind {
	case sshx.KindRefused:
		return "connection refused at " + addr + ": nothing listens there; check that sshd runs on the host and that CLOCK_TARGET_PORT is its port"
	case sshx.KindTimeout:
		return "no answer from " + addr + ": check CLOCK_TARGET_HOST, CLOCK_TARGET_PORT and any firewall between this machine and the host"
	case sshx.KindUnreachable:
		return "no route to " + addr + ": check CLOCK_TARGET_HOST and this machine's network"
	case sshx.KindNoSuchHost:
		return "the name in CLOCK_TARGET_HOST does not resolve: check its spelling or use the host's IP address"
	case sshx.KindClosed:
		return addr + " accepted the connection and closed it before SSH spoke: check that CLOCK_TARGET_PORT is sshd's port and sshd's log (MaxStartups, tcp wrappers)"
	}
	return "the SSH handshake with " + addr + " failed: check that CLOCK_TARGET_PORT is an OpenSSH server's port"
}

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
	socket, stop, err = sshx.AgentConfig{ClientUID: ansible.RunnerUID}.StartFromFile(d.keyPath())
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

// Deploy runs the whole path: images and the runner image (while the VM boots), the target,
// Ansible, and the check from the host. It returns a summary with the time of each phase.
func (d *Deployer) Deploy(ctx context.Context) (Summary, error) {
	start := time.Now()
	var sum Summary
	locks, err := d.lockHere("deploy")
	if err != nil {
		return sum, err
	}
	defer locks.release(ctx)
	timed := func(name string, f func() error) error {
		t0 := time.Now()
		err := f()
		sum.Phases = append(sum.Phases, Phase{name, time.Since(t0)})
		return err
	}

	// The images and the VM do not depend on each other: build while the guest boots.
	var (
		wg          sync.WaitGroup
		runnerImage string
		prepErr     error
		prepTook    time.Duration
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		t0 := time.Now()
		runnerImage, prepErr = d.prepare(ctx)
		prepTook = time.Since(t0)
	}()
	var target sshx.Target
	targetErr := timed("target (vm:image + vm:up)", func() (err error) {
		target, err = d.target(ctx)
		return err
	})
	wg.Wait()
	sum.Phases = append(sum.Phases, Phase{"images + runner image (in parallel)", prepTook})
	if err := errors.Join(targetErr, prepErr); err != nil {
		return sum, err
	}
	host, _, _ := net.SplitHostPort(target.Addr)
	sum.Target = target.Addr
	// Before anything changes on the target: another operator may be deploying to it.
	c := &conn{t: target}
	locks.conn = c
	if err := timed("lock", func() error { return locks.onTarget(ctx, remoteLock(target, c)) }); err != nil {
		return sum, err
	}

	if !d.Cfg.Remote() {
		// Before Ansible: apt refuses a Release file from the future, and the containers
		// should start with the right time.
		if err := timed("clock", func() error { return d.setClock(ctx, c, target) }); err != nil {
			return sum, err
		}
	}

	client, err := c.client(ctx)
	if err != nil {
		return sum, err
	}
	spec, err := d.spec()
	if err != nil {
		return sum, err
	}
	// The fingerprint of this deploy's playbook run: compared with the target's, and recorded
	// there once a run finishes.
	stamp, err := d.stamp()
	if err != nil {
		return sum, err
	}
	var p probe
	err = timed("probe the target", func() (err error) {
		step := progress.Start(d.out(), "probe: "+target.Addr)
		if p, err = probeTarget(ctx, client, target, []string{spec.API.ID, spec.Web.ID}); err != nil {
			return step.Fail(err)
		}
		sum.Playbook = p.needsPlaybook(stamp, d.Cfg.Converge)
		if sum.Playbook == "" {
			step.Done("as the last playbook run left it: no playbook run")
		} else {
			step.Done("playbook needed: %s", sum.Playbook)
		}
		return nil
	})
	if err != nil {
		return sum, err
	}
	if sum.Playbook != "" {
		if err := timed("ansible", func() error { return d.playbook(ctx, client, target, runnerImage, stamp, &sum) }); err != nil {
			return sum, err
		}
		if p, err = probeTarget(ctx, client, target, []string{spec.API.ID, spec.Web.ID}); err != nil || p.State == nil {
			return sum, fmt.Errorf("after the playbook, clockctl cannot read the target's state: %v %s", err, p.Why)
		}
	}
	err = timed("release", func() error {
		step := progress.Start(d.out(), "release: "+spec.Version+" on "+target.Addr)
		if sum.Loaded, err = d.shipImages(ctx, client, target, p.State.Images, spec, step); err != nil {
			return step.Fail(err)
		}
		req, _ := json.Marshal(d.request(spec, lock.Me("deploy").Who))
		if err := clockctl(ctx, client, target, []string{"deploy"}, bytes.NewReader(req), &sum.Release, step); err != nil {
			return step.Fail(err)
		}
		pruned := pruneHere(ctx, sum.Release.Kept, d.Meta.Version)
		switch {
		case !sum.Release.Changed:
			step.Done("%s (%s) already live: nothing to switch", spec.Version, sum.Release.Hash)
		default:
			step.Done("%s (%s) live; %d old instances drained, %d images pruned there, %d here",
				spec.Version, sum.Release.Hash, sum.Release.Retired, sum.Release.Pruned, pruned)
		}
		return nil
	})
	if err != nil {
		return sum, err
	}

	err = timed("check from the host", func() error {
		step := progress.Start(d.out(), "check: / and /clock from the host")
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		base := "http://" + net.JoinHostPort(host, strconv.Itoa(d.Cfg.HTTPPort))
		res, err := verify.Wait(ctx, base, 5*time.Second)
		if err != nil {
			return step.Fail(err)
		}
		sum.URL = res.URL
		step.Done("/clock said %.3f, %s from this host's clock", res.Clock, res.Skew.Round(time.Millisecond))
		return nil
	})
	sum.Took = time.Since(start)
	if err != nil {
		return sum, err
	}
	fmt.Fprintf(d.out(), "\ndeploy: %s is serving the clock at %s (changed=%d, %s)\n", d.Meta.Version, sum.URL, sum.Changed(), progress.Round(sum.Took))
	if sum.Playbook == "" {
		fmt.Fprintf(d.out(), "    (no playbook run: the target is as the last one left it; CLOCK_CONVERGE=full runs it anyway)\n")
	}
	for _, p := range sum.Phases {
		fmt.Fprintf(d.out(), "    %-38s %s\n", p.Name, progress.Round(p.Took))
	}
	return sum, nil
}

// existingTarget is the target of a deploy that already happened: the running VM's address
// (without starting it) or the given host.
func (d *Deployer) existingTarget(ctx context.Context) (sshx.Target, error) {
	key, err := d.key()
	if err != nil {
		return sshx.Target{}, err
	}
	t := sshx.Target{User: d.Cfg.TargetUser, Signer: key.Signer, KnownHosts: d.Cfg.State().KnownHosts()}
	if d.Cfg.Remote() {
		t.Addr = net.JoinHostPort(d.Cfg.TargetHost, strconv.Itoa(d.Cfg.TargetPort))
		return t, nil
	}
	v, err := d.VM(func(string, ...any) {})
	if err != nil {
		return t, err
	}
	ip, err := v.IP(ctx)
	if err != nil {
		return t, fmt.Errorf("%w (is the VM up? go run mage.go vm:up)", err)
	}
	t.Addr, t.User = net.JoinHostPort(ip, "22"), d.Cfg.VMUser
	return t, nil
}

// onExisting runs f on the target of an earlier deploy, with both deploy locks held for the
// mage target named what and an SSH connection open.
func (d *Deployer) onExisting(ctx context.Context, what string, f func(*ssh.Client, sshx.Target) error) error {
	locks, err := d.lockHere(what)
	if err != nil {
		return err
	}
	defer locks.release(ctx)
	t, err := d.existingTarget(ctx)
	if err != nil {
		return err
	}
	c := &conn{t: t}
	locks.conn = c
	if err := locks.onTarget(ctx, remoteLock(t, c)); err != nil {
		return err
	}
	client, err := c.client(ctx)
	if err != nil {
		return err
	}
	return f(client, t)
}

// Stop drains and removes every container of the clock and its networks on the target; the
// VM, Docker, the images and the release book stay, so deploy or rollback brings it back.
func (d *Deployer) Stop(ctx context.Context) (removed int, err error) {
	err = d.onExisting(ctx, "stop", func(c *ssh.Client, t sshx.Target) error {
		step := progress.Start(d.out(), "stop: the clock on "+t.Addr)
		var res struct{ Removed int }
		if err := clockctl(ctx, c, t, []string{"stop", "--by", ansible.ShellQuote([]string{lock.Me("stop").Who})}, nil, &res, step); err != nil {
			return step.Fail(err)
		}
		removed = res.Removed
		step.Done("%d instances drained and removed, pods and networks gone", res.Removed)
		return nil
	})
	return removed, err
}

// Rollback makes the previous release (or CLOCK_RELEASE) live again with the same
// health-gated switch as a deploy; no image is built or copied.
func (d *Deployer) Rollback(ctx context.Context) (release.Result, error) {
	start := time.Now()
	var res release.Result
	err := d.onExisting(ctx, "rollback", func(c *ssh.Client, t sshx.Target) error {
		step := progress.Start(d.out(), "rollback on "+t.Addr)
		if err := clockctl(ctx, c, t, d.rollbackArgs(lock.Me("rollback").Who), nil, &res, step); err != nil {
			return step.Fail(err)
		}
		step.Done("%s (%s) live; %d old instances drained", res.Version, res.Hash, res.Retired)
		return nil
	})
	if err != nil {
		return res, err
	}
	fmt.Fprintf(d.out(), "\nrollback: %s is live (%s)\n", res.Version, progress.Round(time.Since(start)))
	return res, nil
}

// Releases prints the releases kept on the target, newest first.
func (d *Deployer) Releases(ctx context.Context) error {
	t, err := d.existingTarget(ctx)
	if err != nil {
		return err
	}
	res, err := sshx.Run(ctx, t, sudo(t, clockctlPath+" releases"))
	if err != nil {
		return err
	}
	_, err = d.out().Write(res.Stdout)
	return err
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

// Status prints the VM's state and address, the containers' health and image versions, and
// the URL with what /clock says now.
func (d *Deployer) Status(ctx context.Context) error {
	w := d.out()
	if !d.Cfg.Remote() {
		v, err := d.VM(func(string, ...any) {})
		if err != nil {
			return err
		}
		state, err := v.State(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "vm:         %s (%s)\n", d.Cfg.VMName, state)
		if state != vm.StateRunning {
			return nil
		}
	}
	t, err := d.existingTarget(ctx)
	if err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(t.Addr)
	fmt.Fprintf(w, "address:    %s\n", host)
	c := &conn{t: t} // one handshake for the commands below, not one each
	defer c.Close()
	ps, err := c.Run(ctx, sudo(t, `docker ps --all --filter name=^clock- --format '{{.Names}}\t{{.Image}}\t{{.Status}}'`))
	if err != nil {
		return err
	}
	out := strings.TrimSpace(string(ps))
	if out == "" {
		out = "(none: run go run mage.go deploy)"
	}
	fmt.Fprintf(w, "containers:\n    %s\n", strings.ReplaceAll(out, "\n", "\n    "))
	if rel, err := c.Run(ctx, sudo(t, clockctlPath+" releases")); err == nil {
		fmt.Fprintf(w, "releases:\n    %s\n", strings.ReplaceAll(strings.TrimSpace(string(rel)), "\n", "\n    "))
	}
	base := "http://" + net.JoinHostPort(host, strconv.Itoa(d.Cfg.HTTPPort))
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if r, err := verify.Clock(ctx, nil, base, 5*time.Second); err != nil {
		fmt.Fprintf(w, "url:        %s/ (not serving: %v)\n", base, err)
	} else {
		fmt.Fprintf(w, "url:        %s (/clock %.3f)\n", r.URL, r.Clock)
	}
	return nil
}

// Logs prints the last lines of each instance's log.
func (d *Deployer) Logs(ctx context.Context, lines int) error {
	t, err := d.existingTarget(ctx)
	if err != nil {
		return err
	}
	c := &conn{t: t} // one handshake for every instance, not one each
	defer c.Close()
	ps, err := c.Run(ctx, sudo(t, "docker ps --all --filter label=clock.role=instance --format '{{.Names}}'"))
	if err != nil {
		return err
	}
	names := strings.Fields(string(ps))
	if len(names) == 0 {
		fmt.Fprintln(d.out(), "no clock instances on the target: go run mage.go deploy")
	}
	for _, name := range names {
		log, err := c.Run(ctx, sudo(t, fmt.Sprintf("docker logs --tail %d %s 2>&1", lines, name)))
		fmt.Fprintf(d.out(), "==> %s\n%s", name, log)
		if err != nil {
			return err
		}
	}
	return nil
}
