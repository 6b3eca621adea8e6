package release

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/clock-app/clock/internal/fix"
	"github.com/clock-app/clock/internal/progress"
)

// Engine switches releases on the target through Docker.
type Engine struct {
	Docker   Docker
	Settings Settings
	Dir      string                    // the book, the audit log and the deploy lock: /var/lib/clock
	Proc     fs.FS                     // /proc, to see which instance listens
	PodTar   func() (io.Reader, error) // a tar holding clockctl, for the pod image
	Logf     progress.Func
	Now      func() time.Time
	// Get fetches url from the target itself, the end-to-end check through the pod's port.
	Get func(ctx context.Context, url string) error
}

// Result is what a deploy or rollback did.
type Result struct {
	Version string `json:"version"`
	Hash    string `json:"hash"`
	Changed bool   `json:"changed"`
	Retired int    `json:"retired"` // old instances drained and removed
	Pruned  int    `json:"pruned"`  // images no kept release uses
	// Kept lists the image refs of every kept release, for pruning the deploying machine.
	Kept []string `json:"kept"`
}

// GateError is a release that never took traffic: the instance that failed and its log.
type GateError struct {
	Version, Instance, Why, Log string
}

// clockctl's exit statuses other than 0 and 1, for the deploying machine to tell apart.
const (
	ExitGate = 3 // a GateError: the release never took traffic
	ExitBusy = 4 // another clockctl holds the target's lock
)

func (e *GateError) Error() string {
	return fmt.Sprintf("release %s is not healthy: %s %s; it took no traffic and was removed, the live release keeps serving; last lines of its log:\n%s",
		e.Version, e.Instance, e.Why, e.Log)
}

func (e *Engine) logf(format string, args ...any) { e.Logf.Printf(format, args...) }

func (e *Engine) docker(ctx context.Context, args ...string) (string, error) {
	return e.Docker.Run(ctx, nil, args...)
}

// Deploy makes req's release live: unchanged when it already is and every instance runs;
// otherwise its instances start beside the live ones, pass the gate, take traffic, and the
// old instances drain and go. action is "deploy" or "rollback", for the book and the log.
func (e *Engine) Deploy(ctx context.Context, req Request, action string) (Result, error) {
	spec := req.Spec
	if err := spec.Check(); err != nil {
		return Result{}, err
	}
	if req.Keep < 1 || req.HealthTimeout <= 0 {
		return Result{}, fmt.Errorf("deploy request: keep %d and health timeout %s: want at least 1 and above zero", req.Keep, req.HealthTimeout)
	}
	h := Hash(spec, e.Settings)
	res := Result{Version: spec.Version, Hash: h}
	book, err := LoadBook(e.Dir)
	if err != nil {
		return res, err
	}
	inv, err := e.look(ctx)
	if err != nil {
		return res, err
	}
	if err := e.ensurePods(ctx, inv); err != nil {
		return res, err
	}
	all := inv.instances
	if live := book.Live(); live != nil && live.Hash == h && runningAll(all, h, spec.Replicas) && len(all) == 2*spec.Replicas {
		e.logf("release %s (%s) is live with %d instances of each service: nothing to do", spec.Version, h, spec.Replicas)
		res.Kept = keptRefs(book)
		return res, nil
	}
	res.Changed = true
	// The live release with an instance missing or stopped is repaired in place: its running
	// instances keep serving and only the missing ones start. Otherwise leftovers of this
	// very release (an interrupted or failed attempt) go first: the new instances take
	// their names.
	live := book.Live()
	repair := live != nil && live.Hash == h
	running := map[string]bool{}
	for _, c := range all {
		running[c.name] = c.hash == h && c.state == "running" && repair
	}
	if err := e.remove(ctx, names(all, func(c container) bool { return c.hash == h && !running[c.name] })); err != nil {
		return res, err
	}
	rec := Record{Spec: spec, Hash: h, DeployedAt: e.Now().UTC(), By: req.By}
	if repair {
		rec = *live
	}
	var startedAll []string
	failed := func(gerr *GateError) error {
		if repair {
			// The live release stays live: only what this run started goes.
			return errors.Join(gerr, e.remove(context.WithoutCancel(ctx), startedAll))
		}
		return e.fail(ctx, book, rec, startedAll, gerr)
	}
	// clock-api's new instances first, then clock-web's, each service gated before the next
	// starts, so that no new clock-web takes traffic before an API it can reach. A service's
	// instances start at once: on a 2-vCPU TCG guest two docker runs take 12 s together and
	// 15-19 s in turn. (Four at once on 1 vCPU once starved a new clock-web's first dial to
	// the API past its bound: one 502 in 612 requests.)
	for _, svc := range Services {
		ports := map[string]int{}
		var replicas []int
		for n := 1; n <= spec.Replicas; n++ {
			name := instanceName(svc, h, n)
			if running[name] {
				continue
			}
			replicas = append(replicas, n)
			startedAll = append(startedAll, name)
			ports[name] = e.Settings.port(svc)
		}
		if gerr := e.start(ctx, spec, h, svc, replicas); gerr != nil {
			return res, failed(gerr)
		}
		if len(ports) == 0 {
			continue
		}
		e.logf("%s: started %s; waiting until each listens on :%d", svc, strings.Join(slices.Sorted(maps.Keys(ports)), ", "), e.Settings.port(svc))
		if gerr := e.gate(ctx, spec.Version, ports, req.HealthTimeout); gerr != nil {
			return res, failed(gerr)
		}
	}
	if gerr := e.endToEnd(ctx, spec.Version, fmt.Sprintf("http://127.0.0.1:%d/clock", e.Settings.WebPort)); gerr != nil {
		return res, failed(gerr)
	}
	// Traffic is already shared with the new instances; the old ones stop accepting, finish
	// what they have, and exit: clock-web's first, so that no retiring clock-web forwards a
	// request to a retiring API (stopping all four at once cost one 502 in 1,920 requests in
	// test:vm). A new clock-web's pooled connection to a retiring API is closed by it, and
	// the request goes again on a new connection, which only the new API instances accept.
	old := names(all, func(c container) bool { return c.hash != h })
	if len(old) > 0 {
		e.logf("retiring %s (each drains for up to %ds)", strings.Join(old, ", "), e.Settings.StopTimeout)
	}
	for _, svc := range []Service{Web, API} {
		if err := e.retire(ctx, svc, names(all, func(c container) bool { return c.hash != h && c.service == svc })); err != nil {
			return res, err
		}
	}
	webs := make([]string, spec.Replicas)
	for n := range webs {
		webs[n] = instanceName(Web, h, n+1)
	}
	e.warnings(ctx, webs)
	res.Retired = len(old)
	book.MadeLive(rec)
	unused := book.Prune(req.Keep)
	res.Pruned = e.prune(ctx, unused)
	res.Kept = keptRefs(book)
	if err := book.Save(e.Dir); err != nil {
		return res, err
	}
	return res, Audit(e.Dir, Event{Time: rec.DeployedAt, Action: action, Version: spec.Version, Hash: h, By: req.By})
}

// retire drains and removes svc's old instances. A clock-web's log goes with it, so the
// warnings it logged (each proxy error is a failed request a client saw) are told first.
func (e *Engine) retire(ctx context.Context, svc Service, names []string) error {
	if err := e.stop(ctx, names); err != nil {
		return err
	}
	if svc == Web {
		e.warnings(ctx, names)
	}
	return e.rm(ctx, names)
}

// warnLines is how far back in an instance's log the switch looks for warnings: at the 20
// requests a second of test:vm's poller, the last 10 to 20 seconds of a clock-web.
const warnLines = 200

// warnings tells the WARN and ERROR lines among the last warnLines of each clock-web
// instance's log: the proxy's errors during a switch, which the instance's access log
// alone would bury, and which go with a retired instance. clock-api logs no per-request
// warnings, so only clock-web's are read.
func (e *Engine) warnings(ctx context.Context, names []string) {
	for _, n := range names {
		out, err := e.Docker.Logs(ctx, n, warnLines)
		if err != nil {
			continue
		}
		var warn []string
		for _, l := range strings.Split(out, "\n") {
			// A 499 is a client that left first (a poller stopping), not a failed request.
			if (strings.Contains(l, `"level":"WARN"`) || strings.Contains(l, `"level":"ERROR"`)) && !strings.Contains(l, `"status":499`) {
				warn = append(warn, l)
			}
		}
		if len(warn) > 0 {
			e.logf("%s logged %d warning(s) in its last %d lines; the last: %s", n, len(warn), warnLines, warn[len(warn)-1])
		}
	}
}

// start runs svc's instances of the given replica numbers, all at once.
func (e *Engine) start(ctx context.Context, spec Spec, h string, svc Service, replicas []int) *GateError {
	errs := make([]error, len(replicas))
	var wg sync.WaitGroup
	for i, n := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = e.docker(ctx, e.Settings.instanceArgs(spec, h, svc, n)...)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return &GateError{Version: spec.Version, Instance: instanceName(svc, h, replicas[i]), Why: "could not start: " + err.Error()}
		}
	}
	return nil
}

// fail removes a release's instances, books it failed, and returns why.
func (e *Engine) fail(ctx context.Context, book *Book, rec Record, instances []string, gerr *GateError) error {
	// An interrupted deploy still cleans up after itself.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if gerr.Log == "" && strings.HasPrefix(gerr.Instance, "clock-") {
		gerr.Log = e.lastLog(ctx, gerr.Instance)
	}
	err := error(gerr)
	if rerr := e.remove(ctx, instances); rerr != nil {
		err = errors.Join(err, rerr)
	}
	book.Failed(rec, gerr.Instance+" "+gerr.Why)
	book.Prune(max(1, len(book.Releases)))
	if serr := book.Save(e.Dir); serr != nil {
		err = errors.Join(err, serr)
	}
	if aerr := Audit(e.Dir, Event{Time: e.Now().UTC(), Action: "failed", Version: rec.Spec.Version, Hash: rec.Hash, By: rec.By, Note: gerr.Instance + " " + gerr.Why}); aerr != nil {
		err = errors.Join(err, aerr)
	}
	return err
}

// gate waits until every instance (name -> port) runs, has not restarted, and listens on
// its port; then holds a second and looks again, so one that dies right after binding is
// caught too.
func (e *Engine) gate(ctx context.Context, version string, ports map[string]int, timeout time.Duration) *GateError {
	instances := slices.Sorted(maps.Keys(ports))
	deadline := e.Now().Add(timeout)
	var settled bool
	for {
		states, err := e.inspect(ctx, instances)
		if err != nil {
			return &GateError{Version: version, Instance: instances[0], Why: err.Error()}
		}
		ready := true
		var waiting []string
		for _, s := range states {
			switch {
			case s.status == "exited" || s.status == "dead":
				return &GateError{Version: version, Instance: s.name, Why: exited(s.exitCode) + " at start"}
			case s.restarts > 0 || s.status == "restarting":
				return &GateError{Version: version, Instance: s.name, Why: exited(s.exitCode) + " at start (Docker restarted it)"}
			case s.status != "running":
				ready = false
				waiting = append(waiting, s.name)
			default:
				ok, err := Listening(e.Proc, s.pid, ports[s.name])
				if err != nil || !ok {
					ready = false
					waiting = append(waiting, s.name)
				}
			}
		}
		switch {
		case ready && settled:
			return nil
		case ready:
			settled = true
		default:
			settled = false
			if e.Now().After(deadline) {
				return &GateError{Version: version, Instance: strings.Join(waiting, ", "), Why: fmt.Sprintf("did not listen within CLOCK_HEALTH_TIMEOUT (%s)", timeout)}
			}
		}
		select {
		case <-ctx.Done():
			return &GateError{Version: version, Instance: strings.Join(instances, ", "), Why: "was interrupted before it was healthy: " + ctx.Err().Error()}
		case <-time.After(map[bool]time.Duration{true: time.Second, false: 200 * time.Millisecond}[settled]):
		}
	}
}

// The end-to-end check after the gate: endToEndOK answers in a row through the pod's port,
// with at most endToEndMisses failed tries on the way, endToEndPause apart.
const (
	endToEndOK     = 3
	endToEndMisses = 2
	endToEndPause  = 500 * time.Millisecond
)

// endToEnd fetches /clock through the pod's port, from whichever clock-web the kernel picks,
// until endToEndOK answers come in a row. A miss or two is a busy guest, not a broken
// release: on a TCG guest a new clock-web's first dial to the API once took longer than its
// bound (one 502), and the good release was refused. A release that cannot answer misses
// every try and is refused after endToEndMisses+1 of them.
func (e *Engine) endToEnd(ctx context.Context, version, url string) *GateError {
	misses := 0
	for ok := 0; ok < endToEndOK; {
		err := e.Get(ctx, url)
		if err == nil {
			ok++
			continue
		}
		ok, misses = 0, misses+1
		if misses > endToEndMisses || ctx.Err() != nil {
			return &GateError{Version: version, Instance: "the pod's " + url, Why: fmt.Sprintf("failed %d times, last: %v", misses, err)}
		}
		e.logf("%s: %v; trying again", url, err)
		select {
		case <-ctx.Done():
		case <-time.After(endToEndPause):
		}
	}
	return nil
}

// exited says how an instance ended; Docker reports status 0 while it restarts one.
func exited(code int) string {
	if code == 0 {
		return "exited"
	}
	return "exited with status " + strconv.Itoa(code)
}

// Rollback makes a kept release live again, by the same switch, with no image built.
func (e *Engine) Rollback(ctx context.Context, version, by string, timeout time.Duration, keep int) (Result, error) {
	book, err := LoadBook(e.Dir)
	if err != nil {
		return Result{}, err
	}
	rec, err := book.Rollback(version)
	if err != nil {
		return Result{}, err
	}
	have := e.present(ctx, []string{rec.Spec.API.ID, rec.Spec.Web.ID})
	for _, svc := range Services {
		if !have[rec.Spec.Image(svc).ID] {
			return Result{}, fmt.Errorf("release %s: its %s image %s is no longer on the target; deploy that version again", rec.Spec.Version, svc, rec.Spec.Image(svc).Ref)
		}
	}
	e.logf("rolling back to %s (%s, deployed %s by %s)", rec.Spec.Version, rec.Hash, rec.DeployedAt.Format(time.RFC3339), rec.By)
	return e.Deploy(ctx, Request{Spec: rec.Spec, By: by, HealthTimeout: timeout, Keep: keep}, "rollback")
}

// Repair starts what is missing of the live release, in place, by the same gated start a
// deploy's repair does: at boot, Docker starts each container once, in no order, and an
// instance whose pod was not running yet fails to join its network and stays down. It does
// nothing when no release is live (a stopped clock stays stopped) or all of it runs.
func (e *Engine) Repair(ctx context.Context, by string, timeout time.Duration) (Result, error) {
	book, err := LoadBook(e.Dir)
	if err != nil {
		return Result{}, err
	}
	live := book.Live()
	if live == nil {
		e.logf("no release is live: nothing to repair")
		return Result{}, nil
	}
	if h := Hash(live.Spec, e.Settings); h != live.Hash {
		return Result{}, fmt.Errorf("the settings in %s changed since release %s went live (hash %s, now %s): `%s` switches to them",
			SettingsPath, live.Spec.Version, live.Hash, h, fix.Command("deploy"))
	}
	// Every kept release stays kept: a repair prunes nothing.
	return e.Deploy(ctx, Request{Spec: live.Spec, By: by, HealthTimeout: timeout, Keep: len(book.Releases)}, "repair")
}

// Stop drains and removes every instance and pod and both networks; the book keeps the
// releases, the live one marked stopped.
func (e *Engine) Stop(ctx context.Context, by string) (removed int, err error) {
	inv, err := e.look(ctx)
	if err != nil {
		return 0, err
	}
	all := inv.instances
	for _, svc := range []Service{Web, API} {
		if err := e.remove(ctx, names(all, func(c container) bool { return c.service == svc })); err != nil {
			return 0, err
		}
	}
	var pods []string
	for _, p := range inv.pods {
		pods = append(pods, p.name)
	}
	if len(pods) > 0 {
		if _, err := e.docker(ctx, append([]string{"rm", "--force"}, pods...)...); err != nil {
			return 0, err
		}
	}
	for _, n := range []string{e.Settings.Networks.Frontend, e.Settings.Networks.Backend} {
		if inv.networks[n] {
			if _, err := e.docker(ctx, "network", "rm", n); err != nil {
				return 0, err
			}
		}
	}
	book, err := LoadBook(e.Dir)
	if err != nil {
		return 0, err
	}
	book.Stopped()
	if err := book.Save(e.Dir); err != nil {
		return 0, err
	}
	return len(all), Audit(e.Dir, Event{Time: e.Now().UTC(), Action: "stop", By: by})
}

// State is what the deploy reads in one call to decide what to do.
type State struct {
	Live      *Record         `json:"live,omitempty"`
	Settings  string          `json:"settings_hash"`
	Instances []Instance      `json:"instances"`
	Images    map[string]bool `json:"images"` // asked-for image IDs: present or not
}

// Instance is one running or stopped instance.
type Instance struct {
	Name    string `json:"name"`
	Service string `json:"service"`
	Hash    string `json:"hash"`
	Version string `json:"version"`
	State   string `json:"state"`
}

// State reports the live release, every instance, and which of images the target has.
func (e *Engine) State(ctx context.Context, images []string) (State, error) {
	st := State{Settings: Hash(Spec{}, e.Settings)}
	book, err := LoadBook(e.Dir)
	if err != nil {
		return st, err
	}
	st.Live = book.Live()
	all, err := e.instances(ctx)
	if err != nil {
		return st, err
	}
	for _, c := range all {
		st.Instances = append(st.Instances, Instance{Name: c.name, Service: string(c.service), Hash: c.hash, Version: c.version, State: c.state})
	}
	st.Images = e.present(ctx, images)
	return st, nil
}

// present says which of the image IDs the target has, in one docker command: it prints the
// IDs it found and fails for the others.
func (e *Engine) present(ctx context.Context, ids []string) map[string]bool {
	have := map[string]bool{}
	if len(ids) == 0 {
		return have
	}
	out, _ := e.docker(ctx, append([]string{"image", "inspect", "--format", "{{.Id}}"}, ids...)...)
	for _, id := range ids {
		have[id] = strings.Contains(out, id)
	}
	return have
}

// inventory is what the target runs of the clock, from two docker commands.
type inventory struct {
	pods      map[Service]container
	instances []container
	networks  map[string]bool
}

// look lists the clock's pods, instances and the target's networks.
func (e *Engine) look(ctx context.Context) (inventory, error) {
	inv := inventory{pods: map[Service]container{}, networks: map[string]bool{}}
	out, err := e.docker(ctx, "ps", "--all", "--filter", "label="+labelRole, "--format",
		`{{.Names}}\t{{.Label "`+labelRole+`"}}\t{{.Label "`+labelService+`"}}\t{{.Label "`+labelHash+`"}}\t{{.Label "`+labelVersion+`"}}\t{{.Label "`+labelPodHash+`"}}\t{{.State}}`)
	if err != nil {
		return inv, err
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 7 {
			continue
		}
		c := container{name: f[0], service: Service(f[2]), hash: f[3], version: f[4], podHash: f[5], state: f[6]}
		switch f[1] {
		case "pod":
			inv.pods[c.service] = c
		case "instance":
			inv.instances = append(inv.instances, c)
		}
	}
	slices.SortFunc(inv.instances, func(a, b container) int { return strings.Compare(a.name, b.name) })
	if len(inv.pods) == len(Services) {
		// Both pods exist, so do the networks they were made on: one docker command saved.
		inv.networks[e.Settings.Networks.Backend], inv.networks[e.Settings.Networks.Frontend] = true, true
		return inv, nil
	}
	nets, err := e.docker(ctx, "network", "ls", "--format", "{{.Name}}")
	if err != nil {
		return inv, err
	}
	for _, n := range strings.Fields(nets) {
		inv.networks[n] = true
	}
	return inv, nil
}

// ensurePods creates the networks, the pod image and both pods when missing, and starts a
// stopped pod. A pod whose settings changed (another published port) is replaced, which
// drops its connections: the one change that is not zero-downtime, and said so.
func (e *Engine) ensurePods(ctx context.Context, inv inventory) error {
	for _, n := range []struct {
		name     string
		internal bool
	}{{e.Settings.Networks.Backend, true}, {e.Settings.Networks.Frontend, false}} {
		if inv.networks[n.name] {
			continue
		}
		args := []string{"network", "create", "--label", labelRole + "=network"}
		if n.internal {
			args = append(args, "--internal")
		}
		if _, err := e.docker(ctx, append(args, n.name)...); err != nil {
			return err
		}
		e.logf("created network %s", n.name)
	}
	imageChecked := false
	for _, svc := range Services {
		args := e.Settings.podArgs(svc)
		want := hashArgs(args[:len(args)-4])
		pod, exists := inv.pods[svc]
		switch {
		case exists && pod.podHash == want && pod.state == "running":
			continue
		case exists && pod.podHash == want:
			if _, err := e.docker(ctx, "start", podName(svc)); err != nil {
				return err
			}
			e.logf("started the stopped pod %s", podName(svc))
			continue
		case exists:
			e.logf("the settings of %s changed: replacing it, which drops its connections", podName(svc))
			if _, err := e.docker(ctx, "rm", "--force", podName(svc)); err != nil {
				return err
			}
		}
		if !imageChecked {
			if err := e.ensurePodImage(ctx); err != nil {
				return err
			}
			imageChecked = true
		}
		if svc == Web {
			e.removeLegacy(ctx)
		}
		if _, err := e.docker(ctx, args...); err != nil {
			return err
		}
		if svc == Web {
			if _, err := e.docker(ctx, "network", "connect", e.Settings.Networks.Backend, podName(svc)); err != nil {
				return err
			}
		}
		e.logf("started the pod %s", podName(svc))
	}
	return nil
}

// ensurePodImage makes the pod image of clockctl itself unless it exists.
func (e *Engine) ensurePodImage(ctx context.Context) error {
	if _, err := e.docker(ctx, "image", "inspect", "--format", "{{.Id}}", PodImage); err == nil {
		return nil
	}
	tar, err := e.PodTar()
	if err != nil {
		return err
	}
	if _, err := e.Docker.Run(ctx, tar, "import", "--change", `ENTRYPOINT ["/clockctl"]`, "-", PodImage); err != nil {
		return err
	}
	e.logf("made the pod image %s", PodImage)
	return nil
}

// legacyNames are the containers of the layout before releases, replaced in place by each
// deploy; clock-web's held the published port the web pod needs.
var legacyNames = []string{"clock-web", "clock-api"}

// removeLegacy removes those containers once, when the web pod is first made: the one
// short outage of the move to releases.
func (e *Engine) removeLegacy(ctx context.Context) {
	for _, n := range legacyNames {
		if out, err := e.docker(ctx, "inspect", "--format", `{{index .Config.Labels "`+labelRole+`"}}`, n); err == nil && strings.TrimSpace(out) == "" {
			if _, err := e.docker(ctx, "rm", "--force", n); err == nil {
				e.logf("removed %s of the layout before releases (it held the port the pod takes)", n)
			}
		}
	}
}

// container is one pod or instance as docker ps lists it.
type container struct {
	name, hash, version, podHash, state string
	service                             Service
}

func (e *Engine) instances(ctx context.Context) ([]container, error) {
	inv, err := e.look(ctx)
	return inv.instances, err
}

type instanceState struct {
	name, status            string
	pid, restarts, exitCode int
}

func (e *Engine) inspect(ctx context.Context, names []string) ([]instanceState, error) {
	out, err := e.docker(ctx, append([]string{"inspect", "--format", "{{.Name}} {{.State.Status}} {{.State.Pid}} {{.RestartCount}} {{.State.ExitCode}}"}, names...)...)
	if err != nil {
		return nil, err
	}
	var states []instanceState
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var s instanceState
		if _, err := fmt.Sscanf(line, "%s %s %d %d %d", &s.name, &s.status, &s.pid, &s.restarts, &s.exitCode); err != nil {
			return nil, fmt.Errorf("docker inspect said %q: %w", line, err)
		}
		s.name = strings.TrimPrefix(s.name, "/")
		states = append(states, s)
	}
	return states, nil
}

// remove stops names (each drains for up to the stop timeout, all at once) and removes them.
func (e *Engine) remove(ctx context.Context, names []string) error {
	if err := e.stop(ctx, names); err != nil {
		return err
	}
	return e.rm(ctx, names)
}

// stop drains names, all at once; one already gone is no error.
func (e *Engine) stop(ctx context.Context, names []string) error {
	if len(names) == 0 {
		return nil
	}
	if _, err := e.docker(ctx, append([]string{"stop", "--time", strconv.Itoa(e.Settings.StopTimeout)}, names...)...); err != nil && !strings.Contains(err.Error(), "No such container") {
		return err
	}
	return nil
}

// rm removes stopped names; one already gone is no error.
func (e *Engine) rm(ctx context.Context, names []string) error {
	if len(names) == 0 {
		return nil
	}
	_, err := e.docker(ctx, append([]string{"rm", "--force"}, names...)...)
	if err != nil && strings.Contains(err.Error(), "No such container") {
		return nil
	}
	return err
}

// prune removes the images no kept release uses; one still used by a container stays.
func (e *Engine) prune(ctx context.Context, ids []string) int {
	if len(ids) == 0 {
		return 0
	}
	// One command; an image a container still uses is refused and stays, the others go.
	out, _ := e.docker(ctx, append([]string{"image", "rm"}, ids...)...)
	n := 0
	for _, id := range ids {
		if strings.Contains(out, "Deleted: "+id) {
			n++
		}
	}
	if n > 0 {
		e.logf("pruned %d image(s) of releases beyond CLOCK_KEEP_RELEASES", n)
	}
	return n
}

func (e *Engine) lastLog(ctx context.Context, name string) string {
	out, err := e.Docker.Logs(ctx, name, 20)
	if err != nil {
		return fmt.Sprintf("(docker logs %s: %v)", name, err)
	}
	return out
}

func runningAll(all []container, h string, replicas int) bool {
	n := 0
	for _, c := range all {
		if c.hash == h && c.state == "running" {
			n++
		}
	}
	return n == 2*replicas
}

func names(all []container, keep func(container) bool) []string {
	var out []string
	for _, c := range all {
		if keep(c) {
			out = append(out, c.name)
		}
	}
	return out
}

func keptRefs(b *Book) []string {
	var refs []string
	for _, r := range b.Releases {
		if r.State != StateFailed {
			refs = append(refs, r.Spec.API.Ref, r.Spec.Web.Ref)
		}
	}
	return refs
}

func hashArgs(args []string) string {
	sum := sha256.Sum256([]byte(strings.Join(args, "\x00")))
	return hex.EncodeToString(sum[:])[:12]
}

// HTTPGet is Engine.Get for the target: one GET that must answer 200.
func HTTPGet(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	res, err := (&http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<10))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", url, res.Status)
	}
	return nil
}
