package release

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"time"
)

// Docker runs the engine's docker commands; Socket is the real one, tests may record.
type Docker interface {
	// Run runs the docker command args with stdin (may be nil) and returns what the CLI
	// would print; a failure's error says why, with the CLI's wording.
	Run(ctx context.Context, stdin io.Reader, args ...string) (string, error)
	// Logs returns the last lines of a container's output, its stdout and stderr together.
	Logs(ctx context.Context, name string, lines int) (string, error)
}

// Labels put on every container the engine makes, and read back to find them.
const (
	labelRole    = "clock.role" // pod or instance
	labelService = "clock.service"
	labelHash    = "clock.config-hash"
	labelVersion = "clock.version"
	labelPodHash = "clock.pod-hash"
)

// The pod image is clockctl itself in a FROM-scratch image, made on the target by
// `docker import`: a holder that only waits for SIGTERM needs nothing else.
const (
	PodImage = "clock-pod:1"
	podCmd   = "pause"
)

// PodTar is a tar of the executable at path as /clockctl, the pod image's only file; clockctl
// passes its own.
func PodTar(path string) (io.Reader, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "clockctl", Mode: 0o755, Size: int64(len(b)), ModTime: time.Unix(0, 0)}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(b); err != nil {
		return nil, err
	}
	return &buf, tw.Close()
}

// podName is the holder of svc's network namespace and port.
func podName(svc Service) string { return "clock-" + string(svc) + "-pod" }

// instanceName is instance n of svc in the release with hash h.
func instanceName(svc Service, h string, n int) string {
	return fmt.Sprintf("clock-%s-%s-%d", svc, h, n)
}

// apiHost is the name clock-web reaches clock-api by: the API pod's alias on the backend.
const apiHost = "clock-api"

// hardening is what every container of the clock runs with (issue #3).
func (s Settings) hardening() []string {
	return []string{
		"--user", s.User, "--read-only", "--cap-drop", "ALL",
		"--security-opt", "no-new-privileges:true",
		"--restart", s.Restart,
		"--log-driver", "json-file", "--log-opt", "max-size=" + s.LogMaxSize, "--log-opt", "max-file=" + s.LogMaxFile,
	}
}

// podArgs is the docker run of svc's holder. It owns the namespace: the network, the
// published port (clock-web's) and tcp_migrate_req, which hands the connections queued at a
// closing listener to another instance's listener instead of resetting them.
func (s Settings) podArgs(svc Service) []string {
	args := []string{"run", "--detach", "--name", podName(svc),
		"--label", labelRole + "=pod", "--label", labelService + "=" + string(svc),
		"--sysctl", "net.ipv4.tcp_migrate_req=1",
		"--memory", "16m", "--pids-limit", "8",
	}
	args = append(args, s.hardening()...)
	if svc == API {
		args = append(args, "--network", s.Networks.Backend, "--network-alias", apiHost)
	} else {
		args = append(args, "--network", s.Networks.Frontend,
			"--publish", fmt.Sprintf("%s:%d:%d", s.BindAddress, s.WebPort, s.WebListenPort))
	}
	args = append(args, "--label", labelPodHash+"="+hashArgs(args), PodImage, podCmd)
	return args
}

// instanceArgs is the docker run of instance n of svc in spec's release.
func (s Settings) instanceArgs(spec Spec, h string, svc Service, n int) []string {
	l := s.Limits[string(svc)]
	args := []string{"run", "--detach", "--name", instanceName(svc, h, n),
		"--label", labelRole + "=instance", "--label", labelService + "=" + string(svc),
		"--label", labelHash + "=" + h, "--label", labelVersion + "=" + spec.Version,
		"--network", "container:" + podName(svc),
		"--memory", l.Memory, "--cpus", l.cpus(spec.Replicas), "--pids-limit", strconv.Itoa(l.Pids),
		"--stop-timeout", strconv.Itoa(s.StopTimeout),
		// The image's own check (exec form: a scratch image has no shell) with timings loose
		// enough for a TCG guest, where starting the check alone can take seconds.
		"--health-interval", s.Health.Interval, "--health-timeout", s.Health.Timeout,
		"--health-retries", strconv.Itoa(s.Health.Retries), "--health-start-period", s.Health.StartPeriod,
	}
	args = append(args, s.hardening()...)
	for _, kv := range s.env(spec, svc) {
		args = append(args, "--env", kv)
	}
	return append(args, spec.Image(svc).ID)
}

// webDialTimeout is clock-web's PROXY_DIAL_TIMEOUT on the target: well under its
// PROXY_TIMEOUT (5s), which still bounds the whole exchange.
const webDialTimeout = "2s"

// env is an instance's environment: the spec's settings of the service, then what the
// engine owns (ports, the API's address, port sharing, GOMEMLIMIT), sorted.
func (s Settings) env(spec Spec, svc Service) []string {
	l := s.Limits[string(svc)]
	vars := map[string]string{}
	if svc == API {
		for k, v := range spec.APIEnv {
			vars[k] = v
		}
		vars["CLOCK_API_PORT"] = strconv.Itoa(s.APIPort)
		vars["CLOCK_API_REUSE_PORT"] = "true"
	} else {
		for k, v := range spec.WebEnv {
			vars[k] = v
		}
		vars["CLOCK_WEB_PORT"] = strconv.Itoa(s.WebListenPort)
		vars["CLOCK_WEB_API_URL"] = fmt.Sprintf("http://%s:%d", apiHost, s.APIPort)
		// A dial to the API is a lookup in Docker's embedded DNS (served by dockerd) and a
		// connect to the API pod on the same host: a dead API is refused at once, so the
		// dial's bound only decides how much of a busy moment it rides out. On a TCG guest,
		// dockerd running four health checks at once answered a new connection's lookup
		// after clock-web's default 500ms: one 502 in 1,505 requests in test:vm, and a new
		// release refused at its end-to-end check in another run.
		vars["CLOCK_WEB_PROXY_DIAL_TIMEOUT"] = webDialTimeout
		vars["CLOCK_WEB_REUSE_PORT"] = "true"
	}
	vars["GOMEMLIMIT"] = l.GoMemLimit
	out := make([]string, 0, len(vars))
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

// port is the port svc's instances listen on in their pod.
func (s Settings) port(svc Service) int {
	if svc == API {
		return s.APIPort
	}
	return s.WebListenPort
}
