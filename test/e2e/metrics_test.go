package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/testcontainers/testcontainers-go"
)

// metricsFlood is how many requests TestAPIMetricsCardinality sends, each
// with its own method token and path.
const metricsFlood = 3000

// TestAPIMetricsCardinality sends metricsFlood requests with distinct methods
// and paths to clock-api and checks that /metrics gains no series: every label
// must take its values from a fixed set, or any client can grow the scrape and
// the API's memory without bound.
func TestAPIMetricsCardinality(t *testing.T) {
	t.Parallel()
	lim := deployedLimits(t, "clock-api")
	api, url := startPublishedAPI(t, lim)
	mem := newMemoryWatch(t, api)
	cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 8}}

	// One request of each kind the flood sends, so that the series a bounded
	// label set has for them exist before the first count.
	warmUp := []struct{ method, path string }{
		{http.MethodGet, "/clock"}, {http.MethodHead, "/clock"}, {http.MethodGet, "/healthz"},
		{http.MethodGet, "/metrics"}, {http.MethodGet, "/warm-up"},
		{"WARMUP", "/clock"}, {"WARMUP", "/warm-up"},
	}
	for _, r := range warmUp {
		if _, err := send(t.Context(), cl, r.method, url+r.path); err != nil {
			t.Fatalf("warm-up %s %s: %v", r.method, r.path, err)
		}
	}
	before, beforeSize := scrape(t, cl, url)
	memBefore := mem.read(t)

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	failed := floodDistinct(ctx, cl, url, metricsFlood)
	if failed > 0 {
		t.Errorf("flood: %d of %d requests got no answer", failed, metricsFlood)
	}

	after, afterSize := scrape(t, cl, url)
	memAfter := mem.read(t)
	// New series counted by metric name, for the message.
	added, total, example := map[string]int{}, 0, ""
	for s := range after {
		if !before[s] {
			name, _, _ := strings.Cut(s, "{")
			added[name]++
			total++
			if example == "" || s < example {
				example = s
			}
		}
	}
	t.Logf("/metrics after the warm-up: %d series, %d bytes; after %d requests with distinct methods and paths: %d series, %d bytes",
		len(before), beforeSize, metricsFlood, len(after), afterSize)
	t.Logf("clock-api memory: %s after the warm-up, %s after the flood and a scrape", memBefore, memAfter)
	if total > 0 {
		var byName []string
		for _, name := range slices.Sorted(maps.Keys(added)) {
			byName = append(byName, fmt.Sprintf("%d %s", added[name], name))
		}
		t.Errorf("/metrics after %d requests with distinct methods and paths: got %d new series (%s; e.g. %s), want none",
			metricsFlood, total, strings.Join(byName, ", "), example)
	}
}

// floodDistinct sends n requests to base, request i with method Xi and, in
// turn, the route /clock, the unmatched path /flood/i, or both the unmatched
// path and GET, and returns how many got no HTTP answer.
func floodDistinct(ctx context.Context, cl *http.Client, base string, n int) int {
	const workers = 8
	var (
		mu     sync.Mutex
		failed int
		wg     sync.WaitGroup
		next   = make(chan int)
	)
	for range workers {
		wg.Go(func() {
			for i := range next {
				method, path := "X"+strconv.Itoa(i), "/flood/"+strconv.Itoa(i)
				switch i % 3 {
				case 0:
					path = "/clock"
				case 1:
					method = http.MethodGet
				}
				if _, err := send(ctx, cl, method, base+path); err != nil {
					mu.Lock()
					failed++
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return failed
}

// send makes one request, reads the answer and returns its status.
func send(ctx context.Context, cl *http.Client, method, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := cl.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}

// scrape reads base/metrics and returns its series (name and labels, without
// the value) and the size of the scrape.
func scrape(t *testing.T, cl *http.Client, base string) (map[string]bool, int) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: got status %d, want 200", resp.StatusCode)
	}
	series := map[string]bool{}
	size := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		size += len(line) + 1
		if id := seriesID(line); id != "" {
			series[id] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read /metrics: %v", err)
	}
	if len(series) == 0 {
		t.Fatalf("GET /metrics: no series in %d bytes", size)
	}
	return series, size
}

// seriesID is a sample line's series, its name and labels, or "" for a
// comment or blank line of the Prometheus text format.
func seriesID(line string) string {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") {
		return ""
	}
	if i := strings.LastIndexByte(line, '}'); i >= 0 && strings.IndexByte(line, '{') >= 0 {
		return line[:i+1]
	}
	name, _, _ := strings.Cut(line, " ")
	return name
}

// startPublishedAPI runs clock-api alone with its port mapped to the host,
// hardened and limited as deployed, and returns it and its base URL: the
// metrics are the API's own, never reached through the web.
func startPublishedAPI(t *testing.T, lim limits) (*testcontainers.DockerContainer, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), startTimeout)
	defer cancel()
	c, err := testcontainers.Run(ctx, apiImage,
		testcontainers.WithEnv(lim.env()),
		testcontainers.WithExposedPorts(apiPort),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hardened(hc)
			lim.hostConfig(hc)
		}),
		testcontainers.WithWaitStrategy(servesHealthz(apiPort)),
	)
	testcontainers.CleanupContainer(t, c)
	dumpLogsOnFailure(t, "clock-api", c)
	if err != nil {
		t.Fatalf("start clock-api: %v", err)
	}
	checkLimitsApplied(t, "clock-api", inspect(t, c), lim)
	url, err := c.PortEndpoint(ctx, apiPort, "http")
	if err != nil {
		t.Fatalf("clock-api endpoint: %v", err)
	}
	return c, url
}
