package release

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Image IDs as docker image inspect prints them: sha256 and 64 hex digits.
var (
	apiID    = "sha256:" + strings.Repeat("a", 64)
	webID    = "sha256:" + strings.Repeat("b", 64)
	oldAPIID = "sha256:" + strings.Repeat("c", 64)
	oldWebID = "sha256:" + strings.Repeat("d", 64)
)

// testSettings are settings the clock role could write: every field set, Check passes.
func testSettings() Settings {
	return Settings{
		User:          "10001:10001",
		Networks:      Networks{Backend: "clock-backend", Frontend: "clock-frontend"},
		BindAddress:   "0.0.0.0",
		WebPort:       8080,
		WebListenPort: 8081,
		APIPort:       8090,
		Limits: map[string]Limits{
			"api": {Memory: "256m", CPUs: 0.5, Pids: 64, GoMemLimit: "200MiB"},
			"web": {Memory: "128m", CPUs: 0.25, Pids: 32, GoMemLimit: "100MiB"},
		},
		StopTimeout: 30,
		Restart:     "unless-stopped",
		LogMaxSize:  "10m",
		LogMaxFile:  "3",
		Health:      Healthcheck{Interval: "10s", Timeout: "5s", Retries: 3, StartPeriod: "30s"},
	}
}

// testSpec is a release Check accepts.
func testSpec() Spec {
	return Spec{
		Version:  "1.4.2",
		API:      Image{Ref: "clock-api:1.4.2", ID: apiID},
		Web:      Image{Ref: "clock-web:1.4.2", ID: webID},
		APIEnv:   map[string]string{"CLOCK_API_LOG_LEVEL": "info", "CLOCK_API_TZ": "UTC"},
		WebEnv:   map[string]string{"CLOCK_WEB_TITLE": "Clock"},
		Replicas: 2,
	}
}

func TestHashStable(t *testing.T) {
	s, set := testSpec(), testSettings()
	h := Hash(s, set)
	if len(h) != 12 {
		t.Errorf("Hash = %q, want 12 hex digits: it is part of every instance name", h)
	}
	if again := Hash(testSpec(), testSettings()); again != h {
		t.Errorf("Hash of equal values = %q then %q, want the same: equal hashes mean nothing changes", h, again)
	}
	// The same maps built in another order: encoding/json sorts keys, so no difference.
	s2 := testSpec()
	s2.APIEnv = map[string]string{}
	s2.APIEnv["CLOCK_API_TZ"] = "UTC"
	s2.APIEnv["CLOCK_API_LOG_LEVEL"] = "info"
	set2 := testSettings()
	set2.Limits = map[string]Limits{"web": set.Limits["web"], "api": set.Limits["api"]}
	if got := Hash(s2, set2); got != h {
		t.Errorf("Hash with maps filled in another order = %q, want %q: map order must not matter", got, h)
	}
	// A nil and an empty environment run the same instances.
	s3, s4 := testSpec(), testSpec()
	s3.WebEnv, s4.WebEnv = nil, map[string]string{}
	if Hash(s3, set) != Hash(s4, set) {
		t.Errorf("Hash differs between a nil and an empty WebEnv (%q, %q), want the same: both run the same environment", Hash(s3, set), Hash(s4, set))
	}
}

func TestHashChanges(t *testing.T) {
	base := Hash(testSpec(), testSettings())
	for _, tt := range []struct {
		name string
		spec func(*Spec)
		set  func(*Settings)
	}{
		{name: "api image ID", spec: func(s *Spec) { s.API.ID = oldAPIID }},
		{name: "web image ID", spec: func(s *Spec) { s.Web.ID = oldWebID }},
		{name: "api env value", spec: func(s *Spec) { s.APIEnv["CLOCK_API_LOG_LEVEL"] = "debug" }},
		{name: "api env key added", spec: func(s *Spec) { s.APIEnv["CLOCK_API_NEW"] = "1" }},
		{name: "web env value", spec: func(s *Spec) { s.WebEnv["CLOCK_WEB_TITLE"] = "Other" }},
		{name: "replicas", spec: func(s *Spec) { s.Replicas = 3 }},
		{name: "version (instances carry it as a label)", spec: func(s *Spec) { s.Version = "1.4.3" }},
		{name: "user", set: func(s *Settings) { s.User = "10002:10002" }},
		{name: "backend network", set: func(s *Settings) { s.Networks.Backend = "other" }},
		{name: "frontend network", set: func(s *Settings) { s.Networks.Frontend = "other" }},
		{name: "bind address", set: func(s *Settings) { s.BindAddress = "127.0.0.1" }},
		{name: "web port", set: func(s *Settings) { s.WebPort = 9080 }},
		{name: "web container port", set: func(s *Settings) { s.WebListenPort = 9081 }},
		{name: "api port", set: func(s *Settings) { s.APIPort = 9090 }},
		{name: "api memory", set: func(s *Settings) { l := s.Limits["api"]; l.Memory = "512m"; s.Limits["api"] = l }},
		{name: "web cpus", set: func(s *Settings) { l := s.Limits["web"]; l.CPUs = 1; s.Limits["web"] = l }},
		{name: "api pids", set: func(s *Settings) { l := s.Limits["api"]; l.Pids = 65; s.Limits["api"] = l }},
		{name: "web GOMEMLIMIT", set: func(s *Settings) { l := s.Limits["web"]; l.GoMemLimit = "90MiB"; s.Limits["web"] = l }},
		{name: "stop timeout", set: func(s *Settings) { s.StopTimeout = 31 }},
		{name: "restart policy", set: func(s *Settings) { s.Restart = "always" }},
		{name: "log max size", set: func(s *Settings) { s.LogMaxSize = "20m" }},
		{name: "log max file", set: func(s *Settings) { s.LogMaxFile = "5" }},
		{name: "health interval", set: func(s *Settings) { s.Health.Interval = "11s" }},
		{name: "health timeout", set: func(s *Settings) { s.Health.Timeout = "6s" }},
		{name: "health retries", set: func(s *Settings) { s.Health.Retries = 4 }},
		{name: "health start period", set: func(s *Settings) { s.Health.StartPeriod = "31s" }},
	} {
		s, set := testSpec(), testSettings()
		if tt.spec != nil {
			tt.spec(&s)
		}
		if tt.set != nil {
			tt.set(&set)
		}
		if got := Hash(s, set); got == base {
			t.Errorf("%s changed: Hash = %q, the same as before; want a new hash, so the next deploy replaces the instances", tt.name, got)
		}
	}
}

func TestSpecCheck(t *testing.T) {
	if err := testSpec().Check(); err != nil {
		t.Fatalf("Check of a good spec = %v, want nil", err)
	}
	for _, tt := range []struct {
		name string
		edit func(*Spec)
		want string // in the error
	}{
		{"empty version", func(s *Spec) { s.Version = "" }, "is not an image tag"},
		{"version with a slash", func(s *Spec) { s.Version = "feature/x" }, "is not an image tag"},
		{"version starting with a dot", func(s *Spec) { s.Version = ".1" }, "is not an image tag"},
		{"version of 129 characters", func(s *Spec) { s.Version = strings.Repeat("v", 129) }, "is not an image tag"},
		{"api ID without sha256:", func(s *Spec) { s.API.ID = strings.Repeat("a", 64) }, "api image ID"},
		{"web ID too short", func(s *Spec) { s.Web.ID = "sha256:" + strings.Repeat("b", 63) }, "web image ID"},
		{"web ID uppercase", func(s *Spec) { s.Web.ID = "sha256:" + strings.Repeat("B", 64) }, "web image ID"},
		{"api ID a tag", func(s *Spec) { s.API.ID = "clock-api:1.4.2" }, "api image ID"},
		{"0 replicas", func(s *Spec) { s.Replicas = 0 }, "0 replicas, want 1 to 8"},
		{"9 replicas", func(s *Spec) { s.Replicas = 9 }, "9 replicas, want 1 to 8"},
	} {
		s := testSpec()
		tt.edit(&s)
		err := s.Check()
		if err == nil {
			t.Errorf("%s: Check = nil, want an error containing %q", tt.name, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Check = %q, want it to contain %q", tt.name, err, tt.want)
		}
	}
	for _, n := range []int{1, 8} {
		s := testSpec()
		s.Replicas = n
		if err := s.Check(); err != nil {
			t.Errorf("Check with %d replicas = %v, want nil: 1 to 8 are allowed", n, err)
		}
	}
	s := testSpec()
	s.Version = "v1.4.2-rc.1_b" + strings.Repeat("x", 115) // 128 characters
	if err := s.Check(); err != nil {
		t.Errorf("Check of version %q = %v, want nil: a 128-character tag is valid", s.Version, err)
	}
}

func TestSettingsCheck(t *testing.T) {
	if err := testSettings().Check(); err != nil {
		t.Fatalf("Check of good settings = %v, want nil", err)
	}
	for _, tt := range []struct {
		name string
		edit func(*Settings)
		want string
	}{
		{"user 0:0", func(s *Settings) { s.User = "0:0" }, "non-root"},
		{"user 0", func(s *Settings) { s.User = "0" }, "non-root"},
		{"user 0:10001", func(s *Settings) { s.User = "0:10001" }, "non-root"},
		{"empty user", func(s *Settings) { s.User = "" }, "non-root"},
		{"no backend", func(s *Settings) { s.Networks.Backend = "" }, "both networks"},
		{"no frontend", func(s *Settings) { s.Networks.Frontend = "" }, "both networks"},
		{"web port 0", func(s *Settings) { s.WebPort = 0 }, "want 1-65535"},
		{"web container port 65536", func(s *Settings) { s.WebListenPort = 65536 }, "want 1-65535"},
		{"api port negative", func(s *Settings) { s.APIPort = -1 }, "want 1-65535"},
		{"stop timeout 0", func(s *Settings) { s.StopTimeout = 0 }, "stop_timeout"},
		{"no limits at all", func(s *Settings) { s.Limits = nil }, "limits of api"},
		{"no web limits", func(s *Settings) { delete(s.Limits, "web") }, "limits of web"},
		{"api memory missing", func(s *Settings) { l := s.Limits["api"]; l.Memory = ""; s.Limits["api"] = l }, "limits of api"},
		{"web cpus 0", func(s *Settings) { l := s.Limits["web"]; l.CPUs = 0; s.Limits["web"] = l }, "limits of web"},
		{"api pids 0", func(s *Settings) { l := s.Limits["api"]; l.Pids = 0; s.Limits["api"] = l }, "limits of api"},
	} {
		s := testSettings()
		tt.edit(&s)
		err := s.Check()
		if err == nil {
			t.Errorf("%s: Check = nil, want an error containing %q", tt.name, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Check = %q, want it to contain %q", tt.name, err, tt.want)
		}
	}
	// Root's group is refused too: files of group 0 would be readable.
	for _, u := range []string{"1000:0", "00:10", "root:root", "10001"} {
		s := testSettings()
		s.User = u
		if err := s.Check(); err == nil {
			t.Errorf("Check with user %q = nil, want an error: not a numeric non-root uid:gid", u)
		}
	}
	// uids that merely contain 0 are not root.
	for _, u := range []string{"10001:10001", "1000:100", "100:100"} {
		s := testSettings()
		s.User = u
		if err := s.Check(); err != nil {
			t.Errorf("Check with user %q = %v, want nil: it is not uid 0", u, err)
		}
	}
}

func TestSettingsLimitsCPUs(t *testing.T) {
	for _, tt := range []struct {
		cpus     float64
		replicas int
		want     string
	}{
		{0.5, 2, "0.250"},
		{0.5, 1, "0.500"},
		{1, 3, "0.333"},
		{2, 8, "0.250"},
	} {
		if got := (Limits{CPUs: tt.cpus}).cpus(tt.replicas); got != tt.want {
			t.Errorf("cpus %v over %d replicas = %q, want %q: the share is split among the instances", tt.cpus, tt.replicas, got, tt.want)
		}
	}
}

func TestLoadSettings(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadSettings(filepath.Join(dir, "missing.json")); err == nil || !strings.Contains(err.Error(), "run the playbook") {
		t.Errorf("LoadSettings of a missing file = %v, want an error that says to run the playbook", err)
	}
	good := filepath.Join(dir, "settings.json")
	b, err := json.Marshal(testSettings())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(good, b, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := LoadSettings(good)
	if err != nil {
		t.Fatalf("LoadSettings of good settings = %v, want nil", err)
	}
	if !reflect.DeepEqual(got, testSettings()) {
		t.Errorf("LoadSettings = %+v, want %+v: every field must survive the role's JSON", got, testSettings())
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSettings(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("LoadSettings of a corrupt file = %v, want an error naming %s", err, bad)
	}
	root := testSettings()
	root.User = "0:0"
	b, _ = json.Marshal(root)
	if err := os.WriteFile(bad, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSettings(bad); err == nil || !strings.Contains(err.Error(), "non-root") {
		t.Errorf("LoadSettings of settings with user 0:0 = %v, want Check's non-root error", err)
	}
}
