package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/clock-app/clock/internal/fix"
	"github.com/clock-app/clock/internal/sshx"
)

// VM drives one libvirt domain described by a Config.
type VM struct {
	cfg      Config
	virsh    virshFunc
	now      func() time.Time
	kvmCheck func() error // why /dev/kvm cannot be used, or nil
}

// New applies the defaults to c, validates it and returns a VM for it. It touches nothing.
func New(c Config) (*VM, error) {
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("VM configuration: %w", err)
	}
	return &VM{cfg: c, virsh: execVirsh(c.URI), now: time.Now, kvmCheck: kvmUsable}, nil
}

// Config returns the effective configuration (defaults applied, paths absolute).
func (v *VM) Config() Config { return v.cfg }

// UpResult says what Up did and how long the guest took.
type UpResult struct {
	IP         string
	Accel      string        // kvm or tcg; empty when the VM was already running
	Started    bool          // false when the VM was already running
	LeaseAfter time.Duration // from the (last) start to the DHCP lease
	SSHAfter   time.Duration // from the (last) start to the first SSH login
}

// Up makes sure the VM runs and answers SSH with the deploy key, and returns its address.
// It checks libvirt, the network and the base image first; creates the overlay when
// missing; (re)defines the domain when the rendered XML changed while it is shut off; starts
// it under the planned acceleration (auto: KVM only where a guest really boots, remembered
// in the state folder); waits for the lease and then for an SSH login, pinning the new host
// key in known_hosts. The whole wait is bounded by Config.BootTimeout.
func (v *VM) Up(ctx context.Context) (UpResult, error) {
	begin := v.now()
	key, err := sshx.LoadKey(v.cfg.KeyPath)
	if err != nil {
		return UpResult{}, err
	}
	if err := v.preflight(ctx); err != nil {
		return UpResult{}, err
	}
	state, err := v.State(ctx)
	if err != nil {
		return UpResult{}, err
	}
	res := UpResult{}
	startedAt := begin
	created := false // a fresh disk: its host keys are new, whatever is pinned for the address
	switch state {
	case StateRunning, StatePaused, "idle", "blocked":
		if state == StatePaused {
			if _, err := v.virsh(ctx, "resume", v.cfg.Name); err != nil {
				return res, fmt.Errorf("resume paused VM %s: %w", v.cfg.Name, err)
			}
		}
		v.cfg.Logf.Printf("VM %s is already running", v.cfg.Name)
		v.warnIfDefinitionChanged(ctx)
	case StateUndefined, StateShutOff, "crashed":
		if created, err = v.ensureOverlay(ctx); err != nil {
			return res, err
		}
		res.Accel, startedAt, err = v.start(ctx)
		if err != nil {
			return res, err
		}
		res.Started = true
	default:
		return res, fmt.Errorf("VM %s is %q: wait for it to settle, or run vm:down and vm:up", v.cfg.Name, state)
	}
	// A run interrupted between creating the disk and pinning its key left the marker: the
	// VM still has the fresh disk's keys, so this run may pin them.
	if _, err := os.Stat(v.cfg.unpinnedPath()); err == nil {
		created = true
	}
	res.IP, res.LeaseAfter, res.SSHAfter, err = v.waitReady(ctx, startedAt, key, created)
	if err == nil {
		os.Remove(v.cfg.unpinnedPath())
	}
	return res, err
}

// preflight checks what Up needs before changing anything, each failure naming the fix.
func (v *VM) preflight(ctx context.Context) error {
	if _, err := v.virsh(ctx, "uri"); err != nil {
		return libvirtUnreachable(v.cfg.URI, err)
	}
	out, err := v.virsh(ctx, "net-info", v.cfg.Network)
	if err != nil {
		return fmt.Errorf("libvirt network %q does not exist: define and start it (virsh net-define /usr/share/libvirt/networks/default.xml; virsh net-start default): %w", v.cfg.Network, err)
	}
	if active, ok := parseNetInfo(out); !ok || !active {
		return fmt.Errorf("libvirt network %q is not active: start it with virsh --connect %s net-start %s", v.cfg.Network, v.cfg.URI, v.cfg.Network)
	}
	return checkBaseImage(v.cfg.BaseImage)
}

// libvirtUnreachable explains a failed connection to libvirt by its cause: a socket this
// user may not use is a missing group, not a stopped daemon.
func libvirtUnreachable(uri string, err error) error {
	if stderrContains(err, "Permission denied", "authentication failed", "access denied") {
		return fmt.Errorf("libvirt at %s refuses this user (uid %d): add the user to the libvirt group (sudo usermod -aG libvirt $USER) and log in again, or run as root: %w",
			uri, os.Geteuid(), err)
	}
	return fix.By("setup", fmt.Errorf("cannot reach libvirt at %s: start the daemons (virtlogd -d; libvirtd -d, or systemctl start libvirtd: setup does it) and check the URI (CLOCK_LIBVIRT_URI): %w", uri, err))
}

func checkBaseImage(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fix.By("vm:image", fmt.Errorf("base image %s does not exist: build it, or set CLOCK_VM_IMAGE to your own", path))
	}
	if err != nil {
		return fmt.Errorf("base image %s is not readable: %w", path, err)
	}
	defer f.Close()
	mbr := make([]byte, 512)
	if _, err := io.ReadFull(f, mbr); err != nil {
		return fix.By("vm:image", fmt.Errorf("base image %s is too short to be a disk (%v): build it again", path, err))
	}
	if mbr[510] != 0x55 || mbr[511] != 0xaa {
		return fix.By("vm:image", fmt.Errorf("base image %s has no boot sector (not a raw disk image?): build it again", path))
	}
	return nil
}

// ensureOverlay creates the VM's qcow2 overlay on the base image, or checks that the
// existing one still fits the base. It reports whether it created the overlay.
func (v *VM) ensureOverlay(ctx context.Context) (created bool, err error) {
	overlay, base := v.cfg.overlayPath(), v.cfg.BaseImage
	if err := os.MkdirAll(v.cfg.vmDir(), 0o755); err != nil {
		return false, err
	}
	ov, err := os.Stat(overlay)
	if err == nil {
		b, err := os.Stat(base)
		if err != nil {
			return false, err
		}
		if b.ModTime().After(ov.ModTime()) {
			return false, fix.By("vm:destroy vm:up", fmt.Errorf("base image %s was rebuilt after the VM's disk %s was last used: the overlay no longer fits it; a new VM (vm:destroy drops the VM's disk) starts on the new base", base, overlay))
		}
		// One made by an older version may be readable by all; failing to fix that (a disk
		// that libvirt handed to another owner) must not keep the VM from starting.
		if err := protectVMFile(overlay); err != nil {
			v.cfg.Logf.Printf("the VM disk stays readable by others: %v", err)
		}
		return false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	v.cfg.Logf.Printf("creating the VM disk %s on %s", overlay, base)
	cmd := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", base, overlay)
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(overlay)
		if errors.Is(err, exec.ErrNotFound) {
			return false, errors.New("qemu-img not found: install qemu-utils (apt-get install -y qemu-utils)")
		}
		return false, fmt.Errorf("qemu-img create %s: %w: %s", overlay, err, bytes.TrimSpace(out))
	}
	if err := protectVMFile(overlay); err != nil {
		os.Remove(overlay)
		return false, err
	}
	// Before anything can interrupt the first boot: its host key is new (see Up).
	if err := os.WriteFile(v.cfg.unpinnedPath(), nil, 0o600); err != nil {
		os.Remove(overlay)
		return false, err
	}
	return true, nil
}

// start defines the domain as needed and starts it following the acceleration plan. It
// returns the acceleration the guest runs under and when its final start happened.
func (v *VM) start(ctx context.Context) (accel string, startedAt time.Time, err error) {
	rec, err := readProbe(v.cfg.accelProbePath())
	if err != nil {
		return "", time.Time{}, err
	}
	var kvmErr error
	if v.cfg.Accel != AccelTCG {
		kvmErr = v.kvmCheck()
	}
	plan, err := planAccel(v.cfg.Accel, kvmErr, rec, hostKernel(), v.cfg.accelProbePath())
	if err != nil {
		return "", time.Time{}, err
	}
	v.cfg.Logf.Printf("acceleration: %s", plan.Why)
	startedAt = v.now()
	err = v.defineAndStart(ctx, plan.Accel)
	if err == nil && plan.Verify {
		v.cfg.Logf.Printf("waiting up to %s for the guest kernel on the serial console", v.cfg.KVMProbeTimeout)
		if err = waitForLife(ctx, v.cfg.consoleLogPath(), v.cfg.KVMProbeTimeout); err == nil {
			v.cfg.Logf.Printf("KVM boots the guest (kernel up after %.0fs)", v.now().Sub(startedAt).Seconds())
			if plan.Fallback {
				v.remember(true, "guest kernel started")
			}
		}
	}
	if err == nil {
		return plan.Accel, startedAt, nil
	}
	if plan.Accel == AccelKVM && ctx.Err() != nil {
		// Interrupted while the guest is on probation: a half-probed guest is not left
		// running for the next run to take as a good start.
		v.destroyQuietly(ctx)
		return "", time.Time{}, fmt.Errorf("VM %s: interrupted during the KVM probe (the guest was stopped): %w", v.cfg.Name, err)
	}
	if plan.Accel != AccelKVM || !plan.Fallback {
		if plan.Accel == AccelKVM {
			v.destroyQuietly(ctx)
			return "", time.Time{}, fmt.Errorf("KVM did not boot VM %s: %w; this host's KVM cannot run the guest (nested virtualisation?): use CLOCK_VM_ACCEL=tcg or auto", v.cfg.Name, err)
		}
		return "", time.Time{}, err
	}
	v.cfg.Logf.Printf("KVM did not boot the guest (%v) after %.0fs: restarting under TCG", err, v.now().Sub(startedAt).Seconds())
	v.destroyQuietly(ctx)
	startedAt = v.now()
	if err := v.defineAndStart(ctx, AccelTCG); err != nil {
		return "", time.Time{}, err
	}
	// Only now is KVM to blame: a start that fails under TCG too is not about KVM.
	v.remember(false, err.Error())
	return AccelTCG, startedAt, nil
}

// remember records the KVM probe outcome; failing to write it only costs a probe next time.
func (v *VM) remember(kvmBoots bool, reason string) {
	r := probeRecord{KVMBoots: kvmBoots, Reason: reason, HostKernel: hostKernel(), CheckedAt: v.now().UTC().Format(time.RFC3339)}
	if err := writeProbe(v.cfg.accelProbePath(), r); err != nil {
		v.cfg.Logf.Printf("could not remember the KVM probe result (%v): the next vm:up probes again", err)
	}
}

// defineAndStart (re)defines the shut-off domain when its rendered XML differs from the one
// last defined, then starts it.
func (v *VM) defineAndStart(ctx context.Context, accel string) error {
	if err := v.define(ctx, accel); err != nil {
		return err
	}
	v.cfg.Logf.Printf("starting VM %s under %s", v.cfg.Name, strings.ToUpper(accel))
	if _, err := v.virsh(ctx, "start", v.cfg.Name); err != nil {
		hint := "see the error above and the libvirt log (/var/log/libvirt/qemu/" + v.cfg.Name + ".log)"
		if stderrContains(err, "Permission denied") {
			hint = "the QEMU user cannot read the disk or its folder: make " + v.cfg.StateDir + " and its parents world-searchable (chmod o+x) or run libvirt's QEMU as root"
		}
		return fmt.Errorf("start VM %s: %w; %s", v.cfg.Name, err, hint)
	}
	// virtlogd makes the log afresh at each start; it shows the boot to whoever can read it.
	if err := protectFile(v.cfg.consoleLogPath(), -1); err != nil && !errors.Is(err, fs.ErrNotExist) {
		v.cfg.Logf.Printf("the console log stays readable by others: %v", err)
	}
	return nil
}

func (v *VM) define(ctx context.Context, accel string) error {
	state, err := v.State(ctx)
	if err != nil {
		return err
	}
	uuid := nameUUID(v.cfg.Name)
	if state != StateUndefined {
		// A domain defined by hand (e.g. from the classic vm.xml) keeps its UUID.
		if out, err := v.virsh(ctx, "domuuid", v.cfg.Name); err == nil && strings.TrimSpace(out) != "" {
			uuid = strings.TrimSpace(out)
		}
	}
	xml, err := renderWithUUID(v.cfg, accel, uuid)
	if err != nil {
		return err
	}
	old, _ := os.ReadFile(v.cfg.renderedXMLPath())
	if state != StateUndefined && bytes.Equal(old, xml) {
		return nil
	}
	if err := os.MkdirAll(v.cfg.vmDir(), 0o755); err != nil {
		return err
	}
	// Define from a temp file and only then record the XML, so a failed define is retried.
	tmp := v.cfg.renderedXMLPath() + ".new"
	if err := os.WriteFile(tmp, xml, 0o644); err != nil {
		return err
	}
	defer os.Remove(tmp)
	if _, err := v.virsh(ctx, "define", tmp); err != nil {
		return fmt.Errorf("define VM %s from %s: %w", v.cfg.Name, v.cfg.Template, err)
	}
	if state == StateUndefined {
		v.cfg.Logf.Printf("defined VM %s", v.cfg.Name)
	} else {
		v.cfg.Logf.Printf("redefined VM %s (its rendered XML changed)", v.cfg.Name)
	}
	return os.Rename(tmp, v.cfg.renderedXMLPath())
}

// warnIfDefinitionChanged tells the user a running VM's settings changed: libvirt applies
// a new definition only at the next start, so Up leaves it for then.
func (v *VM) warnIfDefinitionChanged(ctx context.Context) {
	out, err := v.virsh(ctx, "dumpxml", v.cfg.Name)
	if err != nil {
		return
	}
	accel := AccelTCG
	if strings.Contains(out, "type='kvm'") || strings.Contains(out, `type="kvm"`) {
		accel = AccelKVM
	}
	xml, err := Render(v.cfg, accel)
	if err != nil {
		return
	}
	if old, err := os.ReadFile(v.cfg.renderedXMLPath()); err == nil && !bytes.Equal(old, xml) {
		v.cfg.Logf.Printf("the VM settings changed since %s was defined: they apply after a restart (%s)", v.cfg.Name, fix.Command("vm:down vm:up"))
	}
}

// sshRecheck is how long SSH is tried on one address before the leases are read again: a
// guest whose DHCP client ID changed (a new machine ID) gets a new address while the old
// lease of its MAC is still listed.
const sshRecheck = 10 * time.Second

// waitReady waits for the lease and then the SSH login, both within BootTimeout of
// startedAt. It follows the newest lease of the MAC, so an address that changes mid-boot
// is picked up.
func (v *VM) waitReady(ctx context.Context, startedAt time.Time, key *sshx.Key, created bool) (ip string, leaseAfter, sshAfter time.Duration, err error) {
	ctx, cancel := context.WithDeadline(ctx, startedAt.Add(v.cfg.BootTimeout))
	defer cancel()
	ip, err = v.waitLease(ctx, startedAt)
	if err != nil {
		return "", 0, 0, v.withConsoleTail(err)
	}
	leaseAfter = v.now().Sub(startedAt)
	v.cfg.Logf.Printf("[%3.0fs] DHCP lease: %s (may be the previous VM's: readiness is the SSH login)", leaseAfter.Seconds(), ip)
	progress := func(format string, args ...any) {
		v.cfg.Logf.Printf("[%3.0fs] "+format, append([]any{v.now().Sub(startedAt).Seconds()}, args...)...)
	}
	for {
		try, cancelTry := context.WithTimeout(ctx, sshRecheck)
		err = sshx.WaitForSSH(try, sshx.Wait{
			Addr: ip, User: v.cfg.User, Signer: key.Signer, KnownHosts: v.cfg.KnownHostsPath(),
			JustCreated: created, Booting: true, ConsoleKeys: v.consoleKeys, Progress: progress,
		})
		cancelTry()
		switch {
		case err == nil:
			return ip, leaseAfter, v.now().Sub(startedAt), nil
		case errors.Is(err, sshx.ErrAuthRejected), errors.Is(err, sshx.ErrHostKeyChanged):
			return ip, leaseAfter, 0, err
		case ctx.Err() != nil:
			return ip, leaseAfter, 0, v.withConsoleTail(fmt.Errorf("VM %s: %w: %s", v.cfg.Name, err, sshHint(err, v.cfg.consoleLogPath())))
		}
		if newIP, err := v.IP(ctx); err == nil && newIP != ip {
			leaseAfter = v.now().Sub(startedAt)
			progress("the VM's newest DHCP lease is %s now (was %s): trying SSH there", newIP, ip)
			ip = newIP
		}
	}
}

// waitLease polls the network's DHCP leases for the VM's MAC.
func (v *VM) waitLease(ctx context.Context, startedAt time.Time) (string, error) {
	lastReport := v.now()
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		ip, err := v.IP(ctx)
		if err == nil {
			return ip, nil
		}
		if v.now().Sub(lastReport) >= 10*time.Second {
			lastReport = v.now()
			v.cfg.Logf.Printf("[%3.0fs] waiting for a DHCP lease for %s on network %s", v.now().Sub(startedAt).Seconds(), v.cfg.MAC, v.cfg.Network)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("VM %s got no DHCP lease for %s on network %s within %.0fs of its start: check the serial console log %s",
				v.cfg.Name, v.cfg.MAC, v.cfg.Network, v.now().Sub(startedAt).Seconds(), v.cfg.consoleLogPath())
		case <-tick.C:
		}
	}
}

// consoleKeys returns the SSH host keys the guest printed on its serial console this run
// (libvirt truncates the log at each start); none when unreadable or a classic image.
func (v *VM) consoleKeys() []ssh.PublicKey {
	data, err := os.ReadFile(v.cfg.consoleLogPath())
	if err != nil {
		return nil
	}
	return sshx.ConsoleHostKeys(data)
}

// sshHint says what to look at when the guest's SSH did not let us in, by what failed.
func sshHint(err error, consoleLog string) string {
	var na *sshx.NotAnsweringError
	if errors.As(err, &na) && na.Kind == sshx.KindNotConsoleKey {
		return "another machine answers at that address with a host key the VM did not print on its console (" + consoleLog +
			"): check `virsh net-dhcp-leases` for a stale lease of the MAC and who holds that address"
	}
	return "check the VM's serial console log " + consoleLog + " (did it boot, get an address, start sshd?)"
}

// withConsoleTail appends the end of the serial console log to a boot failure.
func (v *VM) withConsoleTail(err error) error {
	t := ConsoleTail(v.cfg.consoleLogPath(), 15)
	if t == "" {
		return err
	}
	return fmt.Errorf("%w\nlast lines of %s:\n%s", err, v.cfg.consoleLogPath(), t)
}

// ConsoleTail returns the last n lines of a serial console log ("" when unreadable), with
// terminal escape sequences and carriage returns removed.
func ConsoleTail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	text := ansiEscape.ReplaceAllString(strings.ReplaceAll(string(data), "\r", ""), "")
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ansiEscape matches the terminal control sequences systemd and GRUB print.
var ansiEscape = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

// IP returns the VM's current IPv4 address from the network's DHCP leases (the newest
// unexpired lease of its MAC), falling back to `domifaddr --source lease`.
func (v *VM) IP(ctx context.Context) (string, error) {
	out, err := v.virsh(ctx, "net-dhcp-leases", v.cfg.Network)
	if err != nil {
		return "", err
	}
	leases, err := parseLeases(out, time.Local)
	if err != nil {
		return "", fmt.Errorf("read the DHCP leases of network %s: %w", v.cfg.Network, err)
	}
	if l, ok := currentLease(leases, v.cfg.MAC, v.now()); ok {
		return l.IP.String(), nil
	}
	if out, err := v.virsh(ctx, "domifaddr", "--source", "lease", v.cfg.Name); err == nil {
		if ip, ok := parseDomIfAddr(out, v.cfg.MAC); ok {
			return ip.String(), nil
		}
	}
	return "", fix.By("vm:up", fmt.Errorf("no DHCP lease for %s (VM %s) on network %s: is the VM up?", v.cfg.MAC, v.cfg.Name, v.cfg.Network))
}

// State returns the domain's state as virsh prints it ("running", "shut off", ...), or
// StateUndefined.
func (v *VM) State(ctx context.Context) (string, error) {
	out, err := v.virsh(ctx, "domstate", v.cfg.Name)
	if isNoDomain(err) {
		return StateUndefined, nil
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(out), nil
}

// Down shuts the VM down gracefully, waiting up to ShutdownTimeout, then pulls the plug. A
// VM that is not running (or not defined) is fine.
func (v *VM) Down(ctx context.Context) error {
	state, err := v.State(ctx)
	if err != nil {
		return err
	}
	if state == StateUndefined || state == StateShutOff {
		v.cfg.Logf.Printf("VM %s is %s", v.cfg.Name, state)
		return nil
	}
	begin := v.now()
	if _, err := v.virsh(ctx, "shutdown", v.cfg.Name); err != nil && !stderrContains(err, "not running") {
		return fmt.Errorf("shut down VM %s: %w", v.cfg.Name, err)
	}
	v.cfg.Logf.Printf("shutting down VM %s (up to %s)", v.cfg.Name, v.cfg.ShutdownTimeout)
	wctx, cancel := context.WithTimeout(ctx, v.cfg.ShutdownTimeout)
	defer cancel()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if s, err := v.State(wctx); err == nil && (s == StateShutOff || s == StateUndefined) {
			v.cfg.Logf.Printf("VM %s shut down after %.0fs", v.cfg.Name, v.now().Sub(begin).Seconds())
			return nil
		}
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return ctx.Err()
			}
			v.cfg.Logf.Printf("VM %s did not shut down within %s: forcing it off", v.cfg.Name, v.cfg.ShutdownTimeout)
			if _, err := v.virsh(ctx, "destroy", v.cfg.Name); err != nil && !stderrContains(err, "not running") {
				return fmt.Errorf("force VM %s off: %w", v.cfg.Name, err)
			}
			return nil
		case <-tick.C:
		}
	}
}

// Destroy removes the VM: stops it, undefines it, deletes its overlay and rendered XML and
// forgets its host key. Whatever is already gone is fine. The base image, the deploy key,
// the console log and the KVM probe result stay.
func (v *VM) Destroy(ctx context.Context) error {
	ip, _ := v.IP(ctx) // for the known_hosts entry; best effort
	var errs []error
	if _, err := v.virsh(ctx, "destroy", v.cfg.Name); err != nil && !isNoDomain(err) && !stderrContains(err, "not running") {
		errs = append(errs, fmt.Errorf("stop VM %s: %w", v.cfg.Name, err))
	}
	if _, err := v.virsh(ctx, "undefine", v.cfg.Name); err != nil && !isNoDomain(err) {
		errs = append(errs, fmt.Errorf("undefine VM %s: %w", v.cfg.Name, err))
	}
	for _, p := range []string{v.cfg.overlayPath(), v.cfg.renderedXMLPath(), v.cfg.unpinnedPath()} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if ip != "" {
		if err := sshx.ForgetHost(v.cfg.KnownHostsPath(), ip); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		v.cfg.Logf.Printf("VM %s destroyed", v.cfg.Name)
	}
	return errors.Join(errs...)
}

// destroyTimeout bounds stopping a guest after an interruption.
const destroyTimeout = 30 * time.Second

// destroyQuietly stops the domain during a fallback or after an interruption; errors only
// matter if the next start fails, which reports its own. It runs on a context of its own:
// the caller's may be the one that was just cancelled.
func (v *VM) destroyQuietly(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), destroyTimeout)
	defer cancel()
	if _, err := v.virsh(ctx, "destroy", v.cfg.Name); err != nil && !stderrContains(err, "not running") {
		v.cfg.Logf.Printf("stopping VM %s: %v", v.cfg.Name, err)
	}
}

// SSHTarget returns how to reach the running VM over SSH (address from the leases, the
// deploy key, the pinned known_hosts).
func (v *VM) SSHTarget(ctx context.Context) (sshx.Target, error) {
	ip, err := v.IP(ctx)
	if err != nil {
		return sshx.Target{}, err
	}
	key, err := sshx.LoadKey(v.cfg.KeyPath)
	if err != nil {
		return sshx.Target{}, err
	}
	return sshx.Target{Addr: ip, User: v.cfg.User, Signer: key.Signer, KnownHosts: v.cfg.KnownHostsPath()}, nil
}

// SSHCommand returns the ssh(1) command line that logs in to the VM with the deploy key
// and the pinned host key (StrictHostKeyChecking=yes): for `mage vm:ssh` to print or exec.
func (v *VM) SSHCommand(ctx context.Context) ([]string, error) {
	ip, err := v.IP(ctx)
	if err != nil {
		return nil, err
	}
	t := sshx.Target{Addr: ip, User: v.cfg.User, KnownHosts: v.cfg.KnownHostsPath()}
	return sshx.CommandArgs(t, v.cfg.KeyPath), nil
}
