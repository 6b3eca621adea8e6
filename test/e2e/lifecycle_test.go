package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// TestConfigError checks that a bad port is a start-up error: exit code 2 and
// a message naming the variable and its value.
func TestConfigError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		image, env string
	}{
		{apiImage, "CLOCK_API_PORT"},
		{webImage, "CLOCK_WEB_PORT"},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), startTimeout)
			defer cancel()
			c, err := testcontainers.Run(ctx, tt.image,
				testcontainers.WithEnv(map[string]string{tt.env: "abc"}),
				testcontainers.WithHostConfigModifier(hardened),
				testcontainers.WithWaitStrategy(wait.ForExit().WithExitTimeout(30*time.Second)),
			)
			testcontainers.CleanupContainer(t, c)
			if err != nil {
				t.Fatalf("run %s with %s=abc: %v", tt.image, tt.env, err)
			}
			st, err := c.State(ctx)
			if err != nil {
				t.Fatalf("state: %v", err)
			}
			logs, err := containerLogs(ctx, c)
			if err != nil {
				t.Fatalf("logs: %v", err)
			}
			if st.Running || st.ExitCode != 2 {
				t.Errorf("%s=abc: got running=%t exit code %d, want exited with 2; logs:\n%s", tt.env, st.Running, st.ExitCode, logs)
			}
			if !strings.Contains(logs, tt.env) || !strings.Contains(logs, "abc") {
				t.Errorf("%s=abc: got logs %q, want them to name %s and the value %q", tt.env, logs, tt.env, "abc")
			}
		})
	}
}

// TestAPIDown checks that the web fails fast with 502 while the API is gone
// and recovers by itself when the API comes back.
func TestAPIDown(t *testing.T) {
	t.Parallel()
	s := startStack(t)
	if r := get(t, s.web.URL+"/clock"); r.status != http.StatusOK {
		t.Fatalf("GET /clock before the stop: got %s, want status 200", describe(r))
	}

	stopContainer(t, s.api.DockerContainer)
	r := get(t, s.web.URL+"/clock")
	if r.status != http.StatusBadGateway {
		t.Errorf("GET /clock with the API stopped: got %s, want status 502", describe(r))
	}
	if r.elapsed >= time.Second {
		t.Errorf("GET /clock with the API stopped: took %v, want < 1s", r.elapsed)
	}
	if looksLikeInternals(r.body) {
		t.Errorf("GET /clock with the API stopped: body %q leaks upstream details", r.body)
	}
	t.Logf("502 after %v", r.elapsed)

	startContainer(t, s.api.DockerContainer)
	eventually(t, 30*time.Second, func() (bool, string) {
		r, err := tryDo(t.Context(), http.MethodGet, s.web.URL+"/clock")
		if err != nil {
			return false, err.Error()
		}
		return r.status == http.StatusOK, "GET /clock after the restart: got " + describe(r)
	})
	checkEpoch(t, get(t, s.web.URL+"/clock"))
}

// looksLikeInternals reports whether an error body shows the upstream's
// address or Go's dial errors instead of a plain message.
func looksLikeInternals(body string) bool {
	for _, s := range []string{"dial tcp", "clock-api:8000", "no such host", "connection refused"} {
		if strings.Contains(body, s) {
			return true
		}
	}
	return false
}

// TestGracefulShutdown checks that SIGTERM (docker stop) ends each service
// with exit code 0 before docker stop would kill it.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	s := startStack(t)
	// The web first: stopping the API first would leave the web nothing to
	// proxy, which is not what this test is about.
	for _, c := range []struct {
		name string
		c    *testcontainers.DockerContainer
	}{
		{"clock-web", s.web.DockerContainer},
		{"clock-api", s.api.DockerContainer},
	} {
		t.Run(c.name, func(t *testing.T) {
			took := stopContainer(t, c.c)
			st, err := c.c.State(t.Context())
			if err != nil {
				t.Fatalf("state: %v", err)
			}
			if st.Running || st.ExitCode != 0 || st.OOMKilled {
				t.Errorf("%s after SIGTERM: got running=%t exit code %d (OOMKilled %t), want exited with 0", c.name, st.Running, st.ExitCode, st.OOMKilled)
			}
			if took >= stopTimeout {
				t.Errorf("%s after SIGTERM: took %v, want less than docker stop's %v", c.name, took, stopTimeout)
			}
			t.Logf("%s stopped in %v", c.name, took)
		})
	}
}
