// Package vm runs the deploy VM under libvirt by shelling out to virsh: it renders the
// domain XML from deploy/libvirt/domain.xml.tmpl, keeps a qcow2 overlay on the base image,
// chooses the acceleration (KVM only where it really boots a guest), finds the VM's address
// from the DHCP leases and waits until SSH logs in with the deploy key.
package vm

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/clock-app/clock/internal/config"
	"github.com/clock-app/clock/internal/progress"
	"github.com/clock-app/clock/internal/state"
)

// Accelerations accepted in Config.Accel.
const (
	AccelAuto = "auto" // KVM when it boots a guest here (probed once, remembered), else TCG
	AccelKVM  = "kvm"  // KVM or an error saying why not
	AccelTCG  = "tcg"  // QEMU's emulator: slow, works everywhere
)

// Defaults of the Config fields; the name and MAC are those of the classic immfly-debian10
// definition, so scripts written for it keep finding the VM.
const (
	DefaultName      = "immfly-debian10"
	DefaultMAC       = "52:54:00:c0:e9:b1"
	DefaultMemoryMiB = 1024
	DefaultVCPUs     = 2
	DefaultURI       = "qemu:///system"
	DefaultNetwork   = "default"
	DefaultMachine   = "q35"
	DefaultUser      = "root"
	DefaultStateDir  = ".state"
	DefaultTemplate  = "deploy/libvirt/domain.xml.tmpl"
)

// Config is everything the VM layer needs. The caller fills it (from CLOCK_* variables);
// zero fields get the defaults above in WithDefaults. Paths may be relative: WithDefaults
// makes them absolute, since libvirt resolves paths in its own working directory.
type Config struct {
	Name      string // domain name (CLOCK_VM_NAME)
	MemoryMiB int    // guest memory in MiB (CLOCK_VM_MEMORY)
	VCPUs     int    // (CLOCK_VM_VCPUS)
	Accel     string // auto, kvm or tcg (CLOCK_VM_ACCEL)
	HostCPU   bool   // pass the host CPU through under KVM (never under TCG)
	MAC       string // the NIC's MAC address
	Network   string // libvirt network providing DHCP
	Machine   string // QEMU machine type; the classic definition used pc-q35-3.1
	URI       string // libvirt connection URI (CLOCK_LIBVIRT_URI)
	StateDir  string // state folder (CLOCK_STATE_DIR); see docs/DESIGN.md
	BaseImage string // raw base image (CLOCK_VM_IMAGE); default <state>/vm/debian12.img
	KeyPath   string // SSH private key (CLOCK_VM_KEY); default <state>/ssh/id_ed25519
	User      string // SSH login user
	Template  string // domain XML template; default deploy/libvirt/domain.xml.tmpl

	// BootTimeout bounds the wait from start to SSH login (lease included); TCG on a busy
	// host needs a few minutes.
	BootTimeout time.Duration
	// KVMProbeTimeout bounds the wait for the kernel's first line on the serial console
	// under KVM before auto falls back to TCG (a working KVM shows it within seconds).
	KVMProbeTimeout time.Duration
	// ShutdownTimeout bounds a graceful shutdown before Down pulls the plug.
	ShutdownTimeout time.Duration

	// Logf receives progress lines; nil discards them.
	Logf progress.Func
}

// WithDefaults returns c with every zero field set to its default and paths made absolute.
func (c Config) WithDefaults() Config {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Name, DefaultName)
	def(&c.Accel, AccelAuto)
	def(&c.MAC, DefaultMAC)
	def(&c.Network, DefaultNetwork)
	def(&c.Machine, DefaultMachine)
	def(&c.URI, DefaultURI)
	def(&c.StateDir, DefaultStateDir)
	def(&c.User, DefaultUser)
	def(&c.Template, DefaultTemplate)
	def(&c.BaseImage, c.state().BaseImage("bookworm"))
	def(&c.KeyPath, c.state().Key())
	c.Accel = strings.ToLower(c.Accel)
	if mac, err := config.NormalizeMAC(c.MAC); err == nil {
		c.MAC = mac // Validate reports the bad ones
	}
	if c.MemoryMiB == 0 {
		c.MemoryMiB = DefaultMemoryMiB
	}
	if c.VCPUs == 0 {
		c.VCPUs = DefaultVCPUs
	}
	if c.BootTimeout == 0 {
		c.BootTimeout = 5 * time.Minute
	}
	if c.KVMProbeTimeout == 0 {
		c.KVMProbeTimeout = 40 * time.Second
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 90 * time.Second
	}
	for _, p := range []*string{&c.StateDir, &c.BaseImage, &c.KeyPath, &c.Template} {
		if abs, err := filepath.Abs(*p); err == nil {
			*p = abs
		}
	}
	return c
}

// maxTimeout caps every wait of the VM layer: longer is a hang, not a slow host.
const maxTimeout = config.MaxBootTimeout

// Validate reports every setting that cannot work, each naming the value and the fix. Call
// it on the result of WithDefaults.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if err := config.CheckDomainName(c.Name); err != nil {
		bad("VM name %q %v (CLOCK_VM_NAME)", c.Name, err)
	}
	if c.MemoryMiB < config.MinVMMemoryMiB || c.MemoryMiB > config.MaxVMMemoryMiB {
		bad("VM memory %d MiB: use %d to %d (CLOCK_VM_MEMORY, in MiB)", c.MemoryMiB, config.MinVMMemoryMiB, config.MaxVMMemoryMiB)
	}
	if c.VCPUs < 1 || c.VCPUs > config.MaxVMVCPUs {
		bad("VM vCPUs %d: use 1 to %d (CLOCK_VM_VCPUS)", c.VCPUs, config.MaxVMVCPUs)
	}
	switch c.Accel {
	case AccelAuto, AccelKVM, AccelTCG:
	default:
		bad("VM acceleration %q: use auto, kvm or tcg (CLOCK_VM_ACCEL)", c.Accel)
	}
	if c.HostCPU && c.Accel == AccelTCG {
		bad("host CPU passthrough needs KVM: drop it or use acceleration kvm/auto")
	}
	if _, err := config.NormalizeMAC(c.MAC); err != nil {
		bad("VM MAC address %q %v (CLOCK_VM_MAC)", c.MAC, err)
	}
	if err := config.CheckLibvirtURI(c.URI); err != nil {
		bad("libvirt URI %q: %v (CLOCK_LIBVIRT_URI)", c.URI, err)
	}
	if c.Network == "" || strings.ContainsAny(c.Network, " /'\"<>&") {
		bad("libvirt network %q is not a network name", c.Network)
	}
	if c.Machine == "" || strings.ContainsAny(c.Machine, " '\"<>&") {
		bad("machine type %q is not a QEMU machine type (e.g. q35 or pc-q35-3.1)", c.Machine)
	}
	if err := config.CheckUser(c.User); err != nil {
		bad("SSH user %q %v (CLOCK_VM_USER)", c.User, err)
	}
	for _, t := range []struct {
		name string
		d    time.Duration
	}{{"boot timeout", c.BootTimeout}, {"KVM probe timeout", c.KVMProbeTimeout}, {"shutdown timeout", c.ShutdownTimeout}} {
		if err := config.CheckDuration(t.d, time.Second, maxTimeout); err != nil {
			bad("%s %s %v", t.name, t.d, err)
		}
	}
	return errors.Join(errs...)
}

// Paths below the state folder (docs/DESIGN.md).

func (c Config) state() state.Dir        { return state.Dir(c.StateDir) }
func (c Config) vmDir() string           { return c.state().VM() }
func (c Config) overlayPath() string     { return c.state().Overlay(c.Name) }
func (c Config) consoleLogPath() string  { return c.state().ConsoleLog(c.Name) }
func (c Config) renderedXMLPath() string { return c.state().DomainXML(c.Name) }
func (c Config) accelProbePath() string  { return c.state().AccelProbe() }
func (c Config) unpinnedPath() string    { return c.state().Unpinned(c.Name) }

// KnownHostsPath is the known_hosts file the VM's host key is pinned in.
func (c Config) KnownHostsPath() string { return c.state().KnownHosts() }

// ConsoleLogPath is the file the VM's serial console is logged to.
func (c Config) ConsoleLogPath() string { return c.consoleLogPath() }
