package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	dockernetwork "github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"
)

const (
	// apiAlias is the API's name on the test network; the web reaches it by it.
	apiAlias = "clock-api"
	// apiPort and webPort are the ports the images listen on by default.
	apiPort = "8000/tcp"
	webPort = "8080/tcp"

	// startTimeout bounds starting one container, readiness included.
	startTimeout = 2 * time.Minute
	// stopTimeout is what docker stop waits before SIGKILL: larger than the
	// services' SHUTDOWN_TIMEOUT (10s), so a kill means shutdown hung.
	stopTimeout = 20 * time.Second
)

// clockAPI is a running clock-api container, reachable only on the test
// network under apiAlias: it publishes no port.
type clockAPI struct {
	*testcontainers.DockerContainer
}

// clockWeb is a running clock-web container with its port 8080 mapped to a
// random host port.
type clockWeb struct {
	*testcontainers.DockerContainer
	// URL is the web's base URL on the host, without a trailing slash.
	URL string
}

// stack is one API and one web on their own network, as in production.
type stack struct {
	api *clockAPI
	web *clockWeb
	// apiLimits and webLimits are the limits the containers run with: the
	// deployed ones.
	apiLimits, webLimits limits
}

// startStack starts a network, the API on it and the web pointing at the API,
// each with the memory, pids and CPU limits and GOMEMLIMIT the role deploys.
func startStack(t *testing.T) stack {
	t.Helper()
	s := stack{apiLimits: deployedLimits(t, "clock-api"), webLimits: deployedLimits(t, "clock-web")}
	nw := newNetwork(t)
	s.api = startClockAPI(t, nw, s.apiLimits)
	s.web = startClockWeb(t, nw, s.webLimits)
	return s
}

func newNetwork(t *testing.T) *testcontainers.DockerNetwork {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	nw, err := network.New(ctx)
	testcontainers.CleanupNetwork(t, nw)
	if err != nil {
		t.Fatalf("create network: %v", err)
	}
	return nw
}

// servesHealthz waits until the container answers /healthz on port: the images are FROM
// scratch, so no strategy that needs a shell inside would work.
func servesHealthz(port string) wait.Strategy {
	return wait.ForHTTP("/healthz").WithPort(port).WithPollInterval(200 * time.Millisecond).WithStartupTimeout(time.Minute)
}

// hardened runs a container the way production should: read-only root
// filesystem, no capabilities, no privilege escalation.
func hardened(hc *container.HostConfig) {
	hc.ReadonlyRootfs = true
	hc.CapDrop = []string{"ALL"}
	hc.SecurityOpt = append(hc.SecurityOpt, "no-new-privileges:true")
}

// apiReady waits for the API through its own health-check mode: the API
// publishes no port and a scratch image has no shell.
func apiReady() wait.Strategy {
	return wait.ForExec([]string{"/clock-api", "healthcheck"}).
		WithPollInterval(200 * time.Millisecond).
		WithStartupTimeout(time.Minute)
}

func startClockAPI(t *testing.T, nw *testcontainers.DockerNetwork, lim limits) *clockAPI {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), startTimeout)
	defer cancel()
	name := createUnpublished(t, ctx, apiImage, nw, apiAlias, lim)
	// Reuse adopts the container created above by its name, then starts it and
	// waits for it like any other.
	ctr, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{Name: name, Image: apiImage, WaitingFor: apiReady()},
		Started:          true,
		Reuse:            true,
	})
	testcontainers.CleanupContainer(t, ctr)
	c, _ := ctr.(*testcontainers.DockerContainer)
	dumpLogsOnFailure(t, "clock-api", c)
	if err != nil {
		t.Fatalf("start clock-api: %v", err)
	}
	return &clockAPI{DockerContainer: c}
}

// createUnpublished creates (without starting) a hardened container with
// limits lim on nw that publishes no port, and returns its name. testcontainers maps every
// port an image EXPOSEs when the request names none, so the API container is
// created through the Docker API instead.
func createUnpublished(t *testing.T, ctx context.Context, image string, nw *testcontainers.DockerNetwork, alias string, lim limits) string {
	t.Helper()
	provider, err := testcontainers.NewDockerProvider()
	if err != nil {
		t.Fatalf("docker: %v", err)
	}
	defer provider.Close()
	hc := &container.HostConfig{}
	hardened(hc)
	lim.hostConfig(hc)
	var env []string
	for k, v := range lim.env() {
		env = append(env, k+"="+v)
	}
	name := alias + "-e2e-" + strings.ToLower(rand.Text()[:12])
	res, err := provider.Client().ContainerCreate(ctx, client.ContainerCreateOptions{
		Config:     &container.Config{Image: image, Env: env, Labels: testcontainers.GenericLabels()},
		HostConfig: hc,
		NetworkingConfig: &dockernetwork.NetworkingConfig{EndpointsConfig: map[string]*dockernetwork.EndpointSettings{
			nw.Name: {Aliases: []string{alias}},
		}},
		Name: name,
	})
	if err != nil {
		t.Fatalf("create %s: %v", image, err)
	}
	// A safety net if adopting the container fails; normally
	// CleanupContainer has removed it by then.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		provider, err := testcontainers.NewDockerProvider()
		if err != nil {
			t.Errorf("docker: %v", err)
			return
		}
		defer provider.Close()
		_, err = provider.Client().ContainerRemove(ctx, res.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !isNotFound(err) {
			t.Errorf("remove %s: %v", name, err)
		}
	})
	return name
}

func startClockWeb(t *testing.T, nw *testcontainers.DockerNetwork, lim limits) *clockWeb {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), startTimeout)
	defer cancel()
	c, err := testcontainers.Run(ctx, webImage,
		network.WithNetwork([]string{"clock-web"}, nw),
		testcontainers.WithEnv(lim.env()),
		testcontainers.WithEnv(map[string]string{
			"CLOCK_WEB_API_URL": "http://" + apiAlias + ":" + strings.TrimSuffix(apiPort, "/tcp"),
		}),
		testcontainers.WithExposedPorts(webPort),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hardened(hc)
			lim.hostConfig(hc)
		}),
		testcontainers.WithWaitStrategy(servesHealthz(webPort)),
	)
	testcontainers.CleanupContainer(t, c)
	dumpLogsOnFailure(t, "clock-web", c)
	if err != nil {
		t.Fatalf("start clock-web: %v", err)
	}
	url, err := c.PortEndpoint(ctx, webPort, "http")
	if err != nil {
		t.Fatalf("clock-web endpoint: %v", err)
	}
	return &clockWeb{DockerContainer: c, URL: url}
}

// dumpLogsOnFailure logs the container's output when the test fails. It is
// registered after CleanupContainer so that it runs first (cleanups are LIFO).
func dumpLogsOnFailure(t *testing.T, name string, c *testcontainers.DockerContainer) {
	t.Helper()
	t.Cleanup(func() {
		if !t.Failed() || c == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		logs, err := containerLogs(ctx, c)
		if err != nil {
			t.Logf("%s logs: %v", name, err)
			return
		}
		t.Logf("%s logs:\n%s", name, lastLines(logs, failureLogLines))
	})
}

// failureLogLines bounds the log shown for a failed test: a test under load
// makes thousands of access-log lines, and the cause is at the end.
const failureLogLines = 60

// lastLines is the last n lines of s, with a note of how many were left out.
func lastLines(s string, n int) string {
	lines := strings.SplitAfter(strings.TrimSuffix(s, "\n"), "\n")
	if len(lines) <= n {
		return s
	}
	return fmt.Sprintf("(%d earlier lines left out)\n", len(lines)-n) + strings.Join(lines[len(lines)-n:], "")
}

func containerLogs(ctx context.Context, c *testcontainers.DockerContainer) (string, error) {
	rc, err := c.Logs(ctx)
	if err != nil {
		return "", err
	}
	return readAll(rc)
}

func inspect(t *testing.T, c *testcontainers.DockerContainer) *container.InspectResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	info, err := c.Inspect(ctx)
	if err != nil {
		t.Fatalf("inspect: %v", err)
	}
	return info
}

// stopContainer sends SIGTERM (docker stop) and waits up to stopTimeout for the exit.
func stopContainer(t *testing.T, c *testcontainers.DockerContainer) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), stopTimeout+30*time.Second)
	defer cancel()
	timeout := stopTimeout
	began := time.Now()
	if err := c.Stop(ctx, &timeout); err != nil {
		t.Fatalf("stop: %v", err)
	}
	return time.Since(began)
}

func startContainer(t *testing.T, c *testcontainers.DockerContainer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), startTimeout)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
}

// response is what the tests look at in an HTTP answer.
type response struct {
	status  int
	header  http.Header
	body    string
	elapsed time.Duration
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

func get(t *testing.T, url string) response {
	t.Helper()
	return do(t, http.MethodGet, url)
}

func do(t *testing.T, method, url string) response {
	t.Helper()
	r, err := tryDo(t.Context(), method, url)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return r
}

func tryDo(ctx context.Context, method, url string) (response, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return response{}, err
	}
	began := time.Now()
	resp, err := httpClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b), elapsed: time.Since(began)}, nil
}

// eventually polls cond until it reports done or timeout passes, then fails
// the test with cond's last explanation.
func eventually(t *testing.T, timeout time.Duration, cond func() (done bool, why string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		done, why := cond()
		if done {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("not true after %v: %s", timeout, why)
		case <-tick.C:
		}
	}
}

func describe(r response) string {
	body := r.body
	if len(body) > 200 {
		body = body[:200] + "..."
	}
	return fmt.Sprintf("status %d, body %q", r.status, strings.TrimSpace(body))
}
