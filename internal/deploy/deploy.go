// Package deploy puts the pieces in order: images, the target (the local VM through package
// localvm, or a given host), Ansible in its container, the release, and the check from the
// host (docs/DESIGN.md, Flow). deploy.go is that sequence; the files beside it hold its
// steps: runner.go the playbook run, release.go the probe and the release, lock.go the locks
// and the connection, existing.go stop, rollback and releases, status.go status and logs.
// The magefile's targets that deploy are one call each into this package.
package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/clock-app/clock/internal/ansible"
	"github.com/clock-app/clock/internal/config"
	"github.com/clock-app/clock/internal/guestclock"
	"github.com/clock-app/clock/internal/images"
	"github.com/clock-app/clock/internal/localvm"
	"github.com/clock-app/clock/internal/lock"
	"github.com/clock-app/clock/internal/progress"
	"github.com/clock-app/clock/internal/release"
	"github.com/clock-app/clock/internal/sshx"
	"github.com/clock-app/clock/internal/verify"
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

// key loads the deploy key, generating ours when the user gave none.
func (d *Deployer) key() (*sshx.Key, error) { return sshx.OpenKey(d.Cfg.DeployKey()) }

func (d *Deployer) out() io.Writer {
	if d.Out == nil {
		return os.Stdout
	}
	return d.Out
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
		if err := localvm.Image(ctx, d.Cfg, d.out()); err != nil {
			return sshx.Target{}, err
		}
		ip, err := localvm.Up(ctx, d.Cfg, d.Root, d.out())
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
func (d *Deployer) setClock(ctx context.Context, c *conn, t sshx.Target, title string) error {
	step := progress.Start(d.out(), "clock: "+title)
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

// stepped is how far this host's wall clock moved beyond the time that passed since start
// (read on the monotonic clock), rounded to the second; 0 below a second.
func stepped(start time.Time) time.Duration {
	jump := time.Now().Round(0).Sub(start.Round(0)) - time.Since(start)
	if jump.Abs() < time.Second {
		return 0
	}
	return jump.Round(time.Second)
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
		if err := timed("clock", func() error { return d.setClock(ctx, c, target, "the VM's from this host's") }); err != nil {
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
		// A new connection for the release: this one sat idle for minutes while the
		// playbook may have installed Docker and loaded the firewall under it.
		c.drop(client)
		if client, err = c.client(ctx); err != nil {
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
		if err := d.switchTo(ctx, c, target, req, &sum.Release, step); err != nil {
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

	if !d.Cfg.Remote() {
		// Again before the check, which compares the served time with this host's: minutes
		// may have passed since the first setting, and this host's clock may have been
		// stepped meanwhile (a suspended laptop, a paused or restored VM, NTP). CI once saw
		// a guest 5m05s behind after a cold deploy to the bare host.
		title := "the VM's again, before the check"
		if jump := stepped(start); jump != 0 {
			title += fmt.Sprintf(" (this host's clock was stepped %+v during the deploy)", jump)
		}
		if err := timed("clock again", func() error { return d.setClock(ctx, c, target, title) }); err != nil {
			return sum, err
		}
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
