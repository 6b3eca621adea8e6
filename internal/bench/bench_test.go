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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clock-app/clock/internal/host"
)

// needTools skips when wrk or nginx is missing, except under CI, where a
// missing tool is a broken setup.
func needTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"wrk", "nginx"} {
		if _, err := host.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not found under CI: %s", tool, installHint)
			}
			t.Skipf("%s not found: %s", tool, installHint)
		}
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
	wantTargets := []string{TargetAPI, TargetBare, TargetWebPage, TargetNginx, TargetWebProxy}
	if len(rep.Results) != len(wantTargets) {
		t.Fatalf("got %d results, want %d", len(rep.Results), len(wantTargets))
	}
	for i, r := range rep.Results {
		if r.Target != wantTargets[i] {
			t.Errorf("result %d: got target %q, want %q", i, r.Target, wantTargets[i])
		}
		if r.RequestsPerSec <= 0 || r.P50 <= 0 || r.P99 < r.P50 || r.MedianPerSec <= 0 || r.MedianPerSec > r.RequestsPerSec {
			t.Errorf("%s: implausible numbers %+v", r.Target, r)
		}
		if r.Errors != 0 {
			t.Errorf("%s: %d errors", r.Target, r.Errors)
		}
		if len(r.Servers) == 0 || r.Servers[0].Peak == 0 || r.Servers[0].Current == 0 {
			t.Errorf("%s: no memory measured: %+v", r.Target, r.Servers)
		}
		if strings.HasPrefix(rep.Pinning, "servers pinned") && (r.Steal < 0 || r.Steal > 1) {
			t.Errorf("%s: steal %v with pinned servers, want a share in [0, 1]", r.Target, r.Steal)
		}
		assertClosed(t, r.URL)
	}
	if len(rep.Checks) != 4 {
		t.Errorf("got %d checks, want 4", len(rep.Checks))
	}
	for _, want := range []string{"req/s", "median req/s", "fastest of 2 rounds", "peak RSS MiB", "steal", TargetNginx, "clock-api peak RSS < 20 MiB", "1 worker"} {
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
	root := t.TempDir()
	for _, p := range []string{"api", "web", "static/index.html"} {
		os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
		os.WriteFile(filepath.Join(root, p), nil, 0o755)
	}
	empty := t.TempDir()
	t.Setenv("PATH", empty)
	r := &runner{}
	err := r.findTools()
	if err == nil {
		t.Skip("wrk and nginx found outside PATH") // lookTool also searches the sbin folders
	}
	if !strings.Contains(err.Error(), "apt-get install wrk nginx-light") {
		t.Errorf("got %q, want the install hint", err)
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
