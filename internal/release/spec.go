// Package release is what runs on the target to switch releases without dropping a request:
// the wanted release (Spec), how the target runs it (Settings, written by the clock role),
// the book of releases kept for rollback and the audit log, and the engine that starts a
// release beside the live one, gates it on health and retires the old one. clockctl
// (deploy/clockctl) is its command line on the target; the deploy on this machine sends it a
// Spec. DESIGN.md, "Releases", has the model and its reasons.
package release

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"time"
)

// Service is one of the two services a release runs.
type Service string

// The services of a release, in the order they start: clock-web forwards to clock-api.
const (
	API Service = "api"
	Web Service = "web"
)

// Services lists them in start order.
var Services = []Service{API, Web}

// Image is one image of a release: the tag it was built as and its ID, by which it runs, so
// a tag moved since cannot change what a release is.
type Image struct {
	Ref string `json:"ref"`
	ID  string `json:"id"`
}

// Spec is a release as the deploy asks for it: both images and the settings of the services.
type Spec struct {
	Version  string            `json:"version"`
	API      Image             `json:"api"`
	Web      Image             `json:"web"`
	APIEnv   map[string]string `json:"api_env,omitempty"`
	WebEnv   map[string]string `json:"web_env,omitempty"`
	Replicas int               `json:"replicas"`
}

// Request is one `clockctl deploy`: the release, and how to run the switch.
type Request struct {
	Spec          Spec          `json:"spec"`
	By            string        `json:"by"` // user@host of the operator
	HealthTimeout time.Duration `json:"health_timeout"`
	Keep          int           `json:"keep"`
}

// Image returns the spec's image of svc.
func (s Spec) Image(svc Service) Image {
	if svc == API {
		return s.API
	}
	return s.Web
}

var (
	imageIDRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	versionRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
)

// Check reports what makes s impossible to run.
func (s Spec) Check() error {
	if !versionRE.MatchString(s.Version) {
		return fmt.Errorf("release version %q is not an image tag", s.Version)
	}
	for _, svc := range Services {
		if !imageIDRE.MatchString(s.Image(svc).ID) {
			return fmt.Errorf("release %s: %s image ID %q is not sha256:<64 hex>", s.Version, svc, s.Image(svc).ID)
		}
	}
	if s.Replicas < 1 || s.Replicas > 8 {
		return fmt.Errorf("release %s: %d replicas, want 1 to 8", s.Version, s.Replicas)
	}
	return nil
}

// Hash identifies what a release runs: the spec and the target's settings together, as
// Docker Compose's config-hash label does. Equal hashes mean nothing would change.
// encoding/json writes map keys sorted, so the same values always give the same hash.
func Hash(s Spec, set Settings) string {
	b, err := json.Marshal(struct {
		Spec     Spec     `json:"spec"`
		Settings Settings `json:"settings"`
	}{s, set})
	if err != nil {
		panic(err) // plain structs of strings and numbers always marshal
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:12]
}
