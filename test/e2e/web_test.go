package e2e

import (
	"math"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/testcontainers/testcontainers-go"
)

// TestStack checks one running stack (API and web, both hardened) through
// the web container and the Docker API. The subtests only read, so they share
// the stack.
func TestStack(t *testing.T) {
	t.Parallel()
	s := startStack(t)

	t.Run("page", func(t *testing.T) {
		r := get(t, s.web.URL+"/")
		if r.status != http.StatusOK {
			t.Fatalf("GET /: got %s, want status 200", describe(r))
		}
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("GET / Content-Type: got %q, want %q", ct, "text/html...")
		}
		for _, id := range []string{"clock-time", "clock-date", "clock-status"} {
			if !hasID(r.body, id) {
				t.Errorf("GET /: no element with id %q in the page", id)
			}
		}
	})

	t.Run("clock", func(t *testing.T) {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			r := do(t, method, s.web.URL+"/clock")
			if r.status != http.StatusOK {
				t.Fatalf("%s /clock: got %s, want status 200", method, describe(r))
			}
			if cc := r.header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("%s /clock Cache-Control: got %q, want %q", method, cc, "no-store")
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("%s /clock Content-Type: got %q, want %q", method, ct, "text/plain; charset=utf-8")
			}
			if method == http.MethodHead {
				continue
			}
			checkEpoch(t, r)
		}
	})

	t.Run("healthz", func(t *testing.T) {
		r := get(t, s.web.URL+"/healthz")
		if r.status != http.StatusOK || strings.TrimSpace(r.body) != "ok" {
			t.Errorf("GET /healthz: got %s, want status 200, body %q", describe(r), "ok")
		}
	})

	t.Run("api-only paths are not proxied", func(t *testing.T) {
		for _, path := range []string{"/metrics", "/metrics/", "/clock/../metrics", "/clock/metrics"} {
			r := get(t, s.web.URL+path)
			if r.status != http.StatusNotFound {
				t.Errorf("GET %s: got %s, want status 404", path, describe(r))
			}
			if looksLikePrometheus(r.body) {
				t.Errorf("GET %s: got Prometheus metrics through the web: %s", path, describe(r))
			}
		}
	})

	t.Run("api is not published", func(t *testing.T) {
		info := inspect(t, s.api.DockerContainer)
		for port, bindings := range info.NetworkSettings.Ports {
			if len(bindings) > 0 {
				t.Errorf("clock-api port %s: got host bindings %v, want none", port, bindings)
			}
		}
	})

	t.Run("hardened", func(t *testing.T) {
		for name, c := range map[string]*testcontainers.DockerContainer{
			"clock-api": s.api.DockerContainer,
			"clock-web": s.web.DockerContainer,
		} {
			checkHardened(t, name, inspect(t, c))
		}
		// Both run that way and still serve: the web answers and reaches the API.
		if r := get(t, s.web.URL+"/clock"); r.status != http.StatusOK {
			t.Errorf("GET /clock from the hardened stack: got %s, want status 200", describe(r))
		}
	})

	t.Run("healthy", func(t *testing.T) {
		for name, c := range map[string]*testcontainers.DockerContainer{
			"clock-api": s.api.DockerContainer,
			"clock-web": s.web.DockerContainer,
		} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				checkHealthy(t, c)
			})
		}
	})
}

// checkEpoch checks a /clock body: seconds since the epoch, like Python's
// print(time.time()), within 2 s of the host clock.
func checkEpoch(t *testing.T, r response) {
	t.Helper()
	now := float64(time.Now().UnixNano()) / 1e9
	got, err := strconv.ParseFloat(strings.TrimSpace(r.body), 64)
	if err != nil {
		t.Fatalf("GET /clock body: got %q, want a float: %v", r.body, err)
	}
	if d := math.Abs(got - now); d > 2 {
		t.Errorf("GET /clock: got %f, want within 2s of the host clock %f (off by %.3fs)", got, now, d)
	}
}

var idAttr = regexp.MustCompile(`\bid\s*=\s*["']?([A-Za-z0-9_-]+)`)

func hasID(html, id string) bool {
	for _, m := range idAttr.FindAllStringSubmatch(html, -1) {
		if m[1] == id {
			return true
		}
	}
	return false
}

func looksLikePrometheus(body string) bool {
	return strings.Contains(body, "# HELP ") || strings.Contains(body, "# TYPE ") ||
		strings.Contains(body, "go_goroutines") || strings.Contains(body, "process_")
}

// checkHardened asserts that the settings from hardened took effect and that
// the image runs as a numeric non-root user.
func checkHardened(t *testing.T, name string, info *container.InspectResponse) {
	t.Helper()
	user := info.Config.User
	uid, _, _ := strings.Cut(user, ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 {
		t.Errorf("%s Config.User: got %q, want a numeric non-zero uid (e.g. %q)", name, user, "65532:65532")
	}
	if !info.HostConfig.ReadonlyRootfs {
		t.Errorf("%s HostConfig.ReadonlyRootfs: got false, want true", name)
	}
	if !slices.ContainsFunc(info.HostConfig.CapDrop, func(c string) bool { return strings.EqualFold(c, "ALL") }) {
		t.Errorf("%s HostConfig.CapDrop: got %q, want it to contain %q", name, info.HostConfig.CapDrop, "ALL")
	}
	if !slices.ContainsFunc(info.HostConfig.SecurityOpt, func(o string) bool { return strings.HasPrefix(o, "no-new-privileges") }) {
		t.Errorf("%s HostConfig.SecurityOpt: got %q, want it to contain %q", name, info.HostConfig.SecurityOpt, "no-new-privileges:true")
	}
	if !info.State.Running {
		t.Errorf("%s State.Status: got %q, want %q", name, info.State.Status, "running")
	}
}

// checkHealthy asserts that the image has a HEALTHCHECK and that the container
// reaches "healthy" within the time its own health-check settings allow.
func checkHealthy(t *testing.T, c *testcontainers.DockerContainer) {
	t.Helper()
	info := inspect(t, c)
	hc := info.Config.Healthcheck
	if hc == nil || len(hc.Test) == 0 || hc.Test[0] == "NONE" {
		t.Fatalf("Config.Healthcheck: got %+v, want a HEALTHCHECK from the image", hc)
	}
	// Docker's defaults for unset fields.
	interval, timeout := orDefault(hc.Interval, 30*time.Second), orDefault(hc.Timeout, 30*time.Second)
	limit := hc.StartPeriod + 2*interval + timeout + 30*time.Second
	t.Logf("HEALTHCHECK %q interval %v, waiting up to %v", hc.Test, interval, limit)

	eventually(t, limit, func() (bool, string) {
		st, err := c.State(t.Context())
		if err != nil {
			return false, err.Error()
		}
		if st.Health == nil {
			return false, "State.Health is nil"
		}
		if st.Health.Status == container.Unhealthy {
			var last string
			if n := len(st.Health.Log); n > 0 {
				last = strings.TrimSpace(st.Health.Log[n-1].Output)
			}
			t.Fatalf("State.Health.Status: got %q (last output %q), want %q", st.Health.Status, last, container.Healthy)
		}
		return st.Health.Status == container.Healthy, "State.Health.Status: got " + string(st.Health.Status)
	})
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}
