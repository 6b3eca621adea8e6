package guestclock

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeGuest is a guest whose clock runs offset from a simulated host clock. Each reading
// takes latency to reach it and latency back, plus slow extra on the first reading (a
// reading delayed one way, which the shortest-round-trip rule must not trust).
type fakeGuest struct {
	host          time.Time // the simulated host clock
	offset        time.Duration
	latency, slow time.Duration
	stepErr       error
	reads, steps  int
	lastStep      time.Duration
}

func (g *fakeGuest) now() time.Time { return g.host }

func (g *fakeGuest) Read() (time.Time, error) {
	g.reads++
	g.host = g.host.Add(g.latency)
	if g.reads == 1 {
		g.host = g.host.Add(g.slow) // delayed on the way there only
	}
	t := g.host.Add(g.offset)
	g.host = g.host.Add(g.latency)
	return t, nil
}

func (g *fakeGuest) Step(by time.Duration) error {
	g.steps++
	g.lastStep = by
	if g.stepErr != nil {
		return g.stepErr
	}
	g.host = g.host.Add(g.latency)
	g.offset += by // relative to the moment it runs: no latency error
	g.host = g.host.Add(g.latency)
	return nil
}

func TestSyncClockStepsAnOffClock(t *testing.T) {
	g := &fakeGuest{host: time.Unix(1795401342, 441000000), offset: -1159 * time.Millisecond,
		latency: 4 * time.Millisecond, slow: 300 * time.Millisecond}
	s, err := syncClock(g, g.now)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Set || s.Before != -1159*time.Millisecond || g.lastStep != 1159*time.Millisecond {
		t.Errorf("syncClock = %+v, stepped %s; want Set, Before -1.159s, a +1.159s step (the slow reading ignored)",
			s, g.lastStep)
	}
	if s.After != 0 || g.offset != 0 {
		t.Errorf("after the sync the guest is %s off (reported %s), want 0", g.offset, s.After)
	}
	if g.reads != 2*clockSamples || g.steps != 1 {
		t.Errorf("%d readings and %d steps, want %d and 1", g.reads, g.steps, 2*clockSamples)
	}
}

func TestSyncClockLeavesAGoodClock(t *testing.T) {
	g := &fakeGuest{host: time.Unix(1795401342, 0), offset: 20 * time.Millisecond, latency: time.Millisecond}
	s, err := syncClock(g, g.now)
	if err != nil {
		t.Fatal(err)
	}
	if s.Set || g.steps != 0 || s.Before != 20*time.Millisecond || s.After != s.Before {
		t.Errorf("syncClock = %+v with %d steps, want no step for a 20ms offset", s, g.steps)
	}
}

func TestSyncClockStepError(t *testing.T) {
	g := &fakeGuest{host: time.Unix(1795401342, 0), offset: -2 * time.Second,
		stepErr: errors.New("date: cannot set date: Operation not permitted")}
	_, err := syncClock(g, g.now)
	if err == nil || !strings.Contains(err.Error(), "Operation not permitted") || !strings.Contains(err.Error(), "-2s off") {
		t.Errorf("err = %v, want the cause and the offset", err)
	}
}

// startScript runs clockScript in a local bash whose PATH starts with a fake date that records
// its arguments, and returns the lineClock talking to it.
func startScript(t *testing.T, fakeDate string) (*lineClock, string) {
	t.Helper()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	dir := t.TempDir()
	record := filepath.Join(dir, "date.args")
	if err := os.WriteFile(filepath.Join(dir, "date"),
		[]byte("#!/bin/sh\necho \"$*\" >> "+record+"\n"+fakeDate), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", clockScript(""))
	cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("the script ended with %v, want 0 at EOF", err)
		}
	})
	return &lineClock{in: in, out: bufio.NewReader(out)}, record
}

func TestClockScript(t *testing.T) {
	c, record := startScript(t, "exit 0\n")
	before := time.Now()
	got, err := c.Read()
	if err != nil {
		t.Fatal(err)
	}
	if d := got.Sub(before); d < -time.Second || d > time.Second {
		t.Errorf("the script read %v, want about now (%v)", got, before)
	}
	if err := c.Step(-226 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := c.Step(1159 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	args, _ := os.ReadFile(record)
	if want := "-u -s -0.226000000 seconds\n-u -s +1.159000000 seconds\n"; string(args) != want {
		t.Errorf("date was called with %q, want %q", args, want)
	}
}

func TestClockScriptStepFails(t *testing.T) {
	c, _ := startScript(t, "echo 'date: cannot set date: Operation not permitted' >&2\nexit 1\n")
	err := c.Step(time.Second)
	if err == nil || !strings.Contains(err.Error(), "Operation not permitted") || !strings.Contains(err.Error(), "passwordless sudo") {
		t.Errorf("err = %v, want date's message and the fix", err)
	}
	// The loop goes on after a failed step.
	if _, err := c.Read(); err != nil {
		t.Errorf("reading after a failed step: %v", err)
	}
}

func TestParseUnixDecimal(t *testing.T) {
	for in, want := range map[string]time.Time{
		"1795401342.441000123":  time.Unix(1795401342, 441000123),
		"1795401342.5":          time.Unix(1795401342, 500000000),
		"1795401342":            time.Unix(1795401342, 0),
		"1795401342.1234567891": time.Unix(1795401342, 123456789),
	} {
		got, err := parseUnixDecimal(in)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseUnixDecimal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x.1", "1.x", "1.+5", "1,5", "$EPOCHREALTIME"} {
		if _, err := parseUnixDecimal(bad); err == nil {
			t.Errorf("parseUnixDecimal(%q) succeeded, want an error", bad)
		}
	}
	if got := signedSeconds(-226 * time.Millisecond); got != "-0.226000000" {
		t.Errorf("signedSeconds(-226ms) = %q", got)
	}
}
