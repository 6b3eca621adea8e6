package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/clock-app/clock/internal/progress"
	"github.com/clock-app/clock/internal/release"
	"github.com/clock-app/clock/internal/sshx"
)

func TestProbeNeedsPlaybook(t *testing.T) {
	const stamp = "0123456789abcdef"
	whole := probe{Stamp: stamp, DpkgWhole: true, State: &release.State{}}
	for _, tt := range []struct {
		name     string
		p        probe
		converge string
		want     string // in the reason; "" for no run
	}{
		{"as the last run left it", whole, "", ""},
		{"as the last run left it, converge auto", whole, "auto", ""},
		{"CLOCK_CONVERGE=full", whole, "full", "CLOCK_CONVERGE=full"},
		{"full wins over everything", probe{}, "full", "CLOCK_CONVERGE=full"},
		{"no stamp", probe{DpkgWhole: true, State: &release.State{}}, "", "no finished playbook run"},
		{"another stamp", probe{Stamp: "fedcba9876543210", DpkgWhole: true, State: &release.State{}}, "", "changed since the last run"},
		{"dpkg half done", probe{Stamp: stamp, State: &release.State{}}, "", "half-done package run"},
		{"no state", probe{Stamp: stamp, DpkgWhole: true, Why: "sh: 1: /usr/local/bin/clockctl: not found\nmore"}, "", "clockctl could not read the target's state: sh: 1: /usr/local/bin/clockctl: not found"},
	} {
		got := tt.p.needsPlaybook(stamp, tt.converge)
		switch {
		case tt.want == "" && got != "":
			t.Errorf("%s: needsPlaybook = %q, want \"\": the target is as the last finished run left it", tt.name, got)
		case tt.want != "" && !strings.Contains(got, tt.want):
			t.Errorf("%s: needsPlaybook = %q, want a reason containing %q", tt.name, got, tt.want)
		}
	}
	// Only the first line of clockctl's complaint: the reason is one line of the step.
	p := probe{Stamp: stamp, DpkgWhole: true, Why: "first\nsecond"}
	if got := p.needsPlaybook(stamp, ""); strings.Contains(got, "second") {
		t.Errorf("needsPlaybook = %q, want only the first line of Why", got)
	}
}

func TestLineWriter(t *testing.T) {
	var seen []string
	w := lineWriter{f: func(l string) { seen = append(seen, l) }}
	for _, s := range []string{"12:00:00.0 api: sta", "rted\n12:00:01.0 web", ": started\n", "", "clockctl: release 1.4.2 is not healthy\nlast lines:\npanic"} {
		if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
			t.Errorf("Write(%q) = %d, %v, want %d, nil", s, n, err, len(s))
		}
	}
	if want := []string{"12:00:00.0 api: started", "12:00:01.0 web: started", "clockctl: release 1.4.2 is not healthy", "last lines:"}; !slices.Equal(seen, want) {
		t.Errorf("lines before flush = %q, want %q: whole lines only, joined across writes", seen, want)
	}
	w.flush()
	if got := seen[len(seen)-1]; got != "panic" {
		t.Errorf("last line after flush = %q, want the unterminated %q", got, "panic")
	}
	w.flush() // nothing left: no empty line
	if len(seen) != 5 {
		t.Errorf("lines after a second flush = %q, want 5: flush of nothing adds no line", seen)
	}
	if got, want := w.all(), "release 1.4.2 is not healthy\nlast lines:\npanic"; got != want {
		t.Errorf("all() = %q, want %q: from the clockctl: line on, without the prefix", got, want)
	}

	// With no clockctl: line, all is everything it said.
	var plain lineWriter
	plain.Write([]byte("sudo: a password is required\nsecond\n"))
	plain.flush()
	if got, want := plain.all(), "sudo: a password is required\nsecond"; got != want {
		t.Errorf("all() with no clockctl: line = %q, want %q", got, want)
	}
	// A line that only mentions clockctl is not where the error starts.
	var mention lineWriter
	mention.Write([]byte("progress of clockctl: fine\nclockctl: boom\n"))
	if got := mention.all(); got != "boom" {
		t.Errorf("all() = %q, want %q: the error is the line that starts with clockctl:", got, "boom")
	}
}

func TestSudo(t *testing.T) {
	for _, tt := range []struct {
		user, want string
	}{
		{"root", "docker load --quiet"},
		{"ubuntu", "sudo -n docker load --quiet"},
	} {
		if got := sudo(sshx.Target{User: tt.user}, "docker load --quiet"); got != tt.want {
			t.Errorf("sudo as %s = %q, want %q", tt.user, got, tt.want)
		}
	}
}

// TestResume is the switch's answer to a lost SSH connection: dial again, wait while the
// target's clockctl is busy with the lost run, and keep any other answer as the outcome.
func TestResume(t *testing.T) {
	lost := fmt.Errorf("remote command %q: %w", "clockctl deploy", &ssh.ExitMissingError{})
	busy := &clockctlError{cmd: "deploy", status: release.ExitBusy, lines: "another clockctl is running on this host"}
	gate := &clockctlError{cmd: "deploy", status: release.ExitGate, lines: "release x is not healthy"}
	refused := &dialError{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}
	for _, tc := range []struct {
		name    string
		answers []error // one per call; the last repeats
		calls   int
		want    error  // errors.Is target; nil: success
		wantMsg string // or a part of the message
	}{
		{"done at once", []error{nil}, 1, nil, ""},
		{"a refusal is the outcome", []error{gate}, 1, gate, ""},
		{"lost, then busy, then done", []error{lost, refused, busy, busy, nil}, 5, nil, ""},
		{"lost, then the gate fails", []error{lost, busy, gate}, 3, gate, ""},
		{"a changed host key is never waited out", []error{lost, &dialError{fmt.Errorf("x: %w", sshx.ErrHostKeyChanged)}}, 2, sshx.ErrHostKeyChanged, ""},
		{"lost for good", []error{lost, lost}, 0, nil, "did not answer again within"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			run := func(context.Context) error {
				err := tc.answers[min(calls, len(tc.answers)-1)]
				calls++
				return err
			}
			var out bytes.Buffer
			err := resume(context.Background(), run, 50*time.Millisecond, time.Millisecond, progress.Start(&out, "release"))
			switch {
			case tc.wantMsg != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantMsg) {
					t.Fatalf("resume = %v, want an error saying %q", err, tc.wantMsg)
				}
			case !errors.Is(err, tc.want) || (tc.want == nil && err != nil):
				t.Fatalf("resume = %v, want %v", err, tc.want)
			}
			if tc.calls != 0 && calls != tc.calls {
				t.Errorf("run called %d times, want %d", calls, tc.calls)
			}
			if tc.answers[0] == lost && !strings.Contains(out.String(), "connection was lost") {
				t.Errorf("no word of the lost connection in the progress:\n%s", out.String())
			}
		})
	}
}

// TestResumeStopsWhenCancelled: Ctrl-C during the wait ends it, and a cancelled command is
// not a lost connection.
func TestResumeStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	lost := &ssh.ExitMissingError{}
	calls := 0
	run := func(context.Context) error {
		calls++
		if calls == 2 {
			cancel()
		}
		return lost
	}
	err := resume(ctx, run, time.Minute, time.Millisecond, progress.Start(io.Discard, "release"))
	if !errors.Is(err, context.Canceled) || calls != 2 {
		t.Fatalf("resume after Ctrl-C = %v after %d calls, want context.Canceled after 2", err, calls)
	}
	if lostConnection(ctx, lost) {
		t.Error("lostConnection is true under a cancelled context")
	}
}
