package deploy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/clock-app/clock/internal/fix"
	"github.com/clock-app/clock/internal/lock"
	"github.com/clock-app/clock/internal/progress"
	"github.com/clock-app/clock/internal/sshx"
)

// unlockHint is how to clear a remote lock whose holder died; a local one cannot go stale.
var unlockHint = "wait for it, or if it is dead run: " + fix.Command("unlock")

// releaseTimeout bounds giving the locks back, which runs on a fresh context so that a
// deploy ended by Ctrl-C still releases them.
const releaseTimeout = 30 * time.Second

// lockPath is this machine's deploy lock, in the state folder it guards.
func (d *Deployer) lockPath() string { return d.Cfg.State().DeployLock() }

// locks are the deploy locks one mage target holds: this machine's from the start, the
// target's once it is reachable.
type locks struct {
	d      *Deployer
	me     lock.Holder
	local  *lock.Local
	remote *lock.Remote
	conn   *conn // closed after the target's lock is given back
}

// lockHere takes this machine's lock for the mage target named target, or fails at once
// naming the holder.
func (d *Deployer) lockHere(target string) (*locks, error) {
	step := progress.Start(d.out(), "lock: this machine")
	me := lock.Me(target)
	l, err := lock.TakeLocal(d.lockPath(), me)
	if err != nil {
		if errors.As(err, new(*lock.HeldError)) {
			err = fmt.Errorf("%w; wait for it: the lock ends with that process", err)
		}
		return nil, step.Fail(err)
	}
	step.Done("held as %s", me)
	return &locks{d: d, me: me, local: l}, nil
}

// remoteLock is the lock of target t, run over c as t's user (with sudo unless root).
func remoteLock(t sshx.Target, c *conn) lock.Remote {
	host, _, err := net.SplitHostPort(t.Addr)
	if err != nil {
		host = t.Addr
	}
	return lock.Remote{Run: c, Where: host, Path: lock.RemotePath, Sudo: t.NeedsSudo()}
}

// onTarget takes the target's lock r too, or fails at once naming the holder and how to
// clear it.
func (l *locks) onTarget(ctx context.Context, r lock.Remote) error {
	step := progress.Start(l.d.out(), "lock: "+r.Where)
	err := r.Take(ctx, l.me)
	// A deploy of this machine that was killed before it could release (mage allows 5 s
	// after Ctrl-C) left a lock whose holder is provably gone: take it over rather than
	// making the operator unlock their own dead run.
	var held *lock.HeldError
	if errors.As(err, &held) && held.Holder != nil && held.Holder.Dead() {
		step.Printf("taking over the lock of a dead run of this machine (%s, since %s)", held.Holder, held.Holder.Since.Format(time.RFC3339))
		if _, _, err = r.Clear(ctx); err == nil {
			err = r.Take(ctx, l.me)
		}
	}
	if err != nil {
		if errors.As(err, new(*lock.HeldError)) {
			err = fmt.Errorf("%w; %s", err, unlockHint)
		}
		return step.Fail(err)
	}
	l.remote = &r
	step.Done("held as %s (%s)", l.me, lock.RemotePath)
	return nil
}

// release gives both locks back, on every exit path. A remote lock that cannot be released
// is a warning, not a failed deploy: the next one names it and says how to clear it.
func (l *locks) release(ctx context.Context) {
	if l.remote != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
		defer cancel()
		if err := l.remote.Release(ctx, l.me); err != nil {
			fmt.Fprintf(l.d.out(), "warning: %v\n", err)
		}
	}
	if l.conn != nil {
		l.conn.Close()
	}
	l.local.Release()
}

// Unlock clears the target's deploy lock that a dead deploy left, after printing its holder.
// It refuses while a deploy, stop or rollback of this machine runs: that one is alive.
func (d *Deployer) Unlock(ctx context.Context) error {
	l, err := d.lockHere("unlock")
	if err != nil {
		return err
	}
	defer l.local.Release()
	t, err := d.existingTarget(ctx)
	if err != nil {
		return err
	}
	c := &conn{t: t}
	defer c.Close()
	r := remoteLock(t, c)
	holder, cleared, err := r.Clear(ctx)
	switch {
	case err != nil:
		return err
	case !cleared:
		fmt.Fprintf(d.out(), "unlock: no deploy lock on %s\n", r.Where)
	case holder == nil:
		fmt.Fprintf(d.out(), "unlock: cleared the lock on %s (it had no holder record)\n", r.Where)
	default:
		fmt.Fprintf(d.out(), "unlock: cleared the lock on %s held since %s by %s\n", r.Where, holder.Since.Format(time.RFC3339), holder)
	}
	return nil
}

// conn is one SSH connection to the target, dialled on first use and shared by the lock, the
// clock step, the probe and the release: each handshake costs about a second under TCG.
type conn struct {
	t  sshx.Target
	mu sync.Mutex
	c  *ssh.Client
}

// client returns the open connection, dialling it first if need be.
func (c *conn) client(ctx context.Context) (*ssh.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.c != nil {
		return c.c, nil
	}
	cl, err := sshx.Dial(ctx, c.t)
	if err != nil {
		return nil, err
	}
	c.c = cl
	return cl, nil
}

// Run runs cmd on the shared connection. One closed by a cancelled command (sshx.RunOn
// closes it) is dialled again: giving the lock back after Ctrl-C still works.
func (c *conn) Run(ctx context.Context, cmd string) ([]byte, error) {
	cl, err := c.client(ctx)
	if err != nil {
		return nil, err
	}
	res, err := sshx.RunOn(ctx, cl, cmd)
	if err != nil && ctx.Err() == nil && res.Stdout == nil && res.Stderr == nil && res.ExitStatus == 0 {
		c.drop(cl)
		if cl, err = c.client(ctx); err != nil {
			return nil, err
		}
		res, err = sshx.RunOn(ctx, cl, cmd)
	}
	return res.Stdout, err
}

func (c *conn) drop(cl *ssh.Client) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.c == cl {
		c.c.Close()
		c.c = nil
	}
}

// Close closes the connection, if one was opened.
func (c *conn) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.c != nil {
		c.c.Close()
		c.c = nil
	}
}
