package bench

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clock-app/clock/internal/fix"
)

// needTools skips when a tool of the bench is missing, except under CI,
// where a missing tool is a broken setup.
func needTools(t *testing.T) {
	t.Helper()
	if err := (&runner{}).findTools(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("under CI: %v", err)
		}
		t.Skip(err)
	}
}

// buildServices builds both services like mage does, into a temp folder.
func buildServices(t *testing.T, root string) (api, web string) {
	t.Helper()
	dir := t.TempDir()
	for _, svc := range []string{"clock-api", "clock-web"} {
		cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, svc), ".")
		cmd.Dir = filepath.Join(root, "services", svc)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", svc, err, out)
		}
	}
	return filepath.Join(dir, "clock-api"), filepath.Join(dir, "clock-web")
}

// TestRunSmoke runs the whole benchmark for real, two rounds of one second per target.
func TestRunSmoke(t *testing.T) {
	needTools(t)
	root := filepath.Join("..", "..")
	api, web := buildServices(t, root)
	var out bytes.Buffer
	rep, err := Run(context.Background(), Options{
		Root: root, APIBinary: api, WebBinary: web,
		Duration: time.Second, Warmup: -1, Connections: 8, Rounds: 2,
	}, &out)
	t.Logf("output:\n%s", out.String())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	wantTargets := []string{TargetAPI, TargetBare, TargetWebPage, TargetNginx, TargetWebProxy, TargetNginxProxy, TargetUvicorn}
	if !slices.Equal(rep.Targets, wantTargets) {
		t.Fatalf("targets %q, want %q", rep.Targets, wantTargets)
	}
	if len(rep.Results) != 2*len(wantTargets) {
		t.Fatalf("got %d results, want %d (2 rounds)", len(rep.Results), 2*len(wantTargets))
	}
	for i, r := range rep.Results {
		// Alternating: every round runs all targets in order.
		if r.Target != wantTargets[i%len(wantTargets)] || r.Round != 1+i/len(wantTargets) {
			t.Errorf("result %d: got %q round %d", i, r.Target, r.Round)
		}
		if r.RequestsPerSec <= 0 || r.P50 <= 0 || r.P99 < r.P50 {
			t.Errorf("%s: implausible numbers %+v", r.Target, r)
		}
		if r.Errors != 0 {
			t.Errorf("%s: %d errors", r.Target, r.Errors)
		}
		if len(r.Servers) == 0 || r.Servers[0].Peak == 0 || r.Servers[0].Current == 0 {
			t.Errorf("%s: no memory measured: %+v", r.Target, r.Servers)
		}
		// A second of load costs the front at least a tick, and no request
		// costs a millisecond of CPU.
		if c := r.CPUPerRequest(0); r.Servers[0].CPU <= 0 || c <= 0 || c > time.Millisecond {
			t.Errorf("%s: CPU %v, %v per request: implausible", r.Target, r.Servers[0].CPU, c)
		}
		wantServers := 2 // a front and the upstream behind it
		if t := r.Target; t == TargetAPI || t == TargetBare || t == TargetNginx {
			wantServers = 1
		}
		if len(r.Servers) != wantServers {
			t.Errorf("%s: %d servers, want %d", r.Target, len(r.Servers), wantServers)
		}
		if strings.HasPrefix(rep.Pinning, "servers pinned") &&
			(r.Steal < 0 || r.Steal > 1 || r.Other < r.Steal || r.Other > 1) {
			t.Errorf("%s: steal %v, other work %v with pinned servers, want shares in [0, 1], other >= steal", r.Target, r.Steal, r.Other)
		}
		assertClosed(t, r.URL)
	}
	if len(rep.Checks) != len(ratioBars)+2 {
		t.Errorf("got %d checks, want %d", len(rep.Checks), len(ratioBars)+2)
	}
	for _, want := range []string{"req/s min-max", "CPU/req", "upstream CPU/req", "other work", TargetUvicorn,
		"clock-api peak RSS < 20 MiB", "median", "over 2 pairs", "1 worker", "noisy above 10%"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

// TestRunCancel stops mid-run and must leave no server behind.
func TestRunCancel(t *testing.T) {
	needTools(t)
	root := filepath.Join("..", "..")
	api, web := buildServices(t, root)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out lockedBuffer
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, Options{Root: root, APIBinary: api, WebBinary: web, Duration: 30 * time.Second}, &out)
		done <- err
	}()
	// Cancel once the first target is under load.
	deadline := time.After(60 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(out.String(), "loading ") {
		select {
		case err := <-done:
			t.Fatalf("Run ended before loading: %v\n%s", err, out.String())
		case <-deadline:
			t.Fatalf("no target under load after 60s:\n%s", out.String())
		case <-tick.C:
		}
	}
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	line := out.String()[strings.Index(out.String(), "loading "):]
	assertClosed(t, strings.Fields(line)[1])
}

func TestRunMissingTools(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	err := (&runner{}).findTools()
	if err == nil {
		t.Skip("the tools were found outside PATH") // LookPath also searches the sbin folders
	}
	if !strings.Contains(err.Error(), "apt-get install -y") || fix.Target(err) != "setup" {
		t.Errorf("got %q, want the setup and install hints", err)
	}
}

func TestWithDefaults(t *testing.T) {
	root := t.TempDir()
	for _, p := range []string{"services/clock-api/dist/clock-api", "services/clock-web/dist/clock-web", "services/clock-web/static/index.html"} {
		os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
		os.WriteFile(filepath.Join(root, p), nil, 0o755)
	}
	o, err := withDefaults(Options{Root: root, Duration: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if o.Duration != 2*time.Second || o.Warmup != time.Second || o.Connections != 32 || o.Threads != 1 || o.Pin != PinAuto {
		t.Errorf("got %+v", o)
	}
	if want := filepath.Join(root, "services/clock-api/dist/clock-api"); o.APIBinary != want {
		t.Errorf("APIBinary: got %q, want %q", o.APIBinary, want)
	}
	if _, err := withDefaults(Options{Root: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "build the services first") {
		t.Errorf("missing binaries: got %v", err)
	}
	if _, err := withDefaults(Options{Root: root, Threads: 4, Connections: 2}); err == nil {
		t.Error("threads > connections: got no error")
	}
}

// assertClosed fails if anything still listens on rawURL's port.
func assertClosed(t *testing.T, rawURL string) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", u.Host, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after Run", u.Host)
	}
}

// lockedBuffer is a bytes.Buffer safe to read while Run writes to it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
