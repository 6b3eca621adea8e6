package deploy

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/clock-app/clock/internal/ansible"
	"github.com/clock-app/clock/internal/localvm"
	"github.com/clock-app/clock/internal/lock"
	"github.com/clock-app/clock/internal/progress"
	"github.com/clock-app/clock/internal/release"
	"github.com/clock-app/clock/internal/sshx"
	"golang.org/x/crypto/ssh"
)

// The targets that act on a target deployed before: stop, rollback and releases.

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
	v, err := localvm.Open(d.Cfg, d.Root, nil)
	if err != nil {
		return t, err
	}
	ip, err := v.IP(ctx)
	if err != nil {
		return t, err // it names vm:up
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
