//go:build integration

// Package release_test runs the release engine (internal/release, what clockctl runs on the
// target) against this machine's Docker with the real images, a poller on the published port
// throughout: the switch, the health gate, rollback and a killed instance, each with its
// count of failed requests. The VM test does the same on the target, slower; this is the
// quick loop. Run it with `go run mage.go test:e2e`.
package release_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clock-app/clock/internal/images"
	"github.com/clock-app/clock/internal/release"
	"github.com/clock-app/clock/internal/verify"
)

// docker is this machine's Docker, through the same Engine API client clockctl uses.
var docker = &release.Socket{Path: release.DockerSocket}

func TestSwitchOnLocalDocker(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	specs := map[string]release.Spec{}
	for _, v := range []string{"switchtest-1", "switchtest-2"} {
		m := images.Meta{Version: v, Revision: "test", Created: "2026-01-01T00:00:00Z"}
		if err := images.BuildAll(ctx, os.Stdout, root, m); err != nil {
			t.Fatal(err)
		}
		specs[v] = release.Spec{Version: v, Replicas: 2,
			API:    release.Image{Ref: "clock-api:" + v, ID: images.ImageID(ctx, "clock-api:"+v)},
			Web:    release.Image{Ref: "clock-web:" + v, ID: images.ImageID(ctx, "clock-web:"+v)},
			APIEnv: map[string]string{"CLOCK_API_LOG_LEVEL": "info"},
		}
	}
	e := engine(t, root)
	t.Cleanup(func() {
		if _, err := e.Stop(context.Background(), "test"); err != nil {
			t.Errorf("stop at cleanup: %v", err)
		}
		_, _ = docker.Run(context.Background(), nil, "image", "rm", release.PodImage)
	})
	req := func(v string) release.Request {
		return release.Request{Spec: specs[v], By: "test@here", HealthTimeout: 30 * time.Second, Keep: 3}
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", e.Settings.WebPort)

	first, err := e.Deploy(ctx, req("switchtest-1"), "deploy")
	if err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	if !first.Changed {
		t.Errorf("first deploy reported no change")
	}
	if _, err := verify.Wait(ctx, base, 5*time.Second); err != nil {
		t.Fatal(err)
	}

	step := func(name string, f func() error) {
		t.Helper()
		p := verify.Poll(base, 4, 50*time.Millisecond) // 80 requests a second
		t0 := time.Now()
		err := f()
		time.Sleep(time.Second) // what follows the step counts too
		st := p.Stop()
		t.Logf("%s: %s in %s; poller: %s", name, map[bool]string{true: "ok", false: "error"}[err == nil], time.Since(t0).Round(100*time.Millisecond), st)
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if st.Failed > 0 {
			t.Errorf("%s: %d of %d requests failed, want 0", name, st.Failed, st.Sent)
		}
	}
	step("switch to switchtest-2", func() error {
		res, err := e.Deploy(ctx, req("switchtest-2"), "deploy")
		if err == nil && (!res.Changed || res.Retired != 4) {
			err = errors.New("want a change that retired 4 instances")
		}
		return err
	})
	live(t, e, "switchtest-2")

	step("unchanged deploy", func() error {
		res, err := e.Deploy(ctx, req("switchtest-2"), "deploy")
		if err == nil && res.Changed {
			err = errors.New("reported a change")
		}
		return err
	})

	bad := req("switchtest-1")
	bad.Spec.Version = "switchtest-bad"
	bad.Spec.APIEnv = map[string]string{"CLOCK_API_LOG_LEVEL": "loud"} // exits 2 at start
	step("unhealthy release", func() error {
		_, err := e.Deploy(ctx, bad, "deploy")
		var ge *release.GateError
		if !errors.As(err, &ge) || !strings.HasPrefix(ge.Instance, "clock-api-") || !strings.Contains(ge.Log, "CLOCK_API_LOG_LEVEL") {
			return errors.New("want a GateError naming a clock-api instance with its log, got: " + errString(err))
		}
		t.Logf("the gate said: %v", err)
		return nil
	})
	live(t, e, "switchtest-2")

	step("rollback", func() error {
		_, err := e.Rollback(ctx, "", "test@here", 30*time.Second, 3)
		return err
	})
	live(t, e, "switchtest-1")

	for _, svc := range []string{"api", "web"} {
		st, err := e.State(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		var victim string
		for _, in := range st.Instances {
			if in.Service == svc {
				victim = in.Name
				break
			}
		}
		p := verify.Poll(base, 4, 50*time.Millisecond)
		// The process, as the OOM killer or a crash would: `docker kill` counts as a manual
		// stop, which the restart policy leaves alone.
		pid, err := docker.Run(ctx, nil, "inspect", "--format", "{{.State.Pid}}", victim)
		if err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("kill", "-9", strings.TrimSpace(pid)).CombinedOutput(); err != nil {
			t.Fatalf("kill -9 %s: %v %s", victim, err, out)
		}
		back := waitRunning(ctx, victim)
		time.Sleep(time.Second)
		stats := p.Stop()
		t.Logf("kill -9 %s: back after %s; poller: %s", victim, back.Round(100*time.Millisecond), stats)
		if stats.Failed > stats.Conns {
			t.Errorf("kill -9 %s: %d failed requests over %d connections, want at most one per connection", victim, stats.Failed, stats.Conns)
		}
	}
	book, err := release.LoadBook(e.Dir)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	book.Print(&b)
	t.Logf("releases:\n%s", b.String())
	audit, _ := os.ReadFile(filepath.Join(e.Dir, "audit.log"))
	if n := strings.Count(string(audit), "\n"); n != 4 {
		t.Errorf("audit log has %d lines, want 4 (deploy, deploy, failed, rollback; an unchanged deploy records nothing):\n%s", n, audit)
	}
}

// engine is the release engine as clockctl runs it, on this machine's Docker, publishing
// on loopback only.
func engine(t *testing.T, root string) *release.Engine {
	exe := filepath.Join(t.TempDir(), "clockctl")
	build := exec.Command("go", "build", "-o", exe, "./deploy/clockctl")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build clockctl: %v\n%s", err, out)
	}
	lim := release.Limits{Memory: "128m", CPUs: 1, Pids: 64, GoMemLimit: "96MiB"}
	return &release.Engine{
		Docker: docker,
		Settings: release.Settings{
			User:        "10001:10001",
			Networks:    release.Networks{Backend: "clock-switchtest-backend", Frontend: "clock-switchtest-frontend"},
			BindAddress: "127.0.0.1", WebPort: freePort(t), WebListenPort: 8080, APIPort: 8000,
			Limits:      map[string]release.Limits{"api": lim, "web": lim},
			StopTimeout: 30, Restart: "unless-stopped", LogMaxSize: "1m", LogMaxFile: "2",
			Health: release.Healthcheck{Interval: "30s", Timeout: "10s", Retries: 3, StartPeriod: "15s"},
		},
		Dir:    t.TempDir(),
		Proc:   os.DirFS("/proc"),
		PodTar: func() (io.Reader, error) { return release.PodTar(exe) },
		Logf:   t.Logf, Now: time.Now, Get: release.HTTPGet,
	}
}

// live checks that every instance runs the release version.
// freePort returns a loopback port nothing listens on now, for Docker to publish: a fixed one
// fails the test whenever anything else on the machine holds it.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func live(t *testing.T, e *release.Engine, version string) {
	t.Helper()
	st, err := e.State(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Live == nil || st.Live.Spec.Version != version {
		t.Errorf("live release %+v, want %s", st.Live, version)
	}
	for _, in := range st.Instances {
		if in.Version != version || in.State != "running" {
			t.Errorf("instance %s runs %s (%s), want only %s running", in.Name, in.Version, in.State, version)
		}
	}
	if len(st.Instances) != 4 {
		t.Errorf("%d instances, want 4", len(st.Instances))
	}
}

func waitRunning(ctx context.Context, name string) time.Duration {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	t0 := time.Now()
	for ctx.Err() == nil {
		out, _ := docker.Run(ctx, nil, "inspect", "--format", "{{.State.Running}} {{.RestartCount}}", name)
		if strings.HasPrefix(out, "true") && !strings.HasPrefix(out, "true 0") {
			return time.Since(t0)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(t0)
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}
