// Package config holds the deploy knobs: every one is an environment variable with the
// prefix CLOCK_, read once by Load and validated before anything starts.
package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/clock-app/clock/internal/fix"
	"github.com/clock-app/clock/internal/state"
)

// Prefix is the environment prefix of every deploy knob.
const Prefix = "CLOCK"

// Config is the whole set of deploy knobs. The `desc` tags are what `mage config` and the
// README print; keep them short and say what the default means.
type Config struct {
	StateDir string `envconfig:"STATE_DIR" default:".state" desc:"folder for generated keys, VM disks, known_hosts, image archives and logs (git-ignored); no ',', '=' or control characters, as it is bind-mounted into the runner"`
	Version  string `envconfig:"VERSION" desc:"image tag to build and deploy (default: git describe --tags --always --dirty)"`

	LibvirtURI  string        `envconfig:"LIBVIRT_URI" default:"qemu:///system" desc:"libvirt connection URI of the QEMU driver (the ext transport and command= are refused: they run a program)"`
	VMName      string        `envconfig:"VM_NAME" default:"immfly-debian10" desc:"libvirt domain name"`
	VMMemoryMiB int           `envconfig:"VM_MEMORY" default:"1024" desc:"VM memory in MiB (256-65536)"`
	VMVCPUs     int           `envconfig:"VM_VCPUS" default:"2" desc:"VM virtual CPUs (1-64)"`
	VMAccel     string        `envconfig:"VM_ACCEL" default:"auto" desc:"auto (KVM where it boots a guest, else TCG), kvm or tcg"`
	VMImage     string        `envconfig:"VM_IMAGE" desc:"your own raw disk image (e.g. debian10-ssh.img); empty: build Debian 12 with vm:image"`
	VMKey       string        `envconfig:"VM_KEY" desc:"private key that logs into VM_IMAGE (required with it); empty: generated ed25519 key"`
	VMMAC       string        `envconfig:"VM_MAC" default:"52:54:00:c0:e9:b1" desc:"MAC of the VM's NIC (the classic definition's; the DHCP lease is found by it); unicast, ':' or '-', either case, used lower-case with ':'"`
	VMUser      string        `envconfig:"VM_USER" default:"root" desc:"SSH user on the VM (a POSIX user name)"`
	VMBoot      time.Duration `envconfig:"VM_BOOT_TIMEOUT" default:"5m" desc:"how long vm:up waits for a DHCP lease and then for SSH (30s to 1h)"`
	VMSuite     string        `envconfig:"VM_SUITE" default:"bookworm" desc:"Debian suite that vm:image builds (bookworm or bullseye)"`

	TargetHost string `envconfig:"TARGET_HOST" desc:"deploy to this running host (IP address or RFC 1123 host name) instead of the local VM (skips vm:up)"`
	TargetPort int    `envconfig:"TARGET_PORT" default:"22" desc:"SSH port of TARGET_HOST (decimal: 010 is refused, not port 8)"`
	TargetUser string `envconfig:"TARGET_USER" default:"root" desc:"SSH user of TARGET_HOST (root or passwordless sudo; a POSIX user name)"`
	TargetKey  string `envconfig:"TARGET_KEY" desc:"private key for TARGET_HOST (required with it)"`

	HTTPPort         int    `envconfig:"HTTP_PORT" default:"80" desc:"host port of clock-web on the target"`
	AnsibleBaseImage string `envconfig:"ANSIBLE_BASE_IMAGE" default:"debian:bookworm-slim" desc:"base of the Ansible runner image; built locally with mmdebstrap when it cannot be pulled"`
	APILogLevel      string `envconfig:"API_LOG_LEVEL" default:"info" desc:"CLOCK_API_LOG_LEVEL given to the deployed clock-api (debug, info, warn, error)"`

	Replicas      int           `envconfig:"REPLICAS" default:"2" desc:"instances of each service (1-8): the crash of one is absorbed by the others"`
	HealthTimeout time.Duration `envconfig:"HEALTH_TIMEOUT" default:"60s" desc:"how long a new release's instances have to start listening and stay up before deploy gives up on it (5s to 10m)"`
	KeepReleases  int           `envconfig:"KEEP_RELEASES" default:"3" desc:"releases whose images the target keeps for rollback (1-20); older ones are pruned on the target and here"`
	Converge      string        `envconfig:"CONVERGE" default:"auto" desc:"auto: run the playbook only when it, its inputs or the target changed; full: always run it"`
	Release       string        `envconfig:"RELEASE" desc:"rollback: the version to go back to (default: the previous release)"`
}

// Load reads the knobs from the process environment and validates them. Every error names
// the variable, the bad value and what is allowed.
func Load() (Config, error) {
	var c Config
	if err := checkDecimals(os.LookupEnv); err != nil {
		return Config{}, err
	}
	if err := envconfig.Process(Prefix, &c); err != nil {
		return Config{}, explain(err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c.Normalized(), nil
}

// Normalized returns c with every value in the one spelling the rest of the tooling
// compares against (today: the MAC in lower case with colons). Call it on a valid Config.
func (c Config) Normalized() Config {
	if mac, err := NormalizeMAC(c.VMMAC); err == nil {
		c.VMMAC = mac
	}
	return c
}

// checkDecimals refuses an integer knob that is not plain decimal before envconfig reads
// it with strconv's base 0 (010 would be port 8, 0x50 port 80).
func checkDecimals(lookup func(string) (string, bool)) error {
	var errs []error
	t := reflect.TypeOf(Config{})
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Type.Kind() != reflect.Int {
			continue
		}
		name := Prefix + "_" + f.Tag.Get("envconfig")
		if v, ok := lookup(name); ok && v != "" {
			if err := CheckDecimal(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", name, v, err))
			}
		}
	}
	return errors.Join(errs...)
}

// explain turns envconfig's parse errors into the variable=value form used everywhere else.
func explain(err error) error {
	var pe *envconfig.ParseError
	if errors.As(err, &pe) {
		// KeyName already carries the prefix.
		return fmt.Errorf("%s=%q: not a valid %s", pe.KeyName, pe.Value, pe.TypeName)
	}
	return err
}

// The bounds of CLOCK_VM_BOOT_TIMEOUT: a TCG boot to SSH takes about a minute, and a wait
// of more than an hour is a hang, not a slow boot.
const (
	MinBootTimeout = 30 * time.Second
	MaxBootTimeout = time.Hour
)

// The bounds of the VM's size, for CLOCK_VM_MEMORY and CLOCK_VM_VCPUS and for the VM layer
// itself: one place, so the knob and the layer cannot disagree.
const (
	MinVMMemoryMiB = 256
	MaxVMMemoryMiB = 65536
	MaxVMVCPUs     = 64
)

// Validate checks every knob and the combinations between them.
func (c Config) Validate() error {
	var errs []error
	bad := func(name, value, want string) {
		errs = append(errs, fmt.Errorf("%s_%s=%q: %s", Prefix, name, value, want))
	}
	if strings.TrimSpace(c.StateDir) == "" {
		bad("STATE_DIR", c.StateDir, "must name a folder")
	} else if err := CheckMountPath(c.State().Root()); err != nil {
		// Its files are bind-mounted into the Ansible runner: the absolute path counts.
		bad("STATE_DIR", c.StateDir, err.Error())
	}
	if c.Version != "" && !versionRE.MatchString(c.Version) {
		bad("VERSION", c.Version, "must be a valid image tag ([A-Za-z0-9_.-], at most 128 characters)")
	}
	if err := CheckLibvirtURI(c.LibvirtURI); err != nil {
		bad("LIBVIRT_URI", c.LibvirtURI, err.Error())
	}
	if err := CheckDomainName(c.VMName); err != nil {
		bad("VM_NAME", c.VMName, err.Error())
	}
	if c.VMMemoryMiB < MinVMMemoryMiB || c.VMMemoryMiB > MaxVMMemoryMiB {
		bad("VM_MEMORY", strconv.Itoa(c.VMMemoryMiB), fmt.Sprintf("must be between %d and %d (MiB)", MinVMMemoryMiB, MaxVMMemoryMiB))
	}
	if c.VMVCPUs < 1 || c.VMVCPUs > MaxVMVCPUs {
		bad("VM_VCPUS", strconv.Itoa(c.VMVCPUs), fmt.Sprintf("must be between 1 and %d", MaxVMVCPUs))
	}
	switch c.VMAccel {
	case "auto", "kvm", "tcg":
	default:
		bad("VM_ACCEL", c.VMAccel, "must be auto, kvm or tcg")
	}
	if c.VMImage != "" && c.VMKey == "" {
		bad("VM_KEY", c.VMKey, "is required with CLOCK_VM_IMAGE: the private key that logs into that image")
	}
	if c.VMKey != "" && c.VMImage == "" {
		bad("VM_IMAGE", c.VMImage, "is required with CLOCK_VM_KEY (the key belongs to your own image)")
	}
	if c.VMImage != "" {
		if err := readable(c.VMImage); err != nil {
			bad("VM_IMAGE", c.VMImage, err.Error())
		}
	}
	if c.VMKey != "" {
		if err := readable(c.VMKey); err != nil {
			bad("VM_KEY", c.VMKey, err.Error())
		}
	}
	if _, err := NormalizeMAC(c.VMMAC); err != nil {
		bad("VM_MAC", c.VMMAC, err.Error())
	}
	if err := CheckUser(c.VMUser); err != nil {
		bad("VM_USER", c.VMUser, err.Error())
	}
	if err := CheckDuration(c.VMBoot, MinBootTimeout, MaxBootTimeout); err != nil {
		bad("VM_BOOT_TIMEOUT", c.VMBoot.String(), err.Error()+" (a TCG boot takes about a minute)")
	}
	switch c.VMSuite {
	case "bookworm", "bullseye":
	default:
		bad("VM_SUITE", c.VMSuite, "must be bookworm or bullseye (buster can no longer be bootstrapped from the mirror)")
	}
	if c.TargetHost != "" {
		if err := CheckHost(c.TargetHost); err != nil {
			bad("TARGET_HOST", c.TargetHost, err.Error())
		}
		if c.TargetKey == "" {
			bad("TARGET_KEY", c.TargetKey, "is required with CLOCK_TARGET_HOST: the private key that logs into it")
		} else if err := readable(c.TargetKey); err != nil {
			bad("TARGET_KEY", c.TargetKey, err.Error())
		}
	}
	if err := CheckUser(c.TargetUser); err != nil {
		bad("TARGET_USER", c.TargetUser, err.Error())
	}
	if c.TargetPort < 1 || c.TargetPort > 65535 {
		bad("TARGET_PORT", strconv.Itoa(c.TargetPort), "must be a port number (1-65535)")
	}
	if c.HTTPPort < 1 || c.HTTPPort > 65535 {
		bad("HTTP_PORT", strconv.Itoa(c.HTTPPort), "must be a port number (1-65535)")
	}
	if strings.TrimSpace(c.AnsibleBaseImage) == "" || strings.ContainsAny(c.AnsibleBaseImage, " \t") {
		bad("ANSIBLE_BASE_IMAGE", c.AnsibleBaseImage, "must be an image reference such as debian:bookworm-slim")
	}
	switch c.APILogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("API_LOG_LEVEL", c.APILogLevel, "must be debug, info, warn or error")
	}
	if c.Replicas < 1 || c.Replicas > MaxReplicas {
		bad("REPLICAS", strconv.Itoa(c.Replicas), fmt.Sprintf("must be between 1 and %d", MaxReplicas))
	}
	if err := CheckDuration(c.HealthTimeout, MinHealthTimeout, MaxHealthTimeout); err != nil {
		bad("HEALTH_TIMEOUT", c.HealthTimeout.String(), err.Error()+" (a start under TCG takes seconds)")
	}
	if c.KeepReleases < 1 || c.KeepReleases > 20 {
		bad("KEEP_RELEASES", strconv.Itoa(c.KeepReleases), "must be between 1 and 20")
	}
	switch c.Converge {
	case "auto", "full":
	default:
		bad("CONVERGE", c.Converge, "must be auto or full")
	}
	if c.Release != "" && !versionRE.MatchString(c.Release) {
		bad("RELEASE", c.Release, "must be a version as `"+fix.Command("releases")+"` lists it")
	}
	return errors.Join(errs...)
}

// The bounds of the release knobs. Eight instances of each service fill a 1 GiB VM's
// memory limits (128 MiB each); a health wait of more than ten minutes is a hang.
const (
	MaxReplicas      = 8
	MinHealthTimeout = 5 * time.Second
	MaxHealthTimeout = 10 * time.Minute
)

// versionRE is a valid image tag: a version names the images of a release.
var versionRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

func readable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return errors.New("no such file")
		}
		return fmt.Errorf("cannot be read: %v", errors.Unwrap(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.IsDir() {
		return errors.New("is a folder, want a file")
	}
	return nil
}

// Remote reports whether the deploy goes to a given host instead of the local VM.
func (c Config) Remote() bool { return c.TargetHost != "" }

// State is the state folder's layout, made absolute so that containers can mount it.
func (c Config) State() state.Dir { return state.New(c.StateDir) }

// DeployKey is the private key deploys log in with: the user's for a given host
// (CLOCK_TARGET_KEY) or their own image (CLOCK_VM_KEY), else ours in the state folder, which
// is generated when missing (generate). sshx.OpenKey takes both results.
func (c Config) DeployKey() (path string, generate bool) {
	switch {
	case c.Remote():
		return c.TargetKey, false
	case c.VMKey != "":
		return c.VMKey, false
	}
	return c.State().Key(), true
}

// BaseImage is the local VM's base disk: the user's (CLOCK_VM_IMAGE), or the one vm:image
// builds for CLOCK_VM_SUITE.
func (c Config) BaseImage() string {
	if c.VMImage != "" {
		return c.VMImage
	}
	return c.State().BaseImage(c.VMSuite)
}

// Names lists every variable, in declaration order.
func Names() []string {
	var names []string
	for _, v := range vars() {
		names = append(names, v.name)
	}
	return names
}

type variable struct{ name, def, desc string }

// vars asks envconfig for the variables, so the list can never drift from the struct.
func vars() []variable {
	const format = "{{range .}}{{usage_key .}}\x1f{{usage_default .}}\x1f{{usage_description .}}\n{{end}}"
	var b strings.Builder
	if err := envconfig.Usagef(Prefix, &Config{}, &b, format); err != nil {
		panic(err) // the struct and format are static: a failure here is a programming error
	}
	var out []variable
	for _, line := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		f := strings.Split(line, "\x1f")
		out = append(out, variable{f[0], f[1], f[2]})
	}
	return out
}

// Usage writes every variable with its default and meaning.
func Usage(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tDEFAULT\tMEANING")
	for _, v := range vars() {
		def := v.def
		if def == "" {
			def = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", v.name, def, v.desc)
	}
	return tw.Flush()
}

// Effective writes every variable with the value a target would use (the environment's,
// normalised, or the default) and where it came from, then returns Load's error: the
// values of a bad configuration are shown too, so the bad one can be found among them.
func Effective(w io.Writer) error {
	c, err := Load()
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tVALUE\tFROM")
	v := reflect.ValueOf(c)
	for i, knob := range vars() {
		raw, set := os.LookupEnv(knob.name)
		from, value := "default", knob.def
		if set && raw != "" {
			from, value = "environment", raw
		}
		if err == nil {
			value = fmt.Sprint(v.Field(i).Interface())
		}
		if value == "" {
			value = "(empty)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", knob.name, value, from)
	}
	if ferr := tw.Flush(); ferr != nil {
		return ferr
	}
	return err
}

// Markdown writes the variables as a Markdown table, for the README.
func Markdown(w io.Writer) {
	fmt.Fprintln(w, "| Variable | Default | Meaning |")
	fmt.Fprintln(w, "| --- | --- | --- |")
	for _, v := range vars() {
		def := "`" + v.def + "`"
		if v.def == "" {
			def = "(empty)"
		}
		fmt.Fprintf(w, "| `%s` | %s | %s |\n", v.name, def, v.desc)
	}
}
