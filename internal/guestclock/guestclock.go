// Package guestclock steps a target's system clock to this machine's over SSH, where the
// target has no time source but its virtual RTC (see the comment below for how).
package guestclock

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// The VM has no time source but its virtual RTC, which it reads in whole seconds at boot: a
// fresh guest served a clock 1.16 s behind the host's. No NTP server is reachable from it (nor
// need one be on the host), so deploy sets the guest's clock from this host's over the SSH
// connection it already trusts, the way NTP does it by hand:
//
//   - one shell stays open on the guest and answers "now" with bash's $EPOCHREALTIME, so a
//     reading costs one round trip and no process start (starting `date` takes hundreds of
//     milliseconds on an emulated guest, and would skew every reading);
//   - of several readings the one with the shortest round trip counts, its guest time set
//     against the middle of that round trip;
//   - the clock is stepped by the offset with `date -s "<offset> seconds"`, which is relative
//     to the moment date runs, so the slow start of date does not matter either.
//
// An Ansible task could not do this: starting a task takes seconds on a small guest.

// clockTolerance is the offset left alone: below it, setting the clock would change nothing a
// person or the check could see (the page polls every 500 ms).
const clockTolerance = 50 * time.Millisecond

// clockSamples is how many readings one offset measurement takes.
const clockSamples = 5

// guestClock reads and steps a guest's clock.
type guestClock interface {
	Read() (time.Time, error)
	Step(by time.Duration) error
}

// Result is what Sync did: the guest's offset from this host before and after (after
// equals before when it was within the tolerance, and Set is false).
type Result struct {
	Before, After time.Duration
	Set           bool
}

// syncClock measures the guest's clock against now and, when it is off by more than
// clockTolerance, steps it onto this host's time.
func syncClock(g guestClock, now func() time.Time) (Result, error) {
	var s Result
	before, err := guestOffset(g, now)
	if err != nil {
		return s, err
	}
	s.Before, s.After = before, before
	if before.Abs() <= clockTolerance {
		return s, nil
	}
	if err := g.Step(-before); err != nil {
		return s, fmt.Errorf("set the VM's clock (it is %s off this host's): %w", roundMs(before), err)
	}
	s.Set = true
	if s.After, err = guestOffset(g, now); err != nil {
		return s, err
	}
	return s, nil
}

// guestOffset is how far the guest's clock is ahead of now (negative: behind), from the
// reading with the shortest round trip.
func guestOffset(g guestClock, now func() time.Time) (time.Duration, error) {
	var best, bestRTT time.Duration = 0, -1
	for range clockSamples {
		t0 := now()
		guest, err := g.Read()
		t1 := now()
		if err != nil {
			return 0, fmt.Errorf("read the VM's clock: %w", err)
		}
		if rtt := t1.Sub(t0); bestRTT < 0 || rtt < bestRTT {
			best, bestRTT = guest.Sub(t0.Add(rtt/2)), rtt
		}
	}
	return best, nil
}

// clockScript is the guest side: a loop that answers "now" with the time and "step <s>" by
// stepping the clock s seconds, one line each. sudo is "sudo -n " for a user other than root.
func clockScript(sudo string) string {
	loop := `while read -r c; do case "$c" in ` +
		`now) echo "t $EPOCHREALTIME";; ` +
		`step\ *) if e=$(` + sudo + `date -u -s "${c#step } seconds" 2>&1 >/dev/null); then echo ok; else echo "error $e"; fi;; ` +
		`*) echo "error unknown request"; exit 2;; esac; done`
	return "LC_ALL=C exec bash -c " + shellQuote(loop)
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// lineClock is a guestClock talking to clockScript through its standard input and output.
type lineClock struct {
	in  io.Writer
	out *bufio.Reader
	// ended explains an answer that never came: the script's exit and its stderr.
	ended func() error
}

func (c *lineClock) ask(req string) (string, error) {
	if _, err := io.WriteString(c.in, req+"\n"); err != nil {
		return "", err
	}
	line, err := c.out.ReadString('\n')
	if err != nil {
		if c.ended != nil {
			if why := c.ended(); why != nil {
				err = why
			}
		}
		return "", fmt.Errorf("no answer to %q: %w", req, err)
	}
	line = strings.TrimSuffix(line, "\n")
	if msg, ok := strings.CutPrefix(line, "error "); ok {
		return "", fmt.Errorf("%s", msg)
	}
	return line, nil
}

func (c *lineClock) Read() (time.Time, error) {
	line, err := c.ask("now")
	if err != nil {
		return time.Time{}, err
	}
	v, ok := strings.CutPrefix(line, "t ")
	t, perr := parseUnixDecimal(v)
	if !ok || perr != nil {
		return time.Time{}, fmt.Errorf("the guest's bash answered %q, want seconds.micros ($EPOCHREALTIME needs bash 5)", line)
	}
	return t, nil
}

func (c *lineClock) Step(by time.Duration) error {
	line, err := c.ask("step " + signedSeconds(by))
	if err == nil && line != "ok" {
		err = fmt.Errorf("unexpected answer %q", line)
	}
	if err != nil {
		return fmt.Errorf("%w (the SSH user must be root or have passwordless sudo)", err)
	}
	return nil
}

// signedSeconds formats d for date's relative items: "+1.159000000", "-0.226000000".
func signedSeconds(d time.Duration) string {
	sign := "+"
	if d < 0 {
		sign, d = "-", -d
	}
	return fmt.Sprintf("%s%d.%09d", sign, d/time.Second, d%time.Second)
}

// parseUnixDecimal reads "seconds.fraction" exactly (a float64 would lose the microseconds).
func parseUnixDecimal(s string) (time.Time, error) {
	secs, frac, _ := strings.Cut(s, ".")
	sec, err := strconv.ParseInt(secs, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	if len(frac) > 9 {
		frac = frac[:9]
	}
	var nsec uint64
	if frac != "" {
		// ParseUint, not ParseInt: a sign inside the fraction is not a number.
		if nsec, err = strconv.ParseUint(frac+strings.Repeat("0", 9-len(frac)), 10, 64); err != nil {
			return time.Time{}, err
		}
	}
	return time.Unix(sec, int64(nsec)), nil
}

func roundMs(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

// Sync measures the clock of the host client is connected to and steps it onto this
// machine's when it is off by more than the tolerance. sudo is the prefix that runs date as
// root there: "sudo -n " for a user other than root, else "". ctx bounds the whole
// conversation.
func Sync(ctx context.Context, client *ssh.Client, sudo string) (Result, error) {
	g, closeClock, err := sshClock(ctx, client, sudo)
	if err != nil {
		return Result{}, err
	}
	s, err := syncClock(g, time.Now)
	if cerr := closeClock(); err == nil {
		err = cerr
	}
	return s, err
}

// sshClock starts clockScript over client and returns the guestClock that talks to it; close
// ends the script. ctx bounds the whole conversation: when it ends, the session closes and a
// waiting Read or Step fails.
func sshClock(ctx context.Context, client *ssh.Client, asRoot string) (g guestClock, close func() error, err error) {
	var sess *ssh.Session
	stop := context.AfterFunc(ctx, func() {
		if sess != nil {
			sess.Close()
		}
	})
	fail := func(err error) (guestClock, func() error, error) {
		stop()
		if sess != nil {
			sess.Close()
		}
		return nil, nil, fmt.Errorf("open a shell on the VM: %w", err)
	}
	sess, err = client.NewSession()
	if err != nil {
		return fail(err)
	}
	in, err := sess.StdinPipe()
	if err != nil {
		return fail(err)
	}
	out, err := sess.StdoutPipe()
	if err != nil {
		return fail(err)
	}
	var stderr bytes.Buffer
	sess.Stderr = &stderr
	if err := sess.Start(clockScript(asRoot)); err != nil {
		return fail(err)
	}
	wait := sync.OnceValue(func() error {
		if err := sess.Wait(); err != nil {
			return fmt.Errorf("the clock shell on the VM: %w: %s", err, strings.TrimSpace(stderr.String()))
		}
		return nil
	})
	return &lineClock{in: in, out: bufio.NewReader(out), ended: wait}, func() error {
		in.Close() // the loop ends at EOF
		err := wait()
		stop()
		sess.Close()
		return err
	}, nil
}
