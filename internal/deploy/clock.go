package deploy

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/clock-app/clock/internal/sshx"
)

// The VM has no time source but its virtual RTC, which it reads in whole seconds at boot: a
// fresh guest was about 1.15 s behind the host, and the clock it serves showed it. No NTP
// server is reachable from it (nor need one be on the host), so deploy sets the guest's clock
// from this host's over the SSH connection it already trusts. Doing it here rather than in an
// Ansible task matters: a task takes seconds to start on a small guest, an SSH command a few
// milliseconds, and the error is about half the round trip.

// clockTolerance is the offset left alone: below it, setting the clock would change nothing a
// person or the check could see.
const clockTolerance = 50 * time.Millisecond

// guestRunner runs a shell command on the guest and returns its standard output.
type guestRunner func(ctx context.Context, cmd string) (string, error)

// clockSync is what syncClock did: the guest's offset from this host before and after (after
// equals before when it was within clockTolerance).
type clockSync struct {
	Before, After time.Duration
	Set           bool
}

// syncClock measures the guest's clock against now and, when it is off by more than
// clockTolerance, sets it to this host's time. sudo is "sudo -n " for a user other than root.
func syncClock(ctx context.Context, run guestRunner, now func() time.Time, sudo string) (clockSync, error) {
	var s clockSync
	before, _, err := guestOffset(ctx, run, now)
	if err != nil {
		return s, err
	}
	s.Before, s.After = before, before
	if before.Abs() <= clockTolerance {
		return s, nil
	}
	// The command reaches the guest about half a round trip after it is sent.
	_, rtt, err := guestOffset(ctx, run, now)
	if err != nil {
		return s, err
	}
	at := now().Add(rtt / 2)
	if _, err := run(ctx, sudo+"date -u -s @"+unixDecimal(at)+" >/dev/null"); err != nil {
		return s, fmt.Errorf("set the VM's clock (it is %s off this host's): %w "+
			"(the SSH user must be root or have passwordless sudo)", roundMs(before), err)
	}
	s.Set = true
	if s.After, _, err = guestOffset(ctx, run, now); err != nil {
		return s, err
	}
	return s, nil
}

// guestOffset reads the guest's clock once and returns how far it is from this host's at the
// middle of the round trip, and the round trip.
func guestOffset(ctx context.Context, run guestRunner, now func() time.Time) (offset, rtt time.Duration, err error) {
	t0 := now()
	out, err := run(ctx, "date -u +%s.%N")
	t1 := now()
	if err != nil {
		return 0, 0, fmt.Errorf("read the VM's clock: %w", err)
	}
	guest, err := parseUnixDecimal(strings.TrimSpace(out))
	if err != nil {
		return 0, 0, fmt.Errorf("read the VM's clock: `date` printed %q: %w", out, err)
	}
	rtt = t1.Sub(t0)
	return guest.Sub(t0.Add(rtt / 2)), rtt, nil
}

// unixDecimal formats t as seconds.nanoseconds since the epoch, the form `date -s @` takes.
func unixDecimal(t time.Time) string {
	return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond())
}

// parseUnixDecimal reads `date +%s.%N` output exactly (a float64 would lose the microseconds).
func parseUnixDecimal(s string) (time.Time, error) {
	secs, frac, _ := strings.Cut(s, ".")
	sec, err := strconv.ParseInt(secs, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	if len(frac) > 9 {
		frac = frac[:9]
	}
	var nsec int64
	if frac != "" {
		if nsec, err = strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64); err != nil {
			return time.Time{}, err
		}
	}
	return time.Unix(sec, nsec), nil
}

func roundMs(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

// sshRunner runs commands on one open connection to t, so each costs a round trip, not a
// handshake. close ends the connection.
func sshRunner(ctx context.Context, t sshx.Target) (run guestRunner, close func() error, err error) {
	client, err := sshx.Dial(ctx, t)
	if err != nil {
		return nil, nil, err
	}
	return func(ctx context.Context, cmd string) (string, error) {
		res, err := sshx.RunOn(ctx, client, cmd)
		return string(res.Stdout), err
	}, client.Close, nil
}
