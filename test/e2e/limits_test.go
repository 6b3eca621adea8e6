package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"go.yaml.in/yaml/v3"
)

// roleDefaults is where the deployed containers' limits live, relative to the
// repository root: the tests read them there instead of restating them, so a
// test container is limited exactly like the deployed one.
const roleDefaults = "deploy/ansible/roles/clock/defaults/main.yml"

// limits are one service's container limits as the Ansible role deploys them.
type limits struct {
	// prefix is the role's variable prefix for the service (clock_web).
	prefix string
	// memory is the hard memory limit in bytes (clock_<svc>_memory, in
	// Docker's units such as 128m).
	memory int64
	// pids is the pids limit (clock_<svc>_pids_limit).
	pids int64
	// nanoCPUs is the CPU quota (clock_<svc>_cpus); 0 when the role sets none.
	nanoCPUs int64
	// goMemLimit is the container's GOMEMLIMIT (clock_<svc>_go_memory_limit);
	// empty when the role sets none.
	goMemLimit string
}

// deployedLimits reads svc's limits (svc is "clock-api" or "clock-web") from
// the role's defaults. The memory and pids limits are required; GOMEMLIMIT and
// the CPU quota are optional, and their absence is logged, never filled in.
func deployedLimits(t *testing.T, svc string) limits {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, roleDefaults)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read the role's limits: %v", err)
	}
	var vars map[string]any
	if err := yaml.Unmarshal(b, &vars); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	l, err := parseLimits(vars, strings.ReplaceAll(svc, "-", "_"))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if l.goMemLimit == "" {
		t.Logf("%s: %s_go_memory_limit is not set: %s runs without GOMEMLIMIT, as the role would deploy it", roleDefaults, l.prefix, svc)
	}
	if l.nanoCPUs == 0 {
		t.Logf("%s: %s_cpus is not set: %s runs without a CPU limit, as the role would deploy it", roleDefaults, l.prefix, svc)
	}
	return l
}

// parseLimits reads the limits named prefix_* from the role's variables.
func parseLimits(vars map[string]any, prefix string) (limits, error) {
	l := limits{prefix: prefix}
	mem, ok, err := literal(vars, prefix+"_memory")
	if err != nil {
		return l, err
	}
	if !ok {
		return l, fmt.Errorf("%s_memory is not set; the e2e tests run the containers with the deployed memory limit", prefix)
	}
	if l.memory, err = units.RAMInBytes(mem); err != nil || l.memory <= 0 {
		return l, fmt.Errorf("%s_memory=%q is not a memory size in Docker's units (e.g. 128m)", prefix, mem)
	}

	pids, ok, err := literal(vars, prefix+"_pids_limit")
	if err != nil {
		return l, err
	}
	if !ok {
		return l, fmt.Errorf("%s_pids_limit is not set; the e2e tests run the containers with the deployed pids limit", prefix)
	}
	if l.pids, err = strconv.ParseInt(pids, 10, 64); err != nil || l.pids <= 0 {
		return l, fmt.Errorf("%s_pids_limit=%q is not a positive whole number", prefix, pids)
	}

	cpus, ok, err := literal(vars, prefix+"_cpus")
	if err != nil {
		return l, err
	}
	if ok {
		f, err := strconv.ParseFloat(cpus, 64)
		if err != nil || f <= 0 {
			return l, fmt.Errorf("%s_cpus=%q is not a positive number of CPUs (e.g. 0.5)", prefix, cpus)
		}
		l.nanoCPUs = int64(f * 1e9)
	}

	if l.goMemLimit, _, err = literal(vars, prefix+"_go_memory_limit"); err != nil {
		return l, err
	}
	return l, nil
}

// literal is the variable key as a string, and whether it is set. A Jinja
// expression is refused: the tests read literal defaults, they do not
// template.
func literal(vars map[string]any, key string) (string, bool, error) {
	v, ok := vars[key]
	if !ok || v == nil {
		return "", false, nil
	}
	switch v.(type) {
	case string, int, int64, float64:
	default:
		return "", false, fmt.Errorf("%s: got a %T, want a scalar", key, v)
	}
	s := strings.TrimSpace(fmt.Sprint(v))
	if strings.Contains(s, "{{") {
		return "", false, fmt.Errorf("%s=%q is a template; the e2e tests read only literal values from the role's defaults", key, s)
	}
	return s, s != "", nil
}

// hostConfig applies the limits to a container's host config.
func (l limits) hostConfig(hc *container.HostConfig) {
	hc.Memory = l.memory
	// No swap on top: a host with swap would otherwise let the container go
	// past its limit unseen, where the swapless VM kills it.
	hc.MemorySwap = l.memory
	pids := l.pids
	hc.PidsLimit = &pids
	hc.NanoCPUs = l.nanoCPUs
}

// env is the environment the limits add to the container's.
func (l limits) env() map[string]string {
	if l.goMemLimit == "" {
		return map[string]string{}
	}
	return map[string]string{"GOMEMLIMIT": l.goMemLimit}
}

func (l limits) String() string {
	s := fmt.Sprintf("memory %s (%d bytes), pids %d", units.BytesSize(float64(l.memory)), l.memory, l.pids)
	if l.nanoCPUs > 0 {
		s += fmt.Sprintf(", cpus %g", float64(l.nanoCPUs)/1e9)
	}
	if l.goMemLimit != "" {
		s += ", GOMEMLIMIT " + l.goMemLimit
	}
	return s
}

// checkLimitsApplied fails the test unless the container runs with lim: a
// test of behaviour under the deployed limits means nothing without them.
func checkLimitsApplied(t *testing.T, name string, info *container.InspectResponse, lim limits) {
	t.Helper()
	hc := info.HostConfig
	if hc.Memory != lim.memory || hc.PidsLimit == nil || *hc.PidsLimit != lim.pids || hc.NanoCPUs != lim.nanoCPUs {
		pids := "unset"
		if hc.PidsLimit != nil {
			pids = strconv.FormatInt(*hc.PidsLimit, 10)
		}
		t.Fatalf("%s limits: got memory %d, pids %s, NanoCPUs %d, want %s", name, hc.Memory, pids, hc.NanoCPUs, lim)
	}
	for k, v := range lim.env() {
		if !slices.Contains(info.Config.Env, k+"="+v) {
			t.Fatalf("%s environment: got %q, want it to contain %s=%s", name, info.Config.Env, k, v)
		}
	}
}
