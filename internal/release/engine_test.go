package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// flagValues are the values that follow each flag in args, in order.
func flagValues(args []string, flag string) []string {
	var out []string
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag {
			out = append(out, args[i+1])
		}
	}
	return out
}

// wantFlag reports unless flag appears in args followed by value.
func wantFlag(t *testing.T, what string, args []string, flag, value string) {
	t.Helper()
	if !slices.Contains(flagValues(args, flag), value) {
		t.Errorf("%s: no %s %s in %q", what, flag, value, args)
	}
}

func TestSettingsInstanceArgs(t *testing.T) {
	set, spec := testSettings(), testSpec()
	h := Hash(spec, set)
	for _, tt := range []struct {
		svc     Service
		image   string
		memory  string
		cpus    string // the service's share over 2 replicas
		pids    string
		env     []string
		missing []string // env prefixes it must not have
	}{
		{API, apiID, "256m", "0.250", "64",
			[]string{"CLOCK_API_REUSE_PORT=true", "CLOCK_API_PORT=8090", "GOMEMLIMIT=200MiB", "CLOCK_API_LOG_LEVEL=info", "CLOCK_API_TZ=UTC"},
			[]string{"CLOCK_WEB_"}},
		{Web, webID, "128m", "0.125", "32",
			[]string{"CLOCK_WEB_REUSE_PORT=true", "CLOCK_WEB_PORT=8081", "CLOCK_WEB_API_URL=http://clock-api:8090", "CLOCK_WEB_PROXY_DIAL_TIMEOUT=2s", "GOMEMLIMIT=100MiB", "CLOCK_WEB_TITLE=Clock"},
			[]string{"CLOCK_API_"}},
	} {
		what := string(tt.svc) + " instance"
		args := set.instanceArgs(spec, h, tt.svc, 2)
		if args[0] != "run" || !slices.Contains(args, "--detach") {
			t.Errorf("%s: args %q, want a detached docker run", what, args)
		}
		if got := args[len(args)-1]; got != tt.image {
			t.Errorf("%s: last arg = %q, want the image ID %s: a release runs by ID, never by a tag that may move", what, got, tt.image)
		}
		wantFlag(t, what, args, "--name", fmt.Sprintf("clock-%s-%s-2", tt.svc, h))
		wantFlag(t, what, args, "--network", "container:clock-"+string(tt.svc)+"-pod")
		// Hardening (issue #3).
		if !slices.Contains(args, "--read-only") {
			t.Errorf("%s: no --read-only in %q", what, args)
		}
		wantFlag(t, what, args, "--cap-drop", "ALL")
		wantFlag(t, what, args, "--security-opt", "no-new-privileges:true")
		wantFlag(t, what, args, "--user", "10001:10001")
		wantFlag(t, what, args, "--restart", "unless-stopped")
		wantFlag(t, what, args, "--log-driver", "json-file")
		wantFlag(t, what, args, "--log-opt", "max-size=10m")
		wantFlag(t, what, args, "--log-opt", "max-file=3")
		// Limits.
		wantFlag(t, what, args, "--memory", tt.memory)
		wantFlag(t, what, args, "--cpus", tt.cpus)
		wantFlag(t, what, args, "--pids-limit", tt.pids)
		wantFlag(t, what, args, "--stop-timeout", "30")
		wantFlag(t, what, args, "--health-interval", "10s")
		wantFlag(t, what, args, "--health-timeout", "5s")
		wantFlag(t, what, args, "--health-retries", "3")
		wantFlag(t, what, args, "--health-start-period", "30s")
		// Labels the engine finds its instances by.
		wantFlag(t, what, args, "--label", "clock.role=instance")
		wantFlag(t, what, args, "--label", "clock.service="+string(tt.svc))
		wantFlag(t, what, args, "--label", "clock.config-hash="+h)
		wantFlag(t, what, args, "--label", "clock.version=1.4.2")
		// Environment.
		env := flagValues(args, "--env")
		for _, kv := range tt.env {
			if !slices.Contains(env, kv) {
				t.Errorf("%s: env %q lacks %s", what, env, kv)
			}
		}
		for _, kv := range env {
			for _, p := range tt.missing {
				if strings.HasPrefix(kv, p) {
					t.Errorf("%s: env has %s, want none of the other service's", what, kv)
				}
			}
		}
		if !slices.IsSorted(env) {
			t.Errorf("%s: env %q is not sorted; the same release must give the same args", what, env)
		}
	}
}

// TestSettingsInstanceArgsEngineOwnsPorts: a spec cannot move the ports the pods publish and
// the gate looks at, nor turn off port sharing, which the zero-downtime switch relies on.
func TestSettingsInstanceArgsEngineOwnsPorts(t *testing.T) {
	set, spec := testSettings(), testSpec()
	spec.APIEnv = map[string]string{"CLOCK_API_PORT": "1", "CLOCK_API_REUSE_PORT": "false"}
	spec.WebEnv = map[string]string{"CLOCK_WEB_PORT": "1", "CLOCK_WEB_API_URL": "http://elsewhere:1", "CLOCK_WEB_REUSE_PORT": "false"}
	h := Hash(spec, set)
	for _, tt := range []struct {
		svc  Service
		want map[string]string
	}{
		{API, map[string]string{"CLOCK_API_PORT": "8090", "CLOCK_API_REUSE_PORT": "true"}},
		{Web, map[string]string{"CLOCK_WEB_PORT": "8081", "CLOCK_WEB_API_URL": "http://clock-api:8090", "CLOCK_WEB_REUSE_PORT": "true"}},
	} {
		env := flagValues(set.instanceArgs(spec, h, tt.svc, 1), "--env")
		for k, v := range tt.want {
			var got []string
			for _, kv := range env {
				if strings.HasPrefix(kv, k+"=") {
					got = append(got, strings.TrimPrefix(kv, k+"="))
				}
			}
			if len(got) != 1 || got[0] != v {
				t.Errorf("%s: %s = %q with the spec setting it otherwise, want exactly %q: the engine owns it", tt.svc, k, got, v)
			}
		}
	}
}

func TestSettingsPodArgs(t *testing.T) {
	set := testSettings()
	for _, tt := range []struct {
		svc        Service
		network    string
		alias      string
		publish    string
		notPublish bool
	}{
		{svc: API, network: "clock-backend", alias: "clock-api", notPublish: true},
		{svc: Web, network: "clock-frontend", publish: "0.0.0.0:8080:8081"},
	} {
		what := string(tt.svc) + " pod"
		args := set.podArgs(tt.svc)
		wantFlag(t, what, args, "--name", "clock-"+string(tt.svc)+"-pod")
		wantFlag(t, what, args, "--network", tt.network)
		wantFlag(t, what, args, "--sysctl", "net.ipv4.tcp_migrate_req=1")
		wantFlag(t, what, args, "--label", "clock.role=pod")
		wantFlag(t, what, args, "--label", "clock.service="+string(tt.svc))
		wantFlag(t, what, args, "--label", "clock.pod-hash="+hashArgs(args[:len(args)-4]))
		wantFlag(t, what, args, "--cap-drop", "ALL")
		wantFlag(t, what, args, "--user", "10001:10001")
		if !slices.Contains(args, "--read-only") {
			t.Errorf("%s: no --read-only in %q", what, args)
		}
		if got := args[len(args)-2:]; got[0] != PodImage || got[1] != "pause" {
			t.Errorf("%s: ends with %q, want %s pause", what, got, PodImage)
		}
		if tt.alias != "" {
			wantFlag(t, what, args, "--network-alias", tt.alias)
		} else if a := flagValues(args, "--network-alias"); len(a) != 0 {
			t.Errorf("%s: --network-alias %q, want none: only the API pod is clock-api", what, a)
		}
		if tt.notPublish {
			if p := flagValues(args, "--publish"); len(p) != 0 {
				t.Errorf("%s: --publish %q, want none: the API is reachable only on the internal backend", what, p)
			}
		} else {
			wantFlag(t, what, args, "--publish", tt.publish)
		}
	}
	// A new published port replaces the web pod, and only it.
	moved := testSettings()
	moved.WebPort = 9080
	if podHash(moved, Web) == podHash(set, Web) {
		t.Errorf("web pod hash unchanged after the web port moved, want a new one: the pod must be recreated to publish it")
	}
	if podHash(moved, API) != podHash(set, API) {
		t.Errorf("API pod hash changed with the web port, want the same: replacing the API pod drops its connections for nothing")
	}
}

// podHash is the label the engine compares a running pod against.
func podHash(set Settings, svc Service) string {
	args := set.podArgs(svc)
	return hashArgs(args[:len(args)-4])
}

// fakeDocker records each docker command and answers it with answer (nil: empty, no error).
type fakeDocker struct {
	mu     sync.Mutex
	calls  [][]string
	stdins []string // what each call read from its stdin, "" for none
	answer func(args []string) (string, error)
	logs   map[string]string
	logged []string // names Logs was asked for
}

func (d *fakeDocker) Run(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	in := ""
	if stdin != nil {
		b, err := io.ReadAll(stdin)
		if err != nil {
			return "", err
		}
		in = string(b)
	}
	d.mu.Lock()
	d.calls = append(d.calls, slices.Clone(args))
	d.stdins = append(d.stdins, in)
	d.mu.Unlock()
	if d.answer == nil {
		return "", nil
	}
	return d.answer(args)
}

func (d *fakeDocker) Logs(ctx context.Context, name string, lines int) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.logged = append(d.logged, name)
	return d.logs[name], nil
}

// ran are the calls that start with prefix.
func (d *fakeDocker) ran(prefix ...string) [][]string {
	var out [][]string
	for _, c := range d.calls {
		if len(c) >= len(prefix) && slices.Equal(c[:len(prefix)], prefix) {
			out = append(out, c)
		}
	}
	return out
}

// callIndex is the index of the first call starting with prefix that names name, or -1.
func (d *fakeDocker) callIndex(name string, prefix ...string) int {
	for i, c := range d.calls {
		if len(c) >= len(prefix) && slices.Equal(c[:len(prefix)], prefix) && slices.Contains(c, name) {
			return i
		}
	}
	return -1
}

// target is a scripted Docker host: both networks, the pod image and both pods as set
// wants them, the instances ps lists, and what inspect says of each instance.
type target struct {
	set   Settings
	ps    []container
	state map[string]string // instance name to "status pid restarts exitcode"
}

func (tg *target) answer(args []string) (string, error) {
	switch {
	case len(args) >= 2 && args[0] == "network" && args[1] == "ls":
		return tg.set.Networks.Backend + "\n" + tg.set.Networks.Frontend + "\nbridge\n", nil
	case len(args) >= 2 && args[0] == "image" && args[1] == "inspect":
		return "sha256:" + strings.Repeat("0", 64) + "\n", nil
	case args[0] == "ps" && slices.Contains(args, "label=clock.role"):
		return psRows(tg.set, tg.ps, "running", "running"), nil
	case args[0] == "inspect" && strings.HasPrefix(args[2], "{{.Name}}"):
		var b strings.Builder
		for _, n := range args[3:] {
			st, ok := tg.state[n]
			if !ok {
				return "", fmt.Errorf("docker inspect: Error: No such object: %s", n)
			}
			fmt.Fprintf(&b, "/%s %s\n", n, st)
		}
		return b.String(), nil
	case args[0] == "run":
		return strings.Repeat("f", 64) + "\n", nil
	}
	return "", nil
}

// psRows is what `docker ps` lists: both pods (in the given states, as set wants them) and
// the instances.
func psRows(set Settings, instances []container, apiPod, webPod string) string {
	var b strings.Builder
	for svc, st := range map[Service]string{API: apiPod, Web: webPod} {
		if st != "" {
			fmt.Fprintf(&b, "%s\tpod\t%s\t\t\t%s\t%s\n", podName(svc), svc, podHash(set, svc), st)
		}
	}
	for _, c := range instances {
		fmt.Fprintf(&b, "%s\tinstance\t%s\t%s\t%s\t\t%s\n", c.name, c.service, c.hash, c.version, c.state)
	}
	return b.String()
}

// instancesOf are the ps rows of a release's instances, all running.
func instancesOf(h, version string, replicas int) []container {
	var cs []container
	for _, svc := range Services {
		for n := 1; n <= replicas; n++ {
			cs = append(cs, container{name: instanceName(svc, h, n), service: svc, hash: h, version: version, state: "running"})
		}
	}
	return cs
}

// testEngine is an Engine on d, with its book in a new folder and proc as /proc.
func testEngine(t *testing.T, d Docker, proc procFS) (*Engine, *[]string) {
	var gets []string
	var mu sync.Mutex
	return &Engine{
		Docker:   d,
		Settings: testSettings(),
		Dir:      t.TempDir(),
		Proc:     proc,
		PodTar:   func() (io.Reader, error) { return strings.NewReader("pod tar"), nil },
		Now:      time.Now,
		Get: func(ctx context.Context, url string) error {
			mu.Lock()
			defer mu.Unlock()
			gets = append(gets, url)
			return nil
		},
		Logf: t.Logf,
	}, &gets
}

// oldRelease is the release live before the tests' deploys.
func oldRelease() Record {
	s := testSpec()
	s.Version, s.API, s.Web = "1.4.1", Image{Ref: "clock-api:1.4.1", ID: oldAPIID}, Image{Ref: "clock-web:1.4.1", ID: oldWebID}
	return Record{Spec: s, Hash: Hash(s, testSettings()), State: StateLive, By: "op@host", DeployedAt: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func saveBook(t *testing.T, dir string, recs ...Record) {
	t.Helper()
	if err := (&Book{Releases: recs}).Save(dir); err != nil {
		t.Fatal(err)
	}
}

func TestEngineDeployUnchanged(t *testing.T) {
	spec := testSpec()
	h := Hash(spec, testSettings())
	tg := &target{set: testSettings(), ps: instancesOf(h, spec.Version, spec.Replicas)}
	d := &fakeDocker{answer: tg.answer}
	e, gets := testEngine(t, d, procFS{})
	live := Record{Spec: spec, Hash: h, State: StateLive, By: "op@host", DeployedAt: time.Now().UTC()}
	saveBook(t, e.Dir, live, oldRelease())

	res, err := e.Deploy(context.Background(), Request{Spec: spec, By: "op@host", HealthTimeout: 5 * time.Second, Keep: 3}, "deploy")
	if err != nil {
		t.Fatalf("Deploy of the live release = %v, want nil", err)
	}
	if res.Changed || res.Hash != h || res.Version != spec.Version {
		t.Errorf("Deploy = %+v, want Changed=false for %s (%s): it is live with every instance running", res, spec.Version, h)
	}
	if runs := d.ran("run"); len(runs) != 0 {
		t.Errorf("Deploy of the live release ran %q, want no docker run", runs)
	}
	if n := len(d.ran("stop")) + len(d.ran("rm")); n != 0 {
		t.Errorf("Deploy of the live release stopped or removed containers (%d calls), want none", n)
	}
	if len(*gets) != 0 {
		t.Errorf("Deploy of the live release fetched %q, want nothing", *gets)
	}
	if want := []string{"clock-api:1.4.2", "clock-web:1.4.2", "clock-api:1.4.1", "clock-web:1.4.1"}; !slices.Equal(res.Kept, want) {
		t.Errorf("Kept = %q, want %q: the refs of every kept release", res.Kept, want)
	}
}

// TestEngineDeployNotAllRunning: the same hash is live but an instance is missing, so the
// release is not "unchanged": Deploy must start it again.
func TestEngineDeployNotAllRunning(t *testing.T) {
	spec := testSpec()
	h := Hash(spec, testSettings())
	tg := &target{set: testSettings(), ps: instancesOf(h, spec.Version, spec.Replicas)[1:]} // clock-api-h-1 is gone
	// The new attempt's first instance exits at once, which ends the test quickly.
	tg.state = map[string]string{instanceName(API, h, 1): "exited 0 0 1", instanceName(API, h, 2): "running 102 0 0"}
	d := &fakeDocker{answer: tg.answer}
	e, _ := testEngine(t, d, procFS{})
	saveBook(t, e.Dir, Record{Spec: spec, Hash: h, State: StateLive, By: "op@host", DeployedAt: time.Now().UTC()})
	res, _ := e.Deploy(context.Background(), Request{Spec: spec, By: "op@host", HealthTimeout: 5 * time.Second, Keep: 3}, "deploy")
	if !res.Changed {
		t.Errorf("Deploy with %d of %d instances = Changed false, want true: a missing instance must be started again", len(tg.ps), 2*spec.Replicas)
	}
	if len(d.ran("run")) == 0 {
		t.Errorf("Deploy with a missing instance ran no docker run, want the release started again")
	}
}

func TestEngineDeployGateFailure(t *testing.T) {
	spec := testSpec()
	set := testSettings()
	h := Hash(spec, set)
	old := oldRelease()
	oldNames := names(instancesOf(old.Hash, old.Spec.Version, old.Spec.Replicas), func(container) bool { return true })
	bad := instanceName(API, h, 1)
	tg := &target{
		set: set,
		ps:  instancesOf(old.Hash, old.Spec.Version, old.Spec.Replicas),
		state: map[string]string{
			bad:                     "exited 0 0 2",
			instanceName(API, h, 2): "running 102 0 0",
			instanceName(Web, h, 1): "running 201 0 0",
			instanceName(Web, h, 2): "running 202 0 0",
		},
	}
	d := &fakeDocker{answer: tg.answer, logs: map[string]string{bad: "clock-api: CLOCK_API_TZ: unknown time zone"}}
	e, gets := testEngine(t, d, newProc(102, tcpHeader+tcpRow(0, 8090, "0A", 555), tcp6Header, map[string]string{"3": "socket:[555]"}))
	saveBook(t, e.Dir, old)

	res, err := e.Deploy(context.Background(), Request{Spec: spec, By: "op@laptop", HealthTimeout: 5 * time.Second, Keep: 3}, "deploy")
	var ge *GateError
	if !errors.As(err, &ge) {
		t.Fatalf("Deploy with an instance that exits = %v (%T), want a *GateError", err, err)
	}
	if ge.Instance != bad || !strings.Contains(ge.Why, "exited with status 2") || ge.Version != spec.Version {
		t.Errorf("GateError = %+v, want instance %s that exited with status 2 in %s", ge, bad, spec.Version)
	}
	if ge.Log != "clock-api: CLOCK_API_TZ: unknown time zone" {
		t.Errorf("GateError.Log = %q, want the instance's docker logs", ge.Log)
	}
	if !strings.Contains(err.Error(), "the live release keeps serving") || !strings.Contains(err.Error(), ge.Log) {
		t.Errorf("error %q, want it to say the live release keeps serving and show the log", err)
	}
	if !res.Changed {
		t.Errorf("Result.Changed = false, want true: a switch was attempted")
	}

	// The new instances are gone: both API instances were started, and removed; no web
	// instance started after the API failed its gate.
	if runs := d.ran("run"); len(runs) != 2 {
		t.Errorf("docker run calls = %d, want 2: the API's instances, and no web instance after the API failed", len(runs))
	}
	rms := d.ran("rm", "--force")
	if len(rms) == 0 {
		t.Fatalf("no docker rm --force; want the new instances removed (calls: %q)", d.calls)
	}
	for _, n := range []string{bad, instanceName(API, h, 2)} {
		if d.callIndex(n, "rm", "--force") < 0 {
			t.Errorf("no docker rm --force of %s, want every new instance removed (rm calls: %q)", n, rms)
		}
	}
	// The old ones were not touched.
	for _, n := range oldNames {
		for _, c := range d.calls {
			if (c[0] == "stop" || c[0] == "rm") && slices.Contains(c, n) {
				t.Errorf("docker %q touched %s of the live release, want it left serving", c, n)
			}
		}
	}
	if len(*gets) != 0 {
		t.Errorf("fetched %q, want no end-to-end check of a release that failed its gate", *gets)
	}

	book, err := LoadBook(e.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(book.Releases) != 2 {
		t.Fatalf("book on disk = %v, want the failed release and the live one", summary(book))
	}
	if f := book.Releases[0]; f.State != StateFailed || f.Hash != h || f.By != "op@laptop" || !strings.Contains(f.Note, bad) {
		t.Errorf("book's newest record = %+v, want %s failed by op@laptop with a note naming %s", f, h, bad)
	}
	if l := book.Live(); l == nil || l.Hash != old.Hash {
		t.Errorf("book's live release = %+v, want still %s", l, old.Hash)
	}
	audit := readAudit(t, e.Dir)
	if len(audit) != 1 || audit[0].Action != "failed" || audit[0].Hash != h || !strings.Contains(audit[0].Note, bad) {
		t.Errorf("audit log = %+v, want one failed event for %s naming %s", audit, h, bad)
	}
}

func TestEngineDeploySwitch(t *testing.T) {
	if testing.Short() {
		t.Skip("the gate holds a second per service before it trusts a listener")
	}
	spec := testSpec()
	set := testSettings()
	h := Hash(spec, set)
	old := oldRelease()
	tg := &target{
		set: set,
		ps:  instancesOf(old.Hash, old.Spec.Version, old.Spec.Replicas),
		state: map[string]string{
			instanceName(API, h, 1): "running 101 0 0", instanceName(API, h, 2): "running 102 0 0",
			instanceName(Web, h, 1): "running 201 0 0", instanceName(Web, h, 2): "running 202 0 0",
		},
	}
	proc := newProc(101, tcpHeader+tcpRow(0, 8090, "0A", 1011)+tcpRow(1, 8090, "0A", 1021), tcp6Header, map[string]string{"3": "socket:[1011]"})
	addProc(proc, 102, tcpHeader+tcpRow(0, 8090, "0A", 1011)+tcpRow(1, 8090, "0A", 1021), tcp6Header, map[string]string{"3": "socket:[1021]"})
	addProc(proc, 201, tcpHeader, tcp6Header+tcp6Row(0, 8081, "0A", 2011)+tcp6Row(1, 8081, "0A", 2021), map[string]string{"5": "socket:[2011]"})
	addProc(proc, 202, tcpHeader, tcp6Header+tcp6Row(0, 8081, "0A", 2011)+tcp6Row(1, 8081, "0A", 2021), map[string]string{"5": "socket:[2021]"})
	oldWeb1 := instanceName(Web, old.Hash, 1)
	d := &fakeDocker{answer: tg.answer, logs: map[string]string{
		oldWeb1: `{"level":"INFO","msg":"request","status":200}` + "\n" + `{"level":"WARN","msg":"proxy error","status":502}` + "\n" +
			`{"level":"WARN","msg":"proxy error","status":499}` + "\n", // a client that left: not told
	}}
	e, gets := testEngine(t, d, proc)
	var said []string
	e.Logf = func(format string, args ...any) { said = append(said, fmt.Sprintf(format, args...)) }
	saveBook(t, e.Dir, old)

	res, err := e.Deploy(context.Background(), Request{Spec: spec, By: "op@laptop", HealthTimeout: 10 * time.Second, Keep: 3}, "deploy")
	if err != nil {
		t.Fatalf("Deploy = %v, want nil: every new instance runs and listens", err)
	}
	// Every clock-web's warnings are told, the retiring ones' before their logs go.
	if want := []string{oldWeb1, instanceName(Web, old.Hash, 2), instanceName(Web, h, 1), instanceName(Web, h, 2)}; !slices.Equal(d.logged, want) {
		t.Errorf("read the logs of %q, want the clock-web instances, old then new: %q", d.logged, want)
	}
	if d.callIndex(oldWeb1, "rm", "--force") < 0 {
		t.Errorf("no rm of %s after its log was read", oldWeb1)
	}
	if !slices.ContainsFunc(said, func(l string) bool {
		return strings.Contains(l, oldWeb1+" logged 1 warning(s)") && strings.Contains(l, `"msg":"proxy error"`)
	}) {
		t.Errorf("engine said %q, want the proxy error %s logged", said, oldWeb1)
	}
	if !res.Changed || res.Retired != 4 || res.Hash != h {
		t.Errorf("Deploy = %+v, want Changed, hash %s and the 4 old instances (2 per service) retired", res, h)
	}
	var started []string
	for _, c := range d.ran("run") {
		started = append(started, flagValues(c, "--name")[0])
	}
	// A service's instances start at once, in any order; the API's all before clock-web's.
	if len(started) == 4 {
		slices.Sort(started[:2])
		slices.Sort(started[2:])
	}
	if want := []string{instanceName(API, h, 1), instanceName(API, h, 2), instanceName(Web, h, 1), instanceName(Web, h, 2)}; !slices.Equal(started, want) {
		t.Errorf("started %q, want %q: the API's instances first, clock-web forwards to them", started, want)
	}
	if want := []string{"http://127.0.0.1:8080/clock", "http://127.0.0.1:8080/clock", "http://127.0.0.1:8080/clock"}; !slices.Equal(*gets, want) {
		t.Errorf("fetched %q, want %q: the end-to-end check through the published port", *gets, want)
	}
	lastRun := -1
	for _, n := range started {
		lastRun = max(lastRun, d.callIndex(n, "run"))
	}
	oldWeb, oldAPI := d.callIndex(instanceName(Web, old.Hash, 1), "stop"), d.callIndex(instanceName(API, old.Hash, 1), "stop")
	if oldWeb < 0 || oldAPI < 0 {
		t.Fatalf("old instances stopped at calls %d (web) and %d (api), want both stopped", oldWeb, oldAPI)
	}
	if !(lastRun < oldWeb && oldWeb < oldAPI) {
		t.Errorf("last new instance at call %d, old web stopped at %d, old API at %d: want the new ones first, then the old web, then the old API (no retiring web forwards to a retiring API)", lastRun, oldWeb, oldAPI)
	}
	for _, c := range d.calls {
		if (c[0] == "stop" || c[0] == "rm") && slices.ContainsFunc(c, func(a string) bool { return strings.Contains(a, h) }) {
			t.Errorf("docker %q touched an instance of the new release", c)
		}
	}
	book, err := LoadBook(e.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := summary(book), []string{"1.4.2:live", "1.4.1:previous"}; !slices.Equal(got, want) {
		t.Errorf("book on disk = %v, want %v", got, want)
	}
	if audit := readAudit(t, e.Dir); len(audit) != 1 || audit[0].Action != "deploy" || audit[0].Hash != h {
		t.Errorf("audit log = %+v, want one deploy event of %s", audit, h)
	}
}

func TestEngineEnsurePods(t *testing.T) {
	set := testSettings()
	t.Run("nothing there", func(t *testing.T) {
		d := &fakeDocker{answer: func(args []string) (string, error) {
			if slices.Contains(args, "inspect") {
				return "", errors.New("docker inspect: exit status 1: Error: No such object")
			}
			return "", nil
		}}
		e, _ := testEngine(t, d, procFS{})
		inv := inventory{pods: map[Service]container{}, networks: map[string]bool{"bridge": true}}
		if err := e.ensurePods(context.Background(), inv); err != nil {
			t.Fatal(err)
		}
		creates := d.ran("network", "create")
		if len(creates) != 2 {
			t.Fatalf("network create calls %q, want both networks", creates)
		}
		if c := creates[0]; c[len(c)-1] != "clock-backend" || !slices.Contains(c, "--internal") {
			t.Errorf("first network create %q, want clock-backend, --internal: it has no route out", c)
		}
		if c := creates[1]; c[len(c)-1] != "clock-frontend" || slices.Contains(c, "--internal") {
			t.Errorf("second network create %q, want clock-frontend, not internal", c)
		}
		i := d.callIndex(PodImage, "import")
		if i < 0 || d.stdins[i] != "pod tar" {
			t.Errorf("docker import of %s at call %d, want one fed PodTar's tar (calls %q)", PodImage, i, d.calls)
		}
		for _, svc := range Services {
			if d.callIndex(podName(svc), "run") < 0 {
				t.Errorf("no docker run of %s, want the missing pod started", podName(svc))
			}
		}
		if c := d.ran("network", "connect"); len(c) != 1 || !slices.Equal(c[0], []string{"network", "connect", "clock-backend", "clock-web-pod"}) {
			t.Errorf("network connect calls %q, want the web pod joined to the backend", c)
		}
	})
	t.Run("one stopped, one outdated", func(t *testing.T) {
		d := &fakeDocker{}
		e, _ := testEngine(t, d, procFS{})
		inv := inventory{
			pods: map[Service]container{
				API: {name: "clock-api-pod", service: API, podHash: podHash(set, API), state: "exited"},
				Web: {name: "clock-web-pod", service: Web, podHash: "0123456789ab", state: "running"},
			},
			networks: map[string]bool{set.Networks.Backend: true, set.Networks.Frontend: true},
		}
		if err := e.ensurePods(context.Background(), inv); err != nil {
			t.Fatal(err)
		}
		if c := d.ran("start"); len(c) != 1 || c[0][1] != "clock-api-pod" {
			t.Errorf("start calls %q, want the stopped API pod started, not replaced", c)
		}
		if d.callIndex("clock-api-pod", "run") >= 0 || d.callIndex("clock-api-pod", "rm") >= 0 {
			t.Errorf("the API pod of the right settings was recreated (calls %q), want it only started", d.calls)
		}
		rm, run := d.callIndex("clock-web-pod", "rm", "--force"), d.callIndex("clock-web-pod", "run")
		if rm < 0 || run < rm {
			t.Errorf("web pod removed at call %d and run at %d, want it replaced: its hash is not the settings'", rm, run)
		}
		if len(d.ran("network", "create")) != 0 {
			t.Errorf("networks were made again although docker network ls listed them (calls %q)", d.calls)
		}
	})
}

func readAudit(t *testing.T, dir string) []Event {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, auditFile))
	if err != nil {
		t.Fatal(err)
	}
	var out []Event
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l == "" {
			continue
		}
		var e Event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("audit line %q: %v", l, err)
		}
		out = append(out, e)
	}
	return out
}

func TestEngineEndToEnd(t *testing.T) {
	for _, tt := range []struct {
		name    string
		answers []bool // what each Get returns, in order: true for an answer
		calls   int
		ok      bool
	}{
		{"three answers", []bool{true, true, true}, 3, true},
		{"one miss first", []bool{false, true, true, true}, 4, true},
		{"two misses between answers", []bool{true, false, true, false, true, true, true}, 7, true},
		{"no answer", []bool{false, false, false, false}, 3, false},
		{"a miss every other try", []bool{true, false, true, false, true, false, true, true, true}, 6, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			e := &Engine{Logf: t.Logf, Get: func(context.Context, string) error {
				calls++
				if tt.answers[calls-1] {
					return nil
				}
				return errors.New("502 Bad Gateway")
			}}
			gerr := e.endToEnd(context.Background(), "1.4.2", "http://127.0.0.1:8080/clock")
			if (gerr == nil) != tt.ok || calls != tt.calls {
				t.Errorf("endToEnd = %v after %d fetches, want ok %v after %d", gerr, calls, tt.ok, tt.calls)
			}
			if gerr != nil && (!strings.Contains(gerr.Why, "failed 3 times") || !strings.Contains(gerr.Why, "502")) {
				t.Errorf("GateError.Why = %q, want the count of misses and the last one", gerr.Why)
			}
		})
	}
}

// TestEngineRepair: after a reboot one clock-web of the live release is down (Docker's start
// at boot found its pod not running yet). Repair starts that one again, gated, and leaves
// the rest and the book's releases as they were.
func TestEngineRepair(t *testing.T) {
	if testing.Short() {
		t.Skip("the gate holds a second before it trusts a listener")
	}
	spec := testSpec()
	set := testSettings()
	h := Hash(spec, set)
	down := instanceName(Web, h, 2)
	ps := instancesOf(h, spec.Version, spec.Replicas)
	for i := range ps {
		if ps[i].name == down {
			ps[i].state = "created"
		}
	}
	tg := &target{set: set, ps: ps, state: map[string]string{down: "running 202 0 0"}}
	proc := newProc(202, tcpHeader, tcp6Header+tcp6Row(0, 8081, "0A", 2021), map[string]string{"5": "socket:[2021]"})
	d := &fakeDocker{answer: tg.answer}
	e, gets := testEngine(t, d, proc)
	old := oldRelease()
	old.State = StatePrevious
	live := Record{Spec: spec, Hash: h, State: StateLive, By: "op@host", DeployedAt: time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)}
	saveBook(t, e.Dir, live, old)

	res, err := e.Repair(context.Background(), "boot", 10*time.Second)
	if err != nil {
		t.Fatalf("Repair = %v, want nil: the missing instance starts and listens", err)
	}
	if !res.Changed || res.Retired != 0 || res.Pruned != 0 {
		t.Errorf("Repair = %+v, want Changed with nothing retired or pruned", res)
	}
	var started []string
	for _, c := range d.ran("run") {
		started = append(started, flagValues(c, "--name")[0])
	}
	if !slices.Equal(started, []string{down}) {
		t.Errorf("Repair started %q, want only %s: the running instances keep serving", started, down)
	}
	if d.callIndex(down, "rm", "--force") < 0 {
		t.Errorf("Repair did not remove the stopped %s before starting it again", down)
	}
	for _, c := range d.calls {
		if (c[0] == "stop" || c[0] == "rm") && !slices.Contains(c, down) {
			t.Errorf("docker %q touched a running instance", c)
		}
	}
	if len(*gets) == 0 {
		t.Errorf("Repair fetched nothing, want the end-to-end check through the published port")
	}
	book, err := LoadBook(e.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := summary(book), []string{"1.4.2:live", "1.4.1:previous"}; !slices.Equal(got, want) {
		t.Errorf("book after Repair = %v, want %v: a repair keeps every release", got, want)
	}
	if got := book.Live().DeployedAt; !got.Equal(live.DeployedAt) {
		t.Errorf("live release deployed at %s after Repair, want %s: a repair is not a deploy", got, live.DeployedAt)
	}
	if audit := readAudit(t, e.Dir); len(audit) != 1 || audit[0].Action != "repair" || audit[0].By != "boot" {
		t.Errorf("audit log = %+v, want one repair event by boot", audit)
	}
}

// TestEngineRepairNothingToDo: with no live release (after `stop`) Repair starts nothing;
// with settings changed since the live release went live it refuses and names the fix.
func TestEngineRepairNothingToDo(t *testing.T) {
	spec := testSpec()
	set := testSettings()
	d := &fakeDocker{answer: (&target{set: set}).answer}
	e, _ := testEngine(t, d, procFS{})
	stopped := Record{Spec: spec, Hash: Hash(spec, set), State: StateStopped, By: "op@host"}
	saveBook(t, e.Dir, stopped)
	if res, err := e.Repair(context.Background(), "boot", 10*time.Second); err != nil || res.Changed {
		t.Errorf("Repair with the clock stopped = %+v, %v; want nothing done and no error", res, err)
	}
	if len(d.calls) != 0 {
		t.Errorf("Repair with the clock stopped ran %q, want no docker command: a stopped clock stays stopped", d.calls)
	}

	live := stopped
	live.State, live.Hash = StateLive, "0123456789ab"
	saveBook(t, e.Dir, live)
	_, err := e.Repair(context.Background(), "boot", 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "settings") || !strings.Contains(err.Error(), "deploy") {
		t.Errorf("Repair with the settings changed = %v, want an error naming the settings and the deploy that switches to them", err)
	}
	if len(d.calls) != 0 {
		t.Errorf("Repair with the settings changed ran %q, want no docker command", d.calls)
	}
}
