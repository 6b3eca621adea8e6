package vm

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/clock-app/clock/internal/fix"
	"github.com/clock-app/clock/internal/sshx"
)

const templatePath = "../../deploy/libvirt/domain.xml.tmpl"

// testConfig is a valid configuration rooted in a temp state folder.
func testConfig(t testing.TB) Config {
	t.Helper()
	return Config{StateDir: t.TempDir(), Template: templatePath}.WithDefaults()
}

// parsedDomain is the part of the domain XML the tests look at.
type parsedDomain struct {
	Type   string `xml:"type,attr"`
	Name   string `xml:"name"`
	UUID   string `xml:"uuid"`
	Memory struct {
		Value string `xml:",chardata"`
		Unit  string `xml:"unit,attr"`
	} `xml:"memory"`
	CurrentMemory string `xml:"currentMemory"`
	VCPU          string `xml:"vcpu"`
	OS            struct {
		Type struct {
			Machine string `xml:"machine,attr"`
		} `xml:"type"`
	} `xml:"os"`
	CPU *struct {
		Mode string `xml:"mode,attr"`
	} `xml:"cpu"`
	Devices struct {
		Disk struct {
			Driver struct {
				Type string `xml:"type,attr"`
			} `xml:"driver"`
			Source struct {
				File string `xml:"file,attr"`
			} `xml:"source"`
			Target struct {
				Dev string `xml:"dev,attr"`
				Bus string `xml:"bus,attr"`
			} `xml:"target"`
		} `xml:"disk"`
		Interface struct {
			MAC struct {
				Address string `xml:"address,attr"`
			} `xml:"mac"`
			Source struct {
				Network string `xml:"network,attr"`
			} `xml:"source"`
			Model struct {
				Type string `xml:"type,attr"`
			} `xml:"model"`
			Address pciAddress `xml:"address"`
		} `xml:"interface"`
		Serial struct {
			Type string `xml:"type,attr"`
			Log  struct {
				File string `xml:"file,attr"`
			} `xml:"log"`
		} `xml:"serial"`
		Console struct {
			Type string `xml:"type,attr"`
		} `xml:"console"`
		Video struct {
			Model struct {
				Type string `xml:"type,attr"`
			} `xml:"model"`
		} `xml:"video"`
	} `xml:"devices"`
}

type pciAddress struct {
	Type     string `xml:"type,attr"`
	Domain   string `xml:"domain,attr"`
	Bus      string `xml:"bus,attr"`
	Slot     string `xml:"slot,attr"`
	Function string `xml:"function,attr"`
}

func render(t testing.TB, c Config, accel string) parsedDomain {
	t.Helper()
	out, err := Render(c, accel)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	var d parsedDomain
	if err := xml.Unmarshal(out, &d); err != nil {
		t.Fatalf("rendered XML does not parse: %v\n%s", err, out)
	}
	return d
}

func TestRenderDefaultsMatchClassicDefinition(t *testing.T) {
	c := testConfig(t)
	d := render(t, c, AccelTCG)
	checks := []struct{ what, got, want string }{
		{"domain type", d.Type, "qemu"},
		{"name", d.Name, "immfly-debian10"},
		{"uuid", d.UUID, nameUUID("immfly-debian10")},
		{"memory", d.Memory.Value + " " + d.Memory.Unit, "1024 MiB"},
		{"current memory", d.CurrentMemory, "1024"},
		{"vcpus", d.VCPU, "2"}, // the classic has 1; 2 start a release's instances side by side
		{"machine", d.OS.Type.Machine, "q35"},
		{"disk format", d.Devices.Disk.Driver.Type, "qcow2"},
		{"disk file", d.Devices.Disk.Source.File, filepath.Join(c.StateDir, "vm", "immfly-debian10.qcow2")},
		{"disk target", d.Devices.Disk.Target.Dev + "/" + d.Devices.Disk.Target.Bus, "vda/virtio"},
		{"MAC", d.Devices.Interface.MAC.Address, "52:54:00:c0:e9:b1"},
		{"network", d.Devices.Interface.Source.Network, "default"},
		{"NIC model", d.Devices.Interface.Model.Type, "virtio"},
		// bus 0x01 slot 0 is what makes the guest call its NIC enp1s0.
		{"NIC PCI address", fmt.Sprintf("%+v", d.Devices.Interface.Address), "{Type:pci Domain:0x0000 Bus:0x01 Slot:0x00 Function:0x0}"},
		{"serial log", d.Devices.Serial.Log.File, filepath.Join(c.StateDir, "vm", "immfly-debian10.console.log")},
		{"console", d.Devices.Console.Type, "pty"},
		{"video", d.Devices.Video.Model.Type, "qxl"},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %q, want %q", ck.what, ck.got, ck.want)
		}
	}
	if d.CPU != nil {
		t.Errorf("TCG domain has a <cpu mode=%q>: host CPU models abort or crawl under TCG", d.CPU.Mode)
	}
}

func TestRenderSettings(t *testing.T) {
	c := Config{StateDir: t.TempDir(), Template: templatePath, Name: "clock-vm", MemoryMiB: 2048, VCPUs: 2, HostCPU: true, Machine: "pc-q35-3.1"}.WithDefaults()
	d := render(t, c, AccelKVM)
	if d.Type != "kvm" || d.Name != "clock-vm" || d.Memory.Value != "2048" || d.VCPU != "2" || d.OS.Type.Machine != "pc-q35-3.1" {
		t.Errorf("rendered %+v, want kvm clock-vm 2048 MiB 2 vCPUs pc-q35-3.1", d)
	}
	if d.CPU == nil || d.CPU.Mode != "host-passthrough" {
		t.Errorf("KVM with HostCPU: cpu = %+v, want host-passthrough", d.CPU)
	}
	if !strings.HasSuffix(d.Devices.Disk.Source.File, "/clock-vm.qcow2") {
		t.Errorf("disk %q does not follow the name", d.Devices.Disk.Source.File)
	}
	// HostCPU never reaches a TCG domain.
	if d := render(t, c, AccelTCG); d.CPU != nil {
		t.Errorf("TCG domain got <cpu mode=%q>", d.CPU.Mode)
	}
}

func TestRenderEscapesValues(t *testing.T) {
	dir := filepath.Join(t.TempDir(), `it's <a> & "b"`)
	c := Config{StateDir: dir, Template: templatePath}.WithDefaults()
	out, err := Render(c, AccelTCG)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "<a>") || strings.Contains(string(out), "it's") {
		t.Errorf("raw value leaked into the XML:\n%s", out)
	}
	d := render(t, c, AccelTCG)
	if want := filepath.Join(dir, "vm", "immfly-debian10.qcow2"); d.Devices.Disk.Source.File != want {
		t.Errorf("disk file round-trips as %q, want %q", d.Devices.Disk.Source.File, want)
	}
}

func TestRenderRefusesUndecidedAccel(t *testing.T) {
	if _, err := Render(testConfig(t), AccelAuto); err == nil {
		t.Errorf("Render(auto) succeeded; auto must be decided before rendering")
	}
}

func TestRenderBrokenTemplate(t *testing.T) {
	c := testConfig(t)
	if _, err := renderTemplate("<domain><name>{{xml .Name}}</nam></domain>", c, AccelTCG, "u"); err == nil || !strings.Contains(err.Error(), "invalid XML") {
		t.Errorf("renderTemplate(broken XML) = %v, want an invalid XML error", err)
	}
	if _, err := renderTemplate("{{.Nope}}", c, AccelTCG, "u"); err == nil {
		t.Errorf("renderTemplate(unknown field) succeeded")
	}
	c.Template = "/nonexistent/domain.xml.tmpl"
	if _, err := Render(c, AccelTCG); err == nil || !strings.Contains(err.Error(), "domain template") {
		t.Errorf("Render(missing template) = %v", err)
	}
}

// leasesSample is real `virsh net-dhcp-leases default` output (LC_ALL=C, libvirt 9.0) with
// lines added: an older lease of the same MAC, another VM, an expired lease, an IPv6 lease
// and a client without a hostname.
const leasesSample = ` Expiry Time           MAC address         Protocol   IP address           Hostname   Client ID or DUID
------------------------------------------------------------------------------------------------------------------------------------------------
 2026-11-23 00:16:08   52:54:00:c0:e9:b1   ipv4       192.168.122.188/24   debian     ff:56:50:4d:98:00:02:00:00:ab:11:28:b8:39:92:1d:70:f3:9d
 2026-11-22 23:50:00   52:54:00:c0:e9:b1   ipv4       192.168.122.17/24    debian     ff:00:c0:e9:b1:00:01:00:01:26:56:9c:47:52:54:00:a3:08:2e
 2026-11-23 00:10:00   52:54:00:aa:bb:cc   ipv4       192.168.122.99/24    other      -
 2026-11-22 20:00:00   52:54:00:de:ad:01   ipv4       192.168.122.50/24    -          -
 2026-11-23 00:20:00   52:54:00:C0:E9:B1   ipv6       fd00::10/64          debian     00:04:aa

`

func TestParseLeases(t *testing.T) {
	leases, err := parseLeases(leasesSample, time.UTC)
	if err != nil {
		t.Fatalf("parseLeases: %v", err)
	}
	if len(leases) != 5 {
		t.Fatalf("got %d leases, want 5: %+v", len(leases), leases)
	}
	first := leases[0]
	if first.MAC != "52:54:00:c0:e9:b1" || first.IP.String() != "192.168.122.188" || first.Hostname != "debian" ||
		!first.Expiry.Equal(time.Date(2026, 11, 23, 0, 16, 8, 0, time.UTC)) {
		t.Errorf("first lease = %+v", first)
	}
	if leases[3].Hostname != "" {
		t.Errorf("hostname '-' parsed as %q, want empty", leases[3].Hostname)
	}

	now := time.Date(2026, 11, 22, 23, 55, 0, 0, time.UTC)
	tests := []struct {
		mac    string
		now    time.Time
		wantIP string
	}{
		{"52:54:00:c0:e9:b1", now, "192.168.122.188"}, // the newest of two, not the IPv6 one
		{"52:54:00:C0:E9:B1", now, "192.168.122.188"}, // MAC case does not matter
		{"52:54:00:aa:bb:cc", now, "192.168.122.99"},
		{"52:54:00:de:ad:01", now, ""},                                           // expired
		{"52:54:00:00:00:00", now, ""},                                           // no lease at all
		{"52:54:00:c0:e9:b1", time.Date(2026, 11, 23, 1, 0, 0, 0, time.UTC), ""}, // all expired
	}
	for _, tt := range tests {
		l, ok := currentLease(leases, tt.mac, tt.now)
		got := ""
		if ok {
			got = l.IP.String()
		}
		if got != tt.wantIP {
			t.Errorf("currentLease(%s at %s) = %q, want %q", tt.mac, tt.now.Format(time.TimeOnly), got, tt.wantIP)
		}
	}
}

func TestParseLeasesEmptyAndBroken(t *testing.T) {
	empty := " Expiry Time   MAC address   Protocol   IP address   Hostname   Client ID or DUID\n-----------------------------------\n\n"
	if leases, err := parseLeases(empty, time.UTC); err != nil || len(leases) != 0 {
		t.Errorf("parseLeases(no leases) = %v, %v", leases, err)
	}
	if _, err := parseLeases("---\n 2026-11-23 00:16:08 52:54:00:c0:e9:b1 ipv4 notanip debian\n", time.UTC); err == nil {
		t.Errorf("parseLeases(bad address) succeeded")
	}
}

func TestParseDomIfAddr(t *testing.T) {
	out := ` Name       MAC address          Protocol     Address
-------------------------------------------------------------------------------
 vnet0      52:54:00:c0:e9:b1    ipv6         fd00::10/64
 -          -                    ipv4         192.168.122.7/24
 vnet0      52:54:00:c0:e9:b1    ipv4         192.168.122.188/24
`
	ip, ok := parseDomIfAddr(out, "52:54:00:C0:E9:B1")
	if !ok || ip.String() != "192.168.122.188" {
		t.Errorf("parseDomIfAddr = %v, %v; want 192.168.122.188", ip, ok)
	}
	if _, ok := parseDomIfAddr(out, "52:54:00:00:00:01"); ok {
		t.Errorf("parseDomIfAddr found an address for an unknown MAC")
	}
}

func TestParseNetInfo(t *testing.T) {
	out := "Name:           default\nUUID:           be9a1fc1\nActive:         yes\nPersistent:     yes\n"
	if active, ok := parseNetInfo(out); !active || !ok {
		t.Errorf("parseNetInfo(active) = %v, %v", active, ok)
	}
	if active, ok := parseNetInfo(strings.Replace(out, "Active:         yes", "Active:         no", 1)); active || !ok {
		t.Errorf("parseNetInfo(inactive) = %v, %v", active, ok)
	}
}

func TestValidate(t *testing.T) {
	if err := testConfig(t).Validate(); err != nil {
		t.Fatalf("Validate(defaults) = %v", err)
	}
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"name with space", func(c *Config) { c.Name = "my vm" }, "CLOCK_VM_NAME"},
		{"name with slash", func(c *Config) { c.Name = "../x" }, "CLOCK_VM_NAME"},
		{"tiny memory", func(c *Config) { c.MemoryMiB = 64 }, "CLOCK_VM_MEMORY"},
		{"no vcpus", func(c *Config) { c.VCPUs = -1 }, "CLOCK_VM_VCPUS"},
		{"bad accel", func(c *Config) { c.Accel = "hvf" }, "CLOCK_VM_ACCEL"},
		{"host cpu under tcg", func(c *Config) { c.Accel, c.HostCPU = AccelTCG, true }, "passthrough needs KVM"},
		{"bad MAC", func(c *Config) { c.MAC = "52:54:00:zz:00:01" }, "MAC address"},
		{"multicast MAC", func(c *Config) { c.MAC = "01:54:00:00:00:01" }, "multicast"},
		{"bad URI", func(c *Config) { c.URI = "system" }, "CLOCK_LIBVIRT_URI"},
		{"bad network", func(c *Config) { c.Network = "a b" }, "network"},
		{"short boot timeout", func(c *Config) { c.BootTimeout = time.Millisecond }, "boot timeout"},
		{"endless boot timeout", func(c *Config) { c.BootTimeout = 48 * time.Hour }, "boot timeout 48h0m0s must be between"},
		{"endless shutdown timeout", func(c *Config) { c.ShutdownTimeout = 24 * time.Hour }, "shutdown timeout"},
		{"ext transport", func(c *Config) { c.URI = "qemu+ext:///system?command=/bin/sh" }, "ext transport"},
		{"user with option", func(c *Config) { c.User = "-oProxyCommand=x" }, "CLOCK_VM_USER"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testConfig(t)
			tt.change(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	// Every problem is reported at once.
	c := testConfig(t)
	c.Name, c.VCPUs = "a b", 0
	c.VCPUs = -2
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "CLOCK_VM_NAME") || !strings.Contains(err.Error(), "CLOCK_VM_VCPUS") {
		t.Errorf("Validate() = %v, want both the name and the vCPU errors", err)
	}
}

func TestWithDefaults(t *testing.T) {
	c := Config{StateDir: "rel/state", Accel: "TCG", MAC: "52-54-00-C0-E9-B1"}.WithDefaults()
	if !filepath.IsAbs(c.StateDir) || !strings.HasSuffix(c.BaseImage, "rel/state/vm/debian12.img") || !strings.HasSuffix(c.KeyPath, "rel/state/ssh/id_ed25519") {
		t.Errorf("paths not derived from the state folder or not absolute: %+v", c)
	}
	if c.Accel != AccelTCG || c.MAC != DefaultMAC || c.Name != DefaultName || c.URI != DefaultURI {
		t.Errorf("defaults/normalisation wrong: %+v", c)
	}
	if _, err := New(Config{MemoryMiB: 1}); err == nil {
		t.Errorf("New accepted 1 MiB of memory")
	}
}

func TestPlanAccel(t *testing.T) {
	noKVM := errors.New("/dev/kvm does not exist")
	kernel := "6.1.0-28-amd64"
	failed := &probeRecord{KVMBoots: false, Reason: "no kernel", HostKernel: kernel, CheckedAt: "2026-11-22T23:00:00Z"}
	worked := &probeRecord{KVMBoots: true, HostKernel: kernel}
	oldKernel := &probeRecord{KVMBoots: false, HostKernel: "5.10.0-1-amd64"}
	tests := []struct {
		name    string
		mode    string
		kvmErr  error
		rec     *probeRecord
		want    accelPlan
		wantErr string
	}{
		{"tcg", AccelTCG, nil, nil, accelPlan{Accel: AccelTCG}, ""},
		{"kvm", AccelKVM, nil, nil, accelPlan{Accel: AccelKVM, Verify: true}, ""},
		{"kvm without /dev/kvm", AccelKVM, noKVM, nil, accelPlan{}, "does not exist"},
		{"kvm ignores a failed probe", AccelKVM, nil, failed, accelPlan{Accel: AccelKVM, Verify: true}, ""},
		{"auto without /dev/kvm", AccelAuto, noKVM, nil, accelPlan{Accel: AccelTCG}, ""},
		{"auto first time probes", AccelAuto, nil, nil, accelPlan{Accel: AccelKVM, Verify: true, Fallback: true}, ""},
		{"auto remembers failure", AccelAuto, nil, failed, accelPlan{Accel: AccelTCG}, ""},
		{"auto remembers success", AccelAuto, nil, worked, accelPlan{Accel: AccelKVM, Verify: true, Fallback: true}, ""},
		{"auto re-probes a new kernel", AccelAuto, nil, oldKernel, accelPlan{Accel: AccelKVM, Verify: true, Fallback: true}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := planAccel(tt.mode, tt.kvmErr, tt.rec, kernel, "/s/accel-probe.json")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "CLOCK_VM_ACCEL") {
					t.Errorf("planAccel = %+v, %v; want an error containing %q and the variable", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("planAccel: %v", err)
			}
			got.Why = ""
			if got != tt.want {
				t.Errorf("planAccel = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestWaitForLife(t *testing.T) {
	log := filepath.Join(t.TempDir(), "console.log")
	ctx := context.Background()
	// The guest writes GRUB's menu first and the kernel banner a little later.
	if err := os.WriteFile(log, []byte("SeaBIOS\r\nBooting from Hard Disk...\r\nGRUB loading.\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- waitForLife(ctx, log, 20*time.Second) }()
	f, err := os.OpenFile(log, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "[    0.000000] Linux version 6.1.0-28-amd64 (debian-kernel@lists.debian.org)\r\n")
	f.Close()
	if err := <-done; err != nil {
		t.Errorf("waitForLife after the banner = %v, want nil", err)
	}

	stuck := filepath.Join(t.TempDir(), "stuck.log")
	os.WriteFile(stuck, []byte("SeaBIOS (version 1.16.2-debian-1.16.2-1)\r\nBooting from Hard Disk...\r\n"), 0o644)
	err = waitForLife(ctx, stuck, 600*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "Linux version") {
		t.Errorf("waitForLife(stuck in the firmware) = %v, want a timeout naming the missing line", err)
	}
}

// fakeLibvirt plays virsh for one domain: it keeps the domain's state and the console log
// and records the commands.
type fakeLibvirt struct {
	mu       sync.Mutex
	t        testing.TB
	state    string // StateUndefined, StateShutOff, StateRunning
	defined  string // domain type of the last define
	uuid     string // UUID of the defined domain
	calls    []string
	console  string // console log path
	kvmBoots bool   // whether a start under KVM writes the kernel banner
	leases   string
	onStart  func() // runs after a start, e.g. to cancel the caller's context
}

func (f *fakeLibvirt) virsh(ctx context.Context, args ...string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	// As exec.CommandContext: a cancelled context runs nothing.
	if err := ctx.Err(); err != nil {
		f.calls = append(f.calls, args[0]+" (cancelled)")
		return "", err
	}
	call := args[0]
	noDomain := &virshError{args: args, err: errors.New("exit status 1"), stderr: "error: failed to get domain 'immfly-debian10'"}
	switch args[0] {
	case "uri":
		return "qemu:///system\n", nil
	case "net-info":
		return "Name: default\nActive:         yes\n", nil
	case "domstate":
		if f.state == StateUndefined {
			return "", noDomain
		}
		return f.state + "\n\n", nil
	case "define":
		data, err := os.ReadFile(args[1])
		if err != nil {
			f.t.Errorf("define: %v", err)
		}
		var d parsedDomain
		if err := xml.Unmarshal(data, &d); err != nil {
			f.t.Errorf("define got invalid XML: %v", err)
		}
		if f.state != StateUndefined && f.uuid != d.UUID {
			return "", &virshError{args: args, err: errors.New("exit status 1"), stderr: "error: operation failed: domain 'immfly-debian10' already exists with uuid " + f.uuid}
		}
		f.defined = d.Type
		f.uuid = d.UUID
		call += " " + d.Type
		if f.state == StateUndefined {
			f.state = StateShutOff
		}
	case "start":
		f.state = StateRunning
		banner := "SeaBIOS\r\n"
		if f.defined == "qemu" || f.kvmBoots {
			banner += "[    0.000000] Linux version 6.1.0\r\n"
		}
		os.WriteFile(f.console, []byte(banner), 0o644)
		if f.onStart != nil {
			defer f.onStart()
		}
	case "destroy":
		if f.state == StateUndefined {
			return "", noDomain
		}
		if f.state != StateRunning {
			return "", &virshError{args: args, err: errors.New("exit status 1"), stderr: "error: Requested operation is not valid: domain is not running"}
		}
		f.state = StateShutOff
	case "undefine":
		if f.state == StateUndefined {
			return "", noDomain
		}
		f.state = StateUndefined
	case "net-dhcp-leases":
		return f.leases, nil
	case "domuuid":
		if f.state == StateUndefined {
			return "", noDomain
		}
		return f.uuid + "\n", nil
	case "domifaddr":
		return "", noDomain
	}
	f.calls = append(f.calls, call)
	return "", nil
}

func newFakeVM(t testing.TB, accel string, kvmBoots bool) (*VM, *fakeLibvirt) {
	t.Helper()
	c := Config{StateDir: t.TempDir(), Template: templatePath, Accel: accel, KVMProbeTimeout: 1 * time.Second}.WithDefaults()
	c.Logf = t.Logf
	f := &fakeLibvirt{t: t, state: StateUndefined, console: c.ConsoleLogPath(), kvmBoots: kvmBoots}
	if err := os.MkdirAll(filepath.Dir(c.ConsoleLogPath()), 0o755); err != nil {
		t.Fatal(err)
	}
	return &VM{cfg: c, virsh: f.virsh, now: time.Now, kvmCheck: func() error { return nil }}, f
}

func TestStartAutoFallsBackToTCGAndRemembers(t *testing.T) {
	v, f := newFakeVM(t, AccelAuto, false)
	ctx := context.Background()
	accel, _, err := v.start(ctx)
	if err != nil || accel != AccelTCG {
		t.Fatalf("start = %q, %v; want tcg after the KVM probe failed", accel, err)
	}
	want := "define kvm|start|destroy|define qemu|start"
	if got := strings.Join(f.calls, "|"); got != want {
		t.Errorf("virsh calls = %s, want %s", got, want)
	}
	rec, err := readProbe(v.cfg.accelProbePath())
	if err != nil || rec == nil || rec.KVMBoots {
		t.Fatalf("probe record = %+v, %v; want kvm_boots false", rec, err)
	}

	// The next start uses TCG straight away.
	f.calls = nil
	f.state = StateShutOff
	if accel, _, err := v.start(ctx); err != nil || accel != AccelTCG {
		t.Fatalf("second start = %q, %v", accel, err)
	}
	if got := strings.Join(f.calls, "|"); got != "start" {
		t.Errorf("second start virsh calls = %s, want only start (definition unchanged, no probe)", got)
	}
}

func TestStartAutoKeepsWorkingKVM(t *testing.T) {
	v, f := newFakeVM(t, AccelAuto, true)
	accel, _, err := v.start(context.Background())
	if err != nil || accel != AccelKVM {
		t.Fatalf("start = %q, %v; want kvm", accel, err)
	}
	if got := strings.Join(f.calls, "|"); got != "define kvm|start" {
		t.Errorf("virsh calls = %s", got)
	}
	if rec, _ := readProbe(v.cfg.accelProbePath()); rec == nil || !rec.KVMBoots {
		t.Errorf("probe record = %+v, want kvm_boots true", rec)
	}
}

func TestStartForcedKVMFails(t *testing.T) {
	v, f := newFakeVM(t, AccelKVM, false)
	_, _, err := v.start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "KVM did not boot") || !strings.Contains(err.Error(), "CLOCK_VM_ACCEL=tcg") {
		t.Fatalf("start(kvm, broken) = %v, want an error explaining KVM does not boot", err)
	}
	if f.state != StateShutOff {
		t.Errorf("domain left %q, want it stopped", f.state)
	}
}

func TestDefineOnlyWhenChanged(t *testing.T) {
	v, f := newFakeVM(t, AccelTCG, false)
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if err := v.define(ctx, AccelTCG); err != nil {
			t.Fatal(err)
		}
	}
	v.cfg.MemoryMiB = 2048
	if err := v.define(ctx, AccelTCG); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.calls, "|"); got != "define qemu|define qemu" {
		t.Errorf("virsh calls = %s, want one define and one redefine after the change", got)
	}
	saved, _ := os.ReadFile(v.cfg.renderedXMLPath())
	if !strings.Contains(string(saved), ">2048<") {
		t.Errorf("saved XML is not the last defined one")
	}
}

func TestNameUUID(t *testing.T) {
	a, b := nameUUID("immfly-debian10"), nameUUID("clock-vm")
	if a != nameUUID("immfly-debian10") || a == b || len(a) != 36 || a[14] != '5' {
		t.Errorf("nameUUID = %q / %q: want stable, distinct version 5 UUIDs", a, b)
	}
}

func TestDefineKeepsHandDefinedUUID(t *testing.T) {
	v, f := newFakeVM(t, AccelTCG, false)
	f.state, f.uuid = StateShutOff, "4b68e38d-1bbc-4327-9da1-be6f688b182a" // the classic vm.xml's
	if err := v.define(context.Background(), AccelTCG); err != nil {
		t.Fatalf("define over a hand-defined domain: %v", err)
	}
	if f.uuid != "4b68e38d-1bbc-4327-9da1-be6f688b182a" {
		t.Errorf("UUID became %q", f.uuid)
	}
}

func TestDestroyWhenNothingExists(t *testing.T) {
	v, _ := newFakeVM(t, AccelTCG, false)
	if err := v.Destroy(context.Background()); err != nil {
		t.Errorf("Destroy(nothing) = %v, want nil", err)
	}
	if s, err := v.State(context.Background()); err != nil || s != StateUndefined {
		t.Errorf("State = %q, %v; want undefined", s, err)
	}
}

func TestDestroyRemovesEverything(t *testing.T) {
	v, f := newFakeVM(t, AccelTCG, false)
	ctx := context.Background()
	if err := v.defineAndStart(ctx, AccelTCG); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(v.cfg.overlayPath(), []byte("qcow"), 0o644)
	f.leases = strings.ReplaceAll(leasesSample, "2026-11-23", time.Now().Add(24*time.Hour).Format("2006-01-02"))
	known := v.cfg.KnownHostsPath()
	os.MkdirAll(filepath.Dir(known), 0o700)
	os.WriteFile(known, []byte("192.168.122.188 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGVe+I/9BPDc9MAtj79ZXOIAdiqHBtzZH6/tSmBLl27I\n192.168.122.99 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGVe+I/9BPDc9MAtj79ZXOIAdiqHBtzZH6/tSmBLl27I\n"), 0o600)

	if err := v.Destroy(ctx); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if f.state != StateUndefined {
		t.Errorf("domain %q after Destroy, want undefined", f.state)
	}
	for _, p := range []string{v.cfg.overlayPath(), v.cfg.renderedXMLPath()} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s survived Destroy", p)
		}
	}
	kh, _ := os.ReadFile(known)
	if strings.Contains(string(kh), "192.168.122.188") || !strings.Contains(string(kh), "192.168.122.99") {
		t.Errorf("known_hosts after Destroy = %q, want only the other host", kh)
	}
}

func TestIPFromLeases(t *testing.T) {
	v, f := newFakeVM(t, AccelTCG, false)
	tomorrow := time.Now().Add(24 * time.Hour).Format("2006-01-02")
	f.leases = strings.ReplaceAll(leasesSample, "2026-11-23", tomorrow)
	ip, err := v.IP(context.Background())
	if err != nil || ip != "192.168.122.188" {
		t.Errorf("IP = %q, %v; want 192.168.122.188", ip, err)
	}
	f.leases = ""
	if _, err := v.IP(context.Background()); err == nil || fix.Target(err) != "vm:up" {
		t.Errorf("IP(no lease) = %v, want a hint to run vm:up", err)
	}
}

func TestCheckBaseImage(t *testing.T) {
	dir := t.TempDir()
	if err := checkBaseImage(filepath.Join(dir, "none.img")); err == nil || fix.Target(err) != "vm:image" {
		t.Errorf("checkBaseImage(missing) = %v, want a hint to run vm:image", err)
	}
	notDisk := filepath.Join(dir, "text.img")
	os.WriteFile(notDisk, make([]byte, 1024), 0o644)
	if err := checkBaseImage(notDisk); err == nil || !strings.Contains(err.Error(), "boot sector") {
		t.Errorf("checkBaseImage(zeros) = %v, want a boot sector error", err)
	}
	disk := make([]byte, 1024)
	disk[510], disk[511] = 0x55, 0xaa
	good := filepath.Join(dir, "disk.img")
	os.WriteFile(good, disk, 0o644)
	if err := checkBaseImage(good); err != nil {
		t.Errorf("checkBaseImage(disk) = %v", err)
	}
}

func TestConsoleTail(t *testing.T) {
	log := filepath.Join(t.TempDir(), "c.log")
	os.WriteFile(log, []byte("a\r\n\x1b[0;32m  OK  \x1b[0m] Started ssh\r\nlogin: \r\n"), 0o600)
	if got, want := ConsoleTail(log, 2), "  OK  ] Started ssh\nlogin: "; got != want {
		t.Errorf("ConsoleTail = %q, want %q", got, want)
	}
}

// TestStartInterruptedDuringKVMProbe is Ctrl-C while the guest is on probation: the guest
// is destroyed (on a context of its own) and nothing is remembered about KVM.
func TestStartInterruptedDuringKVMProbe(t *testing.T) {
	v, f := newFakeVM(t, AccelAuto, false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.onStart = cancel
	_, _, err := v.start(ctx)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("start(interrupted) = %v, want an interruption error wrapping context.Canceled", err)
	}
	if f.state != StateShutOff {
		t.Errorf("domain left %q after the interruption, want it destroyed (calls %v)", f.state, f.calls)
	}
	if rec, _ := readProbe(v.cfg.accelProbePath()); rec != nil {
		t.Errorf("probe record %+v written after an interruption, want none", rec)
	}
}

func TestStartMakesTheConsoleLogPrivate(t *testing.T) {
	v, _ := newFakeVM(t, AccelTCG, false)
	if _, _, err := v.start(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(v.cfg.consoleLogPath())
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("console log mode = %04o, want 0600", st.Mode().Perm())
	}
}

func TestProtectFile(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		gid  int
		want os.FileMode
	}{{-1, 0o600}, {os.Getgid(), 0o660}} {
		p := filepath.Join(dir, fmt.Sprintf("disk-%d", tt.gid))
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := protectFile(p, tt.gid); err != nil {
			t.Fatalf("protectFile(%d): %v", tt.gid, err)
		}
		st, _ := os.Stat(p)
		if st.Mode().Perm() != tt.want {
			t.Errorf("protectFile(gid %d) mode = %04o, want %04o", tt.gid, st.Mode().Perm(), tt.want)
		}
		if gid := int(st.Sys().(*syscall.Stat_t).Gid); tt.gid >= 0 && gid != tt.gid {
			t.Errorf("protectFile(gid %d) group = %d", tt.gid, gid)
		}
	}
}

func TestEnsureOverlayIsPrivate(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
	v, _ := newFakeVM(t, AccelTCG, false)
	base := filepath.Join(t.TempDir(), "base.img")
	if err := os.WriteFile(base, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	v.cfg.BaseImage = base
	created, err := v.ensureOverlay(context.Background())
	if err != nil || !created {
		t.Fatalf("ensureOverlay = %v, %v; want it created", created, err)
	}
	checkPrivate := func() {
		t.Helper()
		st, err := os.Stat(v.cfg.overlayPath())
		if err != nil {
			t.Fatal(err)
		}
		if perm := st.Mode().Perm(); perm&0o007 != 0 || perm&0o600 != 0o600 {
			t.Errorf("overlay mode = %04o, want the owner's (and at most QEMU's group), none for others", perm)
		}
	}
	checkPrivate()
	// An overlay left readable by an older version is fixed on the next start.
	os.Chmod(v.cfg.overlayPath(), 0o644)
	if created, err := v.ensureOverlay(context.Background()); err != nil || created {
		t.Fatalf("second ensureOverlay = %v, %v; want the existing one kept", created, err)
	}
	checkPrivate()
}

func TestSSHHint(t *testing.T) {
	console := "/state/vm/immfly-debian10.console.log"
	notConsole := &sshx.NotAnsweringError{Kind: sshx.KindNotConsoleKey, Err: sshx.ErrNotConsoleKey}
	refused := &sshx.NotAnsweringError{Kind: sshx.KindRefused, Err: syscall.ECONNREFUSED}
	if h := sshHint(notConsole, console); !strings.Contains(h, "another machine answers") || !strings.Contains(h, "net-dhcp-leases") {
		t.Errorf("sshHint(not the console's key) = %q", h)
	}
	for _, err := range []error{refused, errors.New("x")} {
		if h := sshHint(err, console); !strings.Contains(h, "serial console log "+console) {
			t.Errorf("sshHint(%v) = %q, want the console log named", err, h)
		}
	}
}

func TestLibvirtUnreachable(t *testing.T) {
	denied := &virshError{args: []string{"uri"}, err: errors.New("exit status 1"),
		stderr: "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/var/run/libvirt/libvirt-sock': Permission denied"}
	down := &virshError{args: []string{"uri"}, err: errors.New("exit status 1"),
		stderr: "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory"}
	if err := libvirtUnreachable("qemu:///system", denied); !strings.Contains(err.Error(), "libvirt group") || strings.Contains(err.Error(), "start the daemons") {
		t.Errorf("libvirtUnreachable(permission denied) = %v, want the libvirt group and no daemon start", err)
	}
	if err := libvirtUnreachable("qemu:///system", down); !strings.Contains(err.Error(), "start the daemons") || strings.Contains(err.Error(), "group") {
		t.Errorf("libvirtUnreachable(no socket) = %v, want the daemons started", err)
	}
}
