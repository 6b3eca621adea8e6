package release

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/clock-app/clock/internal/fix"
)

// SettingsPath is where the clock role writes Settings (from its defaults, the one home of
// these values) and where clockctl reads them.
const SettingsPath = "/etc/clock/settings.json"

// Settings is how the target runs every release: the hardening of issue #3, limits, ports and
// names. They belong to the host, not to a release, but a change to them changes each
// release's Hash, so the next deploy replaces the instances the same zero-downtime way.
type Settings struct {
	User          string            `json:"user"` // uid:gid, never root
	Networks      Networks          `json:"networks"`
	BindAddress   string            `json:"bind_address"`
	WebPort       int               `json:"web_port"`           // published on the target
	WebListenPort int               `json:"web_container_port"` // clock-web's in its pod
	APIPort       int               `json:"api_port"`
	Limits        map[string]Limits `json:"limits"` // by Service
	StopTimeout   int               `json:"stop_timeout"`
	Restart       string            `json:"restart_policy"`
	LogMaxSize    string            `json:"log_max_size"`
	LogMaxFile    string            `json:"log_max_file"`
	Health        Healthcheck       `json:"healthcheck"`
}

// Networks are the two Docker networks: the backend is internal (no route out) and carries
// only clock-web to clock-api; the frontend carries the published port.
type Networks struct {
	Backend  string `json:"backend"`
	Frontend string `json:"frontend"`
}

// Limits bound one service. CPUs is the service's share, split among its instances, so more
// replicas never take more CPU from sshd and dockerd than one would.
type Limits struct {
	Memory     string  `json:"memory"`
	CPUs       float64 `json:"cpus"`
	Pids       int     `json:"pids"`
	GoMemLimit string  `json:"go_memory_limit"`
}

// Healthcheck is Docker's liveness check of each instance (the release gate is the engine's).
type Healthcheck struct {
	Interval    string `json:"interval"`
	Timeout     string `json:"timeout"`
	Retries     int    `json:"retries"`
	StartPeriod string `json:"start_period"`
}

// LoadSettings reads and checks the settings file.
func LoadSettings(path string) (Settings, error) {
	var s Settings
	b, err := os.ReadFile(path)
	if err != nil {
		return s, fmt.Errorf("%w (the clock role writes it: run the playbook, %s)", err, fix.Command("CLOCK_CONVERGE=full deploy"))
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	return s, s.Check()
}

// Check reports the first setting the engine could not use.
func (s Settings) Check() error {
	uid, gid, _ := strings.Cut(s.User, ":")
	u, uerr := strconv.Atoi(uid)
	g, gerr := strconv.Atoi(gid)
	switch {
	case uerr != nil || gerr != nil || u <= 0 || g <= 0:
		return fmt.Errorf("settings: user %q: want a numeric non-root uid:gid such as 10001:10001", s.User)
	case s.Networks.Backend == "" || s.Networks.Frontend == "":
		return fmt.Errorf("settings: both networks need a name")
	case !validPort(s.WebPort) || !validPort(s.WebListenPort) || !validPort(s.APIPort):
		return fmt.Errorf("settings: ports %d, %d, %d: want 1-65535", s.WebPort, s.WebListenPort, s.APIPort)
	case s.StopTimeout < 1:
		return fmt.Errorf("settings: stop_timeout %d: want seconds above the services' drain", s.StopTimeout)
	}
	for _, svc := range Services {
		l, ok := s.Limits[string(svc)]
		if !ok || l.Memory == "" || l.CPUs <= 0 || l.Pids < 1 {
			return fmt.Errorf("settings: limits of %s: want memory, cpus and pids", svc)
		}
	}
	return nil
}

func validPort(p int) bool { return p >= 1 && p <= 65535 }

// cpus is one instance's CPU limit, as docker --cpus takes it.
func (l Limits) cpus(replicas int) string {
	return strconv.FormatFloat(l.CPUs/float64(replicas), 'f', 3, 64)
}
