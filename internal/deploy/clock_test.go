package deploy

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// fakeGuest is a guest whose clock runs offset from a simulated host clock, and whose
// commands take latency each way.
type fakeGuest struct {
	host    time.Time // the simulated host clock
	offset  time.Duration
	latency time.Duration
	setErr  error
	cmds    []string
}

func (g *fakeGuest) now() time.Time { return g.host }

func (g *fakeGuest) run(_ context.Context, cmd string) (string, error) {
	g.cmds = append(g.cmds, cmd)
	g.host = g.host.Add(g.latency) // to the guest
	var out string
	switch {
	case cmd == "date -u +%s.%N":
		out = unixDecimal(g.host.Add(g.offset)) + "\n"
	case strings.Contains(cmd, "date -u -s @"):
		if g.setErr != nil {
			return "", g.setErr
		}
		at := strings.TrimSuffix(cmd[strings.Index(cmd, "@")+1:], " >/dev/null")
		t, err := parseUnixDecimal(at)
		if err != nil {
			return "", err
		}
		g.offset = t.Sub(g.host)
	default:
		return "", errors.New("unexpected command " + cmd)
	}
	g.host = g.host.Add(g.latency) // and back
	return out, nil
}

func TestSyncClockSetsAnOffClock(t *testing.T) {
	g := &fakeGuest{host: time.Unix(1795401342, 441000000), offset: -1159 * time.Millisecond, latency: 4 * time.Millisecond}
	s, err := syncClock(context.Background(), g.run, g.now, "")
	if err != nil {
		t.Fatal(err)
	}
	if !s.Set || s.Before != -1159*time.Millisecond {
		t.Errorf("syncClock = %+v, want Set with Before -1.159s", s)
	}
	if s.After.Abs() > time.Millisecond || g.offset.Abs() > time.Millisecond {
		t.Errorf("after the sync the guest is %s off (reported %s), want under 1ms", g.offset, s.After)
	}
	if got := g.cmds[2]; !strings.HasPrefix(got, "date -u -s @") {
		t.Errorf("third command %q, want the set (measure, measure, set, measure)", got)
	}
}

func TestSyncClockLeavesAGoodClock(t *testing.T) {
	g := &fakeGuest{host: time.Unix(1795401342, 0), offset: 20 * time.Millisecond, latency: time.Millisecond}
	s, err := syncClock(context.Background(), g.run, g.now, "")
	if err != nil {
		t.Fatal(err)
	}
	if s.Set || len(g.cmds) != 1 || s.Before != 20*time.Millisecond || s.After != s.Before {
		t.Errorf("syncClock = %+v after %q, want one read and no set for a 20ms offset", s, g.cmds)
	}
}

func TestSyncClockUsesSudoForOtherUsers(t *testing.T) {
	g := &fakeGuest{host: time.Unix(1795401342, 0), offset: 3 * time.Second}
	var set string
	_, err := syncClock(context.Background(), func(ctx context.Context, cmd string) (string, error) {
		if strings.Contains(cmd, " -s ") {
			set = cmd
		}
		return g.run(ctx, strings.TrimPrefix(cmd, "sudo -n "))
	}, g.now, "sudo -n ")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(set, "sudo -n date -u -s @") {
		t.Errorf("set command %q, want it under sudo -n", set)
	}
}

func TestSyncClockErrors(t *testing.T) {
	g := &fakeGuest{host: time.Unix(1795401342, 0), offset: -2 * time.Second,
		setErr: errors.New(`remote command exited with status 1: date: cannot set date: Operation not permitted`)}
	_, err := syncClock(context.Background(), g.run, g.now, "")
	if err == nil || !strings.Contains(err.Error(), "Operation not permitted") || !strings.Contains(err.Error(), "passwordless sudo") ||
		!strings.Contains(err.Error(), "-2s off") {
		t.Errorf("err = %v, want the cause, the offset and the fix", err)
	}

	garbled := func(context.Context, string) (string, error) { return "Sun Nov 22\n", nil }
	if _, err := syncClock(context.Background(), garbled, time.Now, ""); err == nil || !strings.Contains(err.Error(), `printed "Sun Nov 22\n"`) {
		t.Errorf("err = %v, want it to quote what date printed", err)
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
	for _, bad := range []string{"", "x.1", "1.x", "%s.%N"} {
		if _, err := parseUnixDecimal(bad); err == nil {
			t.Errorf("parseUnixDecimal(%q) succeeded, want an error", bad)
		}
	}
	if got := unixDecimal(time.Unix(1795401342, 5)); got != "1795401342.000000005" {
		t.Errorf("unixDecimal = %q", got)
	}
}
