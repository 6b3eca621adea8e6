package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
)

// webAttack is the hostile load of TestWebUnderHostileClients: the audit's
// 1,000 connections holding an unfinished 60 KB header line took clock-web
// from 14 to 147 MB, past its limit, in 3.4 s. Each header line here grows by
// 6 KiB every 200 ms, so it is whole after 2 s, inside the web's header
// timeout (READ_HEADER_TIMEOUT), and the connection is dialled again once the
// server drops or answers it.
var webAttack = hostileLoad{
	slowConns:  1000,
	headerLine: 60 << 10,
	chunk:      6 << 10,
	step:       200 * time.Millisecond,
	idleConns:  500,
	duration:   15 * time.Second,
}

const (
	// pollInterval is how often the normal client asks for the clock: more
	// often than the page does (POLL_MS in its script), a busy tab.
	pollInterval = 100 * time.Millisecond
	// sampleEvery is how often the memory is read during the attack.
	sampleEvery = 250 * time.Millisecond
)

// pageScript is the page's script, relative to the repository root: its
// TIMEOUT_MS is how long the page waits for /clock before it shows the clock
// as unreachable.
const pageScript = "services/clock-web/static/app.js"

var pageTimeoutRE = regexp.MustCompile(`\bTIMEOUT_MS\s*=\s*(\d+)\s*;`)

// pageTimeout is the page's own /clock timeout: an answer slower than that
// is a failure for a visitor, so it is one for the normal client too.
func pageTimeout(t *testing.T) time.Duration {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, pageScript))
	if err != nil {
		t.Fatalf("read the page's timeout: %v", err)
	}
	m := pageTimeoutRE.FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s: no `TIMEOUT_MS = <milliseconds>;`; the hostile-client test takes its normal client's timeout from it", pageScript)
	}
	ms, err := strconv.Atoi(string(m[1]))
	if err != nil || ms <= 0 {
		t.Fatalf("%s: TIMEOUT_MS = %s is not a positive number of milliseconds", pageScript, m[1])
	}
	return time.Duration(ms) * time.Millisecond
}

// TestWebUnderHostileClients holds slow partial-header connections and an idle
// keep-alive flood (webAttack) against clock-web, limited as deployed, while a
// normal client polls /clock. The container must not be OOM-killed or
// restarted, its cgroup's peak memory must stay under its limit, and every one
// of the normal client's requests must get the clock within the page's own
// timeout (no failure allowed).
func TestWebUnderHostileClients(t *testing.T) {
	// Not parallel: alone, the memory and latency measured are the web's own,
	// and the load slows no other test.
	s := startStack(t)
	web := s.web
	checkLimitsApplied(t, "clock-web", inspect(t, web.DockerContainer), s.webLimits)
	mem := newMemoryWatch(t, web.DockerContainer)
	before := inspect(t, web.DockerContainer)
	apiBefore := inspect(t, s.api.DockerContainer)

	// The normal client's connection exists before the attack, as a tab's does.
	pollTimeout := pageTimeout(t)
	poller := newClockPoller(web.URL, pollInterval, pollTimeout)
	if _, why := poller.once(t.Context()); why != "" {
		t.Fatalf("GET /clock before the attack: %s", why)
	}
	idle := mem.read(t)
	t.Logf("clock-web with %s; memory before the attack: %s", s.webLimits, idle)

	attack := webAttack
	attack.addr = strings.TrimPrefix(web.URL, "http://")
	load := attack.start(t)
	stopWatch := mem.sampleUntil(t, load.done)
	polled := poller.pollUntil(t, load.done, int(attack.duration/pollInterval)+10)
	stats := load.stop()
	sampled := stopWatch()
	peak, source := mem.peak(t, sampled)

	after := inspect(t, web.DockerContainer)
	limit := uint64(s.webLimits.memory)
	t.Logf("attack for %v: %s", attack.duration, stats)
	if after.State.OOMKilled {
		// The kill came between two samples: the last one is all there is.
		t.Logf("clock-web memory: reached its limit %s and was OOM-killed; the last sample before: usage %s, rss %s",
			mib(limit), mib(sampled.usage), mib(sampled.rss))
	} else {
		t.Logf("clock-web memory: peak %s (%s; limit %s), sampled during the attack: usage up to %s, rss up to %s, limit hits (failcnt) %d",
			mib(peak), source, mib(limit), mib(sampled.usage), mib(sampled.rss), sampled.failcnt)
		if peak >= limit {
			t.Errorf("clock-web peak memory: got %s, want under the deployed limit %s", mib(peak), mib(limit))
		}
	}
	median, slowest := polled.latency()
	t.Logf("normal client: %d of %d GET /clock answered, %d failed; median %v, slowest %v (timeout %v)",
		polled.ok, polled.ok+polled.failed, polled.failed, median.Round(time.Millisecond), slowest.Round(time.Millisecond), pollTimeout)

	checkSurvived(t, "clock-web", before, after)
	checkSurvived(t, "clock-api", apiBefore, inspect(t, s.api.DockerContainer))
	if polled.failed > 0 || polled.ok == 0 {
		t.Errorf("normal client during the attack: got %d of %d GET /clock failed (first: %q), want none", polled.failed, polled.ok+polled.failed, polled.errs)
	}
	// The attack must have reached the server, or the checks above prove nothing.
	if got := stats.slowDials.Load(); got < int64(attack.slowConns) {
		t.Errorf("slow-header connections: got %d dialled, want at least %d", got, attack.slowConns)
	}
	if got := stats.idleDials.Load(); got < int64(attack.idleConns) {
		t.Errorf("idle connections: got %d dialled, want at least %d", got, attack.idleConns)
	}

	// And the web serves new clients again once the attack is over (a dead
	// container is reported above already).
	if !after.State.Running {
		return
	}
	eventually(t, 15*time.Second, func() (bool, string) {
		r, err := tryDo(t.Context(), http.MethodGet, web.URL+"/clock")
		if err != nil {
			return false, "GET /clock after the attack: " + err.Error()
		}
		return r.status == http.StatusOK, "GET /clock after the attack: got " + describe(r)
	})
}

// checkSurvived fails the test if the container was OOM-killed, stopped or
// restarted between the two inspections.
func checkSurvived(t *testing.T, name string, before, after *container.InspectResponse) {
	t.Helper()
	st := after.State
	if st.OOMKilled || !st.Running {
		t.Errorf("%s: got status %q, OOMKilled %t, exit code %d, want running and not OOM-killed", name, st.Status, st.OOMKilled, st.ExitCode)
	}
	if st.StartedAt != before.State.StartedAt || after.RestartCount != before.RestartCount {
		t.Errorf("%s: got started at %s after %d restarts, want the same process as before (started at %s, %d restarts)",
			name, st.StartedAt, after.RestartCount, before.State.StartedAt, before.RestartCount)
	}
}

// memoryWatch reads a container's memory from its cgroup, through the Docker API.
type memoryWatch struct {
	cli *testcontainers.DockerClient
	id  string
}

// memorySample is what one or several reads of the cgroup saw, each the largest seen.
type memorySample struct {
	// usage is the cgroup's charge (what its limit is checked against);
	// maxUsage the kernel's own peak (cgroup v1 only, else 0).
	usage, maxUsage uint64
	// rss is the anonymous memory (the Go heap, stacks) within usage.
	rss     uint64
	failcnt uint64
}

func (m memorySample) String() string {
	return fmt.Sprintf("usage %s, rss %s", mib(m.usage), mib(m.rss))
}

func newMemoryWatch(t *testing.T, c *testcontainers.DockerContainer) *memoryWatch {
	t.Helper()
	cli, err := testcontainers.NewDockerClientWithOpts(t.Context())
	if err != nil {
		t.Fatalf("docker: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return &memoryWatch{cli: cli, id: c.GetContainerID()}
}

func (w *memoryWatch) tryRead(ctx context.Context) (memorySample, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := w.cli.ContainerStats(ctx, w.id, client.ContainerStatsOptions{})
	if err != nil {
		return memorySample{}, err
	}
	defer res.Body.Close()
	var st container.StatsResponse
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		return memorySample{}, fmt.Errorf("decode stats: %w", err)
	}
	ms := st.MemoryStats
	rss := ms.Stats["rss"]             // cgroup v1
	if v, ok := ms.Stats["anon"]; ok { // cgroup v2
		rss = v
	}
	return memorySample{usage: ms.Usage, maxUsage: ms.MaxUsage, rss: rss, failcnt: ms.Failcnt}, nil
}

func (w *memoryWatch) read(t *testing.T) memorySample {
	t.Helper()
	m, err := w.tryRead(t.Context())
	if err != nil {
		t.Fatalf("memory of %s: %v", w.id, err)
	}
	return m
}

// sampleUntil reads the memory every sampleEvery until done is closed; the
// returned function waits for the last read and returns the largest values.
// Sampling is the peak's fallback where the kernel keeps none (cgroup v2
// through Docker 20.10) and shows the rss next to it.
func (w *memoryWatch) sampleUntil(t *testing.T, done <-chan struct{}) func() memorySample {
	t.Helper()
	var (
		wg   sync.WaitGroup
		most memorySample
		errs int
	)
	wg.Go(func() {
		tick := time.NewTicker(sampleEvery)
		defer tick.Stop()
		for {
			// A read can fail while the daemon is busy; the kernel's peak still counts.
			if m, err := w.tryRead(t.Context()); err != nil {
				errs++
			} else {
				most = memorySample{
					usage: max(most.usage, m.usage), maxUsage: max(most.maxUsage, m.maxUsage),
					rss: max(most.rss, m.rss), failcnt: max(most.failcnt, m.failcnt),
				}
			}
			select {
			case <-done:
				return
			case <-t.Context().Done():
				return
			case <-tick.C:
			}
		}
	})
	return func() memorySample {
		wg.Wait()
		if errs > 0 {
			t.Logf("%d memory samples failed", errs)
		}
		return most
	}
}

// peak is the container's peak memory since it started and where it comes
// from: the kernel's own peak when there is one (cgroup v1's
// memory.max_usage_in_bytes, which Docker reports; cgroup v2's memory.peak,
// which it does not, read from the host's cgroup tree when the daemon is
// local), else the largest sample.
func (w *memoryWatch) peak(t *testing.T, sampled memorySample) (uint64, string) {
	t.Helper()
	// A container that has exited (OOM-killed) reports zeros: the samples
	// taken while it ran stand.
	now := w.read(t)
	largest := max(now.usage, sampled.usage)
	if kernel := max(now.maxUsage, sampled.maxUsage); kernel > 0 {
		return max(kernel, largest), "the cgroup's memory.max_usage_in_bytes"
	}
	for _, path := range []string{
		"/sys/fs/cgroup/system.slice/docker-" + w.id + ".scope/memory.peak", // systemd cgroup driver
		"/sys/fs/cgroup/docker/" + w.id + "/memory.peak",                    // cgroupfs driver
	} {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		if kernel, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
			return max(kernel, largest), path
		}
	}
	return largest, fmt.Sprintf("the largest cgroup usage sampled every %v; the cgroup keeps no peak here", sampleEvery)
}

func mib(b uint64) string {
	return units.BytesSize(float64(b))
}
