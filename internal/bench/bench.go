// Package bench is the load-test harness behind `mage bench`: it starts each
// built service on loopback, drives it with wrk, and holds it against a
// yardstick doing the same job (a bare net/http handler for clock-api, nginx
// for clock-web's page, nginx in front of the same clock-api for the proxied
// /clock, nginx in front of uvicorn for its req/s), one target at a time in
// alternating rounds. The verdicts rest on CPU time per request read from
// the servers' own /proc stat, paired round by round, which a busy host
// moves far less than req/s.
package bench

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/clock-app/clock/internal/fix"
	"github.com/clock-app/clock/internal/host"
)

// Pinning says whether servers and wrk are pinned to separate CPUs.
type Pinning int

const (
	// PinAuto pins when taskset exists and at least two CPUs are allowed.
	PinAuto Pinning = iota
	// PinOn pins, or fails if it cannot.
	PinOn
	// PinOff lets the scheduler place everything.
	PinOff
)

// Options configures Run. The zero value is the default `mage bench`, run
// from the repository root.
type Options struct {
	Root        string        // repository root; default "."
	APIBinary   string        // default <Root>/services/clock-api/dist/clock-api
	WebBinary   string        // default <Root>/services/clock-web/dist/clock-web
	StaticDir   string        // the page files nginx serves; default <Root>/services/clock-web/static
	Duration    time.Duration // measured wrk run per target and round, whole seconds; default 10s
	Warmup      time.Duration // wrk run before each measurement; default 1s, negative for none
	Connections int           // wrk -c; default 32
	Threads     int           // wrk -t; default 1
	Pin         Pinning       // default PinAuto: server on CPU 1, wrk on CPU 0
	// Rounds runs every target that many times, each right after its
	// partner (target, yardstick, target, yardstick...), so that each pair
	// of runs shares whatever the host was doing; checks take the median of
	// the per-pair ratios. Default 1.
	Rounds int
}

// Report is everything one Run measured and concluded.
type Report struct {
	Duration    time.Duration
	Connections int
	Threads     int
	Pinning     string // how processes were placed, for the reader
	Rounds      int
	Targets     []string // in the order run within a round
	Results     []Result // every round of every target, in the order run
	Checks      []Check
	// Taken is the median share of the server CPU that other work (other
	// processes, the hypervisor's steal) took over all rounds; TakenKnown
	// is false when it could not be measured (servers not pinned). Noisy
	// is Taken > NoisyShare: timing checks then do not count.
	Taken      float64
	TakenKnown bool
	Noisy      bool
	Notes      []string // context a reader needs to trust the numbers
}

// Passed reports whether every check that counts passed.
func (r Report) Passed() bool { return len(r.Checks) > 0 && len(r.Failed()) == 0 }

// Failed returns the checks that did not pass and count: a timing check on
// a noisy run does not.
func (r Report) Failed() []Check {
	var failed []Check
	for _, c := range r.Checks {
		if !c.Pass && !r.discounted(c) {
			failed = append(failed, c)
		}
	}
	return failed
}

// discounted says whether c failed only because the host was noisy.
func (r Report) discounted(c Check) bool { return !c.Pass && c.Timing && r.Noisy }

// Result is the measurement of one round of one target.
type Result struct {
	Target         string // one of the Target* constants
	Round          int    // from 1
	URL            string
	Requests       int64
	RequestsPerSec float64
	P50, P99       time.Duration
	Errors         int64 // socket errors plus non-2xx/3xx responses
	// Steal is the share of the server CPU's time that the hypervisor gave
	// to other guests during the measured run; Other is the share taken by
	// anything but the target's servers, steal included. Both are -1 when
	// not known (servers not pinned, or no /proc/stat).
	Steal, Other float64
	// Servers holds the processes serving the target, the front one first
	// (clock-web /clock and nginx /clock list clock-api behind them).
	Servers []Proc
	Elapsed time.Duration // start to stop, warm-up included
}

// CPUPerRequest is the CPU time server i spent per completed request
// during the measured run.
func (r Result) CPUPerRequest(i int) time.Duration {
	if i >= len(r.Servers) {
		return 0
	}
	return perRequest(r.Servers[i].CPU, r.Requests)
}

// Proc is one server process (with its children, for nginx) of a run.
type Proc struct {
	Mem
	CPU time.Duration // user + system during the measured wrk run
}

// target knows how to start what serves one URL.
type target struct {
	name string
	// start launches the server processes (measured one first), waits until
	// they answer, and returns them with the URL to load. On error the
	// processes already started are returned too, so they can be stopped.
	start func(ctx context.Context) ([]*server, string, error)
}

// runner holds the state of one Run.
type runner struct {
	opts      Options
	out       io.Writer
	dir       string // temp folder, removed at the end
	wrk       string
	nginx     string
	serverCPU int // -1 when not pinned
	clientCPU int
	bare      string // the built yardstick binary
	notes     []string
	// page is clock-web's answer for / minus what nginx writes itself; nginx
	// adds these headers so both serve the same response.
	page []nginxHeader
	// hop is what clock-web's /clock answer carries beyond the API's own
	// answer, which nginx passes through: nginx in front of the API adds
	// these, so that both hops send the same response.
	hop []nginxHeader
}

// Run measures every target and evaluates the checks. It returns an error
// only when something could not be measured; failed checks are in the
// Report for the caller to judge.
func Run(ctx context.Context, opts Options, out io.Writer) (Report, error) {
	begin := time.Now()
	opts, err := withDefaults(opts)
	if err != nil {
		return Report{}, err
	}
	r := &runner{opts: opts, out: out, serverCPU: -1, clientCPU: -1}
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		// Anything else busy on the machine skews every number.
		if f := strings.Fields(string(load)); len(f) >= 3 {
			note := "load average at start (1, 5, 15 min): " + strings.Join(f[:3], ", ")
			if l, err := strconv.ParseFloat(f[0], 64); err == nil && l > float64(runtime.NumCPU())/2 {
				note += fmt.Sprintf(": the machine is busy (%d CPUs), expect noisy numbers", runtime.NumCPU())
			}
			r.notes = append(r.notes, note+".")
		}
	}
	rep := Report{Duration: opts.Duration, Connections: opts.Connections, Threads: opts.Threads, Rounds: opts.Rounds}
	if err := r.findTools(); err != nil {
		return rep, err
	}
	rep.Pinning, err = r.choosePinning()
	if err != nil {
		return rep, err
	}

	r.dir, err = os.MkdirTemp("", "clock-bench-")
	if err != nil {
		return rep, err
	}
	defer os.RemoveAll(r.dir)
	if err := os.Mkdir(filepath.Join(r.dir, "logs"), 0o755); err != nil {
		return rep, err
	}

	r.progress("building the net/http yardstick")
	if err := r.buildBare(ctx); err != nil {
		return rep, err
	}

	groups := r.groups()
	var targets []target
	for _, g := range groups {
		targets = append(targets, g...)
	}
	for _, t := range targets {
		rep.Targets = append(rep.Targets, t.name)
	}
	r.progress("%d targets x %d round(s), each beside its yardstick, wrk -t%d -c%d -d%s after a %s warm-up each; %s",
		len(targets), opts.Rounds, opts.Threads, opts.Connections, opts.Duration, max(opts.Warmup, 0), rep.Pinning)
	n := 0
	for round := 1; round <= opts.Rounds; round++ {
		for _, t := range targets {
			n++
			label := fmt.Sprintf("[%d/%d] %s, round %d", n, opts.Rounds*len(targets), t.name, round)
			res, err := r.measure(ctx, label, t)
			if err != nil {
				return rep, fmt.Errorf("bench %s: %w", t.name, err)
			}
			res.Round = round
			rep.Results = append(rep.Results, res)
		}
	}

	rep.Checks = evaluate(rep.Results)
	rep.Taken, rep.TakenKnown, rep.Noisy = noisy(rep.Results)
	rep.Notes = append(r.notes,
		"CPU/req is user + system time of the front server process (nginx: master + worker) from /proc/<pid>/stat over the measured run, divided by the requests wrk completed; clock-api behind a front is shown apart (upstream CPU/req), common to both hops.",
		"nginx runs 1 worker process (plus its master) on the server CPU and logs every request, like clock-web, clock-api and uvicorn; towards an upstream it speaks HTTP/1.1 with keepalive.")
	if len(r.page) > 0 {
		names := make([]string, len(r.page))
		for i, h := range r.page {
			names[i] = h.Name
		}
		rep.Notes = append(rep.Notes, "nginx / adds clock-web's "+strings.Join(names, ", ")+" to its answer, so both send the same response.")
	}
	if len(r.hop) > 0 {
		names := make([]string, len(r.hop))
		for i, h := range r.hop {
			names[i] = h.Name
		}
		rep.Notes = append(rep.Notes, "nginx /clock adds clock-web's "+strings.Join(names, ", ")+" to the API's answer, so both hops send the same response.")
	}
	if r.serverCPU >= 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf(
			"every front runs with its upstream on CPU %d: the /clock rows are what one core serves.", r.serverCPU))
	}
	writeReport(out, rep)
	verdict := fmt.Sprintf("%d of %d checks passed", len(rep.Checks)-len(rep.Failed()), len(rep.Checks))
	if rep.Noisy {
		verdict = fmt.Sprintf("NOISY run (%.0f%% of the server CPU taken by other work, over %.0f%%): timing checks not counted; %d of %d checks failed that count",
			100*rep.Taken, 100*NoisyShare, len(rep.Failed()), len(rep.Checks))
	}
	r.progress("done in %s: %s", time.Since(begin).Round(100*time.Millisecond), verdict)
	return rep, nil
}

func withDefaults(o Options) (Options, error) {
	if o.Root == "" {
		o.Root = "."
	}
	if o.APIBinary == "" {
		o.APIBinary = filepath.Join(o.Root, "services", "clock-api", "dist", "clock-api")
	}
	if o.WebBinary == "" {
		o.WebBinary = filepath.Join(o.Root, "services", "clock-web", "dist", "clock-web")
	}
	if o.StaticDir == "" {
		o.StaticDir = filepath.Join(o.Root, "services", "clock-web", "static")
	}
	if o.Duration == 0 {
		o.Duration = 10 * time.Second
	}
	if o.Warmup == 0 {
		o.Warmup = time.Second
	}
	if o.Connections == 0 {
		o.Connections = 32
	}
	if o.Rounds == 0 {
		o.Rounds = 1
	}
	if o.Threads == 0 {
		o.Threads = 1
	}
	// wrk takes whole seconds.
	o.Duration = max(o.Duration.Round(time.Second), time.Second)
	if o.Warmup > 0 {
		o.Warmup = max(o.Warmup.Round(time.Second), time.Second)
	}
	switch {
	case o.Rounds < 0:
		return o, fmt.Errorf("bench: rounds (%d) must be positive", o.Rounds)
	case o.Connections < 0 || o.Threads < 0:
		return o, fmt.Errorf("bench: connections (%d) and threads (%d) must be positive", o.Connections, o.Threads)
	case o.Threads > o.Connections:
		return o, fmt.Errorf("bench: wrk needs at least as many connections (%d) as threads (%d)", o.Connections, o.Threads)
	}
	for _, p := range []*string{&o.Root, &o.APIBinary, &o.WebBinary, &o.StaticDir} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return o, err
		}
		*p = abs
	}
	for _, bin := range []string{o.APIBinary, o.WebBinary} {
		if _, err := os.Stat(bin); err != nil {
			return o, fmt.Errorf("bench: service binary: %w (build the services first)", err)
		}
	}
	if _, err := os.Stat(filepath.Join(o.StaticDir, "index.html")); err != nil {
		return o, fmt.Errorf("bench: static folder: %w", err)
	}
	return o, nil
}

// debianPython is the interpreter Debian's python3-* packages install their
// modules for; a python3 earlier in PATH (pyenv, a venv) would not see them.
const debianPython = "/usr/bin/python3"

// findTools looks for every tool of host.Bench, the one list setup installs
// from, and names the packages of the missing ones.
func (r *runner) findTools() error {
	var missing, pkgs []string
	for _, t := range host.Bench {
		if _, err := host.LookPath(t.Cmd); err != nil {
			missing = append(missing, t.Cmd)
			if !slices.Contains(pkgs, t.Package) {
				pkgs = append(pkgs, t.Package)
			}
		}
	}
	if len(missing) > 0 {
		return fix.By("setup", fmt.Errorf("bench: %s not found: setup installs them, or run:\n    %s",
			strings.Join(missing, ", "), strings.Join(host.InstallCommands(pkgs), "\n    ")))
	}
	r.wrk, _ = host.LookPath("wrk")
	r.nginx, _ = host.LookPath("nginx")
	return nil
}

// choosePinning puts wrk on the first allowed CPU and the servers on the
// second: on a 2-core machine they would otherwise fight over both.
func (r *runner) choosePinning() (string, error) {
	if r.opts.Pin == PinOff {
		return "not pinned (off)", nil
	}
	why := ""
	cpus, err := allowedCPUs()
	if err != nil {
		why = "cannot read the allowed CPUs: " + err.Error()
	} else if len(cpus) < 2 {
		why = "fewer than 2 CPUs"
	} else if _, err := exec.LookPath("taskset"); err != nil {
		why = "taskset not found (apt-get install util-linux)"
	}
	if why != "" {
		if r.opts.Pin == PinOn {
			return "", errors.New("bench: cannot pin CPUs: " + why)
		}
		return "not pinned: " + why, nil
	}
	r.clientCPU, r.serverCPU = cpus[0], cpus[1]
	return fmt.Sprintf("servers pinned to CPU %d, wrk to CPU %d (taskset)", r.serverCPU, r.clientCPU), nil
}

// onCPU prefixes argv with taskset when pinning.
func onCPU(cpu int, argv ...string) []string {
	if cpu < 0 {
		return argv
	}
	return append([]string{"taskset", "-c", strconv.Itoa(cpu)}, argv...)
}

func (r *runner) progress(format string, args ...any) {
	fmt.Fprintf(r.out, "bench: "+format+"\n", args...)
}

func (r *runner) logPath(name string) string {
	return filepath.Join(r.dir, "logs", name+".log")
}

// buildBare compiles the yardstick the way the services are built.
func (r *runner) buildBare(ctx context.Context) error {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	r.bare = filepath.Join(r.dir, "barehttp")
	cmd := exec.CommandContext(ctx, goTool, "build", "-trimpath", "-ldflags", "-s -w",
		"-o", r.bare, "github.com/clock-app/clock/internal/bench/barehttp")
	cmd.Dir = r.opts.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("bench: go build barehttp: %w\n%s", err, out)
	}
	return nil
}

// groups lists the targets, each group a subject followed by its
// yardsticks; every round runs them in this order, so each yardstick run
// comes right after its subject's.
func (r *runner) groups() [][]target {
	return [][]target{
		{
			{TargetAPI, func(ctx context.Context) ([]*server, string, error) {
				api, base, err := r.startAPI(ctx)
				return []*server{api}, base + "/clock", err
			}},
			{TargetBare, r.startBare},
		},
		{
			{TargetWebPage, func(ctx context.Context) ([]*server, string, error) {
				srvs, base, err := r.startWeb(ctx)
				return srvs, base + "/", err
			}},
			{TargetNginx, func(ctx context.Context) ([]*server, string, error) {
				srvs, base, err := r.startNginx(ctx, "", r.page)
				return srvs, base + "/", err
			}},
		},
		{
			{TargetWebProxy, func(ctx context.Context) ([]*server, string, error) {
				srvs, base, err := r.startWeb(ctx)
				if err == nil {
					// Through the proxy to a live API, not a 502.
					err = srvs[0].waitReady(ctx, base+"/clock")
				}
				return srvs, base + "/clock", err
			}},
			{TargetNginxProxy, func(ctx context.Context) ([]*server, string, error) {
				api, apiBase, err := r.startAPI(ctx)
				if err != nil {
					return []*server{api}, "", err
				}
				return r.proxyTo(ctx, api, apiBase, r.hop)
			}},
			{TargetUvicorn, func(ctx context.Context) ([]*server, string, error) {
				app, appBase, err := r.startUvicorn(ctx)
				if err != nil {
					return []*server{app}, "", err
				}
				// The classic stack as it ships: uvicorn's own headers, none added.
				return r.proxyTo(ctx, app, appBase, nil)
			}},
		},
	}
}

// proxyTo starts nginx in front of the running upstream, adding headers to its
// answers; nginx first.
func (r *runner) proxyTo(ctx context.Context, upstream *server, base string, headers []nginxHeader) ([]*server, string, error) {
	srvs, front, err := r.startNginx(ctx, strings.TrimPrefix(base, "http://"), headers)
	srvs = append(srvs, upstream)
	if err == nil {
		err = srvs[0].waitReady(ctx, front+"/clock")
	}
	return srvs, front + "/clock", err
}

func (r *runner) startAPI(ctx context.Context) (*server, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	s, err := startServer("clock-api", r.logPath("clock-api"),
		[]string{"CLOCK_API_HOST=127.0.0.1", "CLOCK_API_PORT=" + strconv.Itoa(port)}, nil,
		onCPU(r.serverCPU, r.opts.APIBinary)...)
	if err != nil {
		return nil, "", err
	}
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	return s, base, s.waitReady(ctx, base+"/healthz")
}

// startWeb starts clock-web in front of a fresh clock-api; clock-web first.
func (r *runner) startWeb(ctx context.Context) ([]*server, string, error) {
	api, apiBase, err := r.startAPI(ctx)
	if err != nil {
		return []*server{api}, "", err
	}
	port, err := freePort()
	if err != nil {
		return []*server{api}, "", err
	}
	web, err := startServer("clock-web", r.logPath("clock-web"),
		[]string{"CLOCK_WEB_HOST=127.0.0.1", "CLOCK_WEB_PORT=" + strconv.Itoa(port), "CLOCK_WEB_API_URL=" + apiBase}, nil,
		onCPU(r.serverCPU, r.opts.WebBinary)...)
	if err != nil {
		return []*server{api}, "", err
	}
	srvs := []*server{web, api}
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	if err := web.waitReady(ctx, base+"/healthz"); err != nil {
		return srvs, "", err
	}
	r.comparePage(ctx, base+"/")
	if r.hop == nil {
		r.compareHop(ctx, base+"/clock", apiBase+"/clock")
	}
	return srvs, base, nil
}

// compareHop keeps the headers of clock-web's /clock answer that the API's
// own answer lacks, for nginx's hop to add.
// Both answers must be 200s: an error page's headers are not the hop's.
func (r *runner) compareHop(ctx context.Context, webURL, apiURL string) {
	webStatus, web, _, err := get(ctx, webURL)
	if err != nil || webStatus != http.StatusOK {
		return
	}
	apiStatus, api, _, err := get(ctx, apiURL)
	if err != nil || apiStatus != http.StatusOK {
		return
	}
	r.hop = hopHeaders(web, api)
}

// get GETs url and returns the answer's status, headers and body.
func get(ctx context.Context, url string) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body, err
}

// comparePage notes when clock-web's page is not the static folder's
// index.html: a stale binary would make the nginx comparison unfair. It also
// keeps the page's headers for nginx to send.
func (r *runner) comparePage(ctx context.Context, url string) {
	want, err := os.ReadFile(filepath.Join(r.opts.StaticDir, "index.html"))
	if err != nil {
		return
	}
	_, header, got, err := get(ctx, url)
	if err != nil {
		return
	}
	r.page = pageHeaders(header)
	note := fmt.Sprintf("clock-web / (%d bytes) differs from %s (%d bytes): is the binary stale?",
		len(got), filepath.Join(r.opts.StaticDir, "index.html"), len(want))
	if !bytes.Equal(got, want) && !containsString(r.notes, note) {
		r.notes = append(r.notes, note)
	}
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func (r *runner) startBare(ctx context.Context) ([]*server, string, error) {
	f, port, err := listenFile()
	if err != nil {
		return nil, "", err
	}
	defer f.Close() // the child holds its own copy
	s, err := startServer("barehttp", r.logPath("barehttp"), nil, []*os.File{f},
		onCPU(r.serverCPU, r.bare, "-listen-fd=3")...)
	if err != nil {
		return nil, "", err
	}
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	return []*server{s}, base + "/clock", s.waitReady(ctx, base+"/healthz")
}

// startNginx starts nginx serving the static folder with headers added,
// and proxying /clock to upstream (host:port) when it is not empty.
func (r *runner) startNginx(ctx context.Context, upstream string, headers []nginxHeader) ([]*server, string, error) {
	prefix, err := os.MkdirTemp(r.dir, "nginx-")
	if err != nil {
		return nil, "", err
	}
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	logPath := r.logPath("nginx")
	conf := nginxConfig{Prefix: prefix, Log: logPath, Root: r.opts.StaticDir, Port: port, Headers: headers,
		Upstream: upstream, Keepalive: r.opts.Connections}
	if os.Geteuid() == 0 {
		conf.User = "root"
	}
	confPath := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(renderNginxConf(conf)), 0o644); err != nil {
		return nil, "", err
	}
	s, err := startServer("nginx", logPath, nil, nil,
		onCPU(r.serverCPU, r.nginx, "-p", prefix, "-c", confPath, "-e", logPath)...)
	if err != nil {
		return nil, "", err
	}
	s.withChildren = true
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	return []*server{s}, base, s.waitReady(ctx, base+"/")
}

//go:embed clockapp.py
var clockApp []byte

// startUvicorn starts the FastAPI app under one uvicorn process, on an
// inherited socket like the bare handler.
func (r *runner) startUvicorn(ctx context.Context) (*server, string, error) {
	dir := filepath.Join(r.dir, "uvicorn")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "clockapp.py"), clockApp, 0o644); err != nil {
		return nil, "", err
	}
	f, port, err := listenFile()
	if err != nil {
		return nil, "", err
	}
	defer f.Close() // the child holds its own copy
	s, err := startServer("uvicorn", r.logPath("uvicorn"), []string{"PYTHONDONTWRITEBYTECODE=1"}, []*os.File{f},
		onCPU(r.serverCPU, debianPython, "-m", "uvicorn", "--fd", "3", "--app-dir", dir,
			"--loop", "uvloop", "--http", "httptools", "clockapp:app")...)
	if err != nil {
		return nil, "", err
	}
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	return s, base, s.waitReady(ctx, base+"/clock")
}

// measure runs one target from start to stop.
func (r *runner) measure(ctx context.Context, label string, t target) (Result, error) {
	begin := time.Now()
	res := Result{Target: t.name}
	r.progress("%s: starting", label)
	srvs, url, err := t.start(ctx)
	defer func() {
		// Measured process first, the upstream after it.
		for _, s := range srvs {
			if s != nil {
				s.stop()
			}
		}
	}()
	if err != nil {
		return res, err
	}
	res.URL = url
	r.progress("%s: ready after %s, loading %s", label, time.Since(begin).Round(time.Millisecond), url)

	if r.opts.Warmup > 0 {
		if _, err := r.runWrk(ctx, url, r.opts.Warmup); err != nil {
			return res, fmt.Errorf("warm-up: %w", err)
		}
	}
	res.Steal, res.Other = -1, -1
	before, err := sample(srvs, r.serverCPU)
	if err != nil {
		return res, err
	}
	w, err := r.runWrk(ctx, url, r.opts.Duration)
	if err != nil {
		return res, err
	}
	after, err := sample(srvs, r.serverCPU)
	for _, s := range srvs {
		if s.exited() {
			return res, s.crashed("under load")
		}
	}
	if err != nil {
		return res, err
	}
	res.Steal, res.Other = after.shares(before)
	for i, s := range srvs {
		m, err := readMem(s.name, s.pid(), s.withChildren)
		if err != nil {
			return res, err
		}
		res.Servers = append(res.Servers, Proc{Mem: m, CPU: ticksToDuration(after.procs[i] - min(before.procs[i], after.procs[i]))})
	}
	if w.Requests == 0 {
		return res, fmt.Errorf("%w (%d socket errors); last lines of %s:\n%s",
			errNoRequests, w.SocketErrors, srvs[0].logPath, logTail(srvs[0].logPath, 15))
	}
	res.Requests, res.RequestsPerSec = w.Requests, w.RequestsPerSec
	res.P50, res.P99, res.Errors = w.P50, w.P99, w.errors()

	for _, s := range srvs {
		s.stop()
	}
	res.Elapsed = time.Since(begin)
	errNote := ""
	if res.Errors > 0 {
		errNote = fmt.Sprintf(", %d errors", res.Errors)
	}
	r.progress("%s: %.0f req/s, %s CPU/req, p99 %s, peak RSS %.1f MiB%s, other work %s (steal %s) (%s)", label,
		res.RequestsPerSec, fmtMicros(res.CPUPerRequest(0)), fmtLatency(res.P99), mib(res.Servers[0].Peak), errNote,
		fmtShare(res.Other), fmtShare(res.Steal), res.Elapsed.Round(100*time.Millisecond))
	return res, nil
}

// cpuSample is what the CPU accounting says at one moment: the server CPU's
// times (known is false when not pinned or unreadable) and each server's
// ticks.
type cpuSample struct {
	at    time.Time
	cpu   cpuTimes
	known bool
	procs []uint64
}

// sample reads the ticks of every server and, when pinned, the server CPU.
func sample(srvs []*server, cpu int) (cpuSample, error) {
	var s cpuSample
	for _, srv := range srvs {
		t, err := readProcTicks(srv.pid(), srv.withChildren)
		if err != nil {
			return s, fmt.Errorf("%s CPU time: %w", srv.name, err)
		}
		s.procs = append(s.procs, t)
	}
	if cpu >= 0 {
		var err error
		s.cpu, err = readCPUStat(cpu)
		s.known = err == nil
	}
	s.at = time.Now()
	return s, nil
}

// shares returns the steal and the other-work shares of the server CPU
// from before to s; -1 each when unknown.
func (s cpuSample) shares(before cpuSample) (steal, other float64) {
	if !s.known || !before.known {
		return -1, -1
	}
	var own uint64
	for i := range s.procs {
		own += s.procs[i] - min(before.procs[i], s.procs[i])
	}
	steal = stealShare(before.cpu, s.cpu)
	other = otherShare(before.cpu, s.cpu, own, s.at.Sub(before.at))
	// Steal is part of other work, but the two come from counters read a moment apart and
	// in different units, so a quiet run can show a little less other work than steal.
	if steal >= 0 && other >= 0 {
		other = max(other, steal)
	}
	return steal, other
}

// median returns the middle value of xs (the mean of the two middle ones
// when len(xs) is even), without reordering xs.
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// runWrk loads url for d and parses what wrk printed.
func (r *runner) runWrk(ctx context.Context, url string, d time.Duration) (wrkResult, error) {
	argv := onCPU(r.clientCPU, r.wrk,
		"-t"+strconv.Itoa(r.opts.Threads), "-c"+strconv.Itoa(r.opts.Connections),
		"-d"+strconv.Itoa(int(d/time.Second))+"s", "--latency", url)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return wrkResult{}, ctx.Err()
	}
	if err != nil {
		return wrkResult{}, fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, out)
	}
	w, err := parseWrk(string(out))
	if err != nil {
		return w, fmt.Errorf("%w; wrk printed:\n%s", err, out)
	}
	return w, nil
}
