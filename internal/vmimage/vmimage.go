// Package vmimage builds the Debian base image of the deploy VM offline from Debian packages:
// a sparse raw disk with one ext4 partition, GRUB on the MBR, DHCP on any wired NIC, and
// root SSH login by key only. Building needs root (loop devices, mount) and mmdebstrap.
package vmimage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/clock-app/clock/internal/fix"
	"github.com/clock-app/clock/internal/progress"
)

// MinimalPackages make a bare Debian host on top of mmdebstrap's minbase variant, as the
// classic exercise's VM ships: a kernel and boot loader, systemd with networkd/resolved for
// DHCP and DNS on any NIC name, the SSH server and python3, and nothing Ansible's apt
// modules need (no python3-apt). test:vm deploys to it to prove the bootstrap and the
// docker role on a bare host.
var MinimalPackages = []string{
	"systemd-sysv", "udev", "dbus", "systemd-resolved",
	"linux-image-amd64", "grub-pc-bin", "grub2-common", "initramfs-tools", "zstd",
	"openssh-server", "python3",
	"ca-certificates", "iproute2", "netbase", "procps", "iputils-ping",
}

// DefaultPackages is the deploy's image: the minimal host plus what the playbook would
// install, so that a cold deploy skips the slowest part of its first run (apt-get install
// docker.io took about 200 s inside a TCG guest and 30 s here, at native speed), the way
// golden images are built with Packer. The roles still check and install each of them.
var DefaultPackages = append(slices.Clone(MinimalPackages),
	"python3-apt",           // Ansible's apt and package_facts modules
	"docker.io", "apparmor", // the docker role's docker_packages
	"nftables", // the firewall role's
)

// Options describes one image. Output and PublicKey are required; the rest has defaults.
type Options struct {
	Output         string   // the image file, e.g. .state/vm/debian12.img
	PublicKey      []byte   // authorized_keys line(s) for root
	Suite          string   // Debian suite; default "bookworm"
	Mirror         string   // default "http://deb.debian.org/debian"
	SecurityMirror string   // default "http://deb.debian.org/debian-security"
	Packages       []string // default DefaultPackages
	SizeBytes      int64    // virtual disk size; the file stays sparse; default 8 GiB
	Hostname       string   // default "debian"
	// Logf receives progress lines (no trailing newline needed); nil discards them.
	Logf progress.Func
}

const gib = 1 << 30

func (o Options) withDefaults() Options {
	if o.Suite == "" {
		o.Suite = "bookworm"
	}
	if o.Mirror == "" {
		o.Mirror = "http://deb.debian.org/debian"
	}
	if o.SecurityMirror == "" {
		o.SecurityMirror = "http://deb.debian.org/debian-security"
	}
	if len(o.Packages) == 0 {
		o.Packages = DefaultPackages
	}
	if o.SizeBytes == 0 {
		o.SizeBytes = 8 * gib
	}
	if o.Hostname == "" {
		o.Hostname = "debian"
	}
	return o
}

// Validate reports the first option that cannot work, naming the fix.
func (o Options) Validate() error {
	switch {
	case o.Output == "":
		return errors.New("vmimage: no output path: set the image path (e.g. .state/vm/debian12.img)")
	case len(bytes.TrimSpace(o.PublicKey)) == 0:
		return errors.New("vmimage: no SSH public key for root: generate the deploy key first (sshx.EnsureKey) and pass its .pub")
	case !validAuthorizedKeys(o.PublicKey):
		return errors.New("vmimage: the public key is not in authorized_keys format (ssh-ed25519 AAAA...): pass the .pub file or sshx.Key.AuthorizedKey, not the private key")
	case o.SizeBytes < 2*gib:
		return fmt.Errorf("vmimage: disk size %d bytes is too small: use at least 2 GiB", o.SizeBytes)
	case strings.ContainsAny(o.Hostname, " \t\n/"):
		return fmt.Errorf("vmimage: hostname %q is not a valid host name", o.Hostname)
	}
	for _, p := range o.Packages {
		if p == "" || strings.ContainsAny(p, " ,\t\n") {
			return fmt.Errorf("vmimage: package name %q is not valid: one name per list entry", p)
		}
	}
	return nil
}

// validAuthorizedKeys reports whether data is one or more authorized_keys lines.
func validAuthorizedKeys(data []byte) bool {
	rest := data
	for len(bytes.TrimSpace(rest)) > 0 {
		_, _, _, next, err := ssh.ParseAuthorizedKey(rest)
		if err != nil {
			return false
		}
		rest = next
	}
	return true
}

// Build makes the image at o.Output unless it exists with a stamp recording the same inputs.
// It reports whether it built. The image is built in a temp file next to the output and
// renamed into place at the end, so a failed or interrupted build leaves the old image (or
// nothing) behind, never half an image; loop devices and mounts are released on every path.
func Build(ctx context.Context, o Options) (built bool, err error) {
	o = o.withDefaults()
	if err := o.Validate(); err != nil {
		return false, err
	}
	if ok, err := upToDate(o); err != nil || ok {
		if ok {
			o.Logf.Printf("image %s is up to date (same suite, packages and key): skipping the build", o.Output)
			err = sweepIfAny(ctx, o)
		}
		return false, err
	}
	if err := preflight(); err != nil {
		return false, err
	}
	if err := os.MkdirAll(filepath.Dir(o.Output), 0o755); err != nil {
		return false, fmt.Errorf("vmimage: create %s: %w", filepath.Dir(o.Output), err)
	}
	unlock, err := lockFile(o.Output + ".lock")
	if err != nil {
		return false, err
	}
	defer unlock()
	if err := sweep(ctx, o); err != nil {
		return false, err
	}

	start := time.Now()
	tmp := buildingPath(o.Output)
	defer os.Remove(tmp) // no-op once renamed
	if err := buildInto(ctx, tmp, o, start); err != nil {
		return false, fmt.Errorf("vmimage: build %s: %w", o.Output, err)
	}
	if err := os.Rename(tmp, o.Output); err != nil {
		return false, fmt.Errorf("vmimage: move the finished image into place: %w", err)
	}
	s := newStamp(o)
	s.BuiltAt = time.Now().UTC().Format(time.RFC3339)
	if err := writeStamp(o.Output, s); err != nil {
		return true, fmt.Errorf("vmimage: write stamp (the image is fine, the next run rebuilds it): %w", err)
	}
	o.Logf.Printf("[%3.0fs] image ready: %s", time.Since(start).Seconds(), o.Output)
	return true, nil
}

// sweepIfAny releases what an unfinished build of the image left, when there is anything:
// a later build with other settings may have been interrupted while this one's image
// stayed valid. Releasing needs root; without it the finished image is still fine to use,
// so it only says what to run.
func sweepIfAny(ctx context.Context, o Options) error {
	l, err := readLeftovers(ctx, o.Output)
	if err != nil || l.empty() {
		return err
	}
	if os.Geteuid() != 0 {
		o.Logf.Printf("an interrupted build of %s left %s: `%s` as root releases them", o.Output, l, fix.Command("vm:image"))
		return nil
	}
	unlock, err := lockFile(o.Output + ".lock")
	if err != nil {
		return err
	}
	defer unlock()
	return sweep(ctx, o)
}

// sweep releases the leftovers of an unfinished build of the image; the caller holds the
// image's lock, so they cannot belong to a build that is still running.
func sweep(ctx context.Context, o Options) error {
	l, err := readLeftovers(ctx, o.Output)
	if err != nil || l.empty() {
		return err
	}
	o.Logf.Printf("releasing what an interrupted build left: %s", l)
	if err := l.release(); err != nil {
		return fmt.Errorf("vmimage: release what an interrupted build of %s left: %w", o.Output, err)
	}
	return nil
}

// buildInto runs the whole recipe against the file at path.
func buildInto(ctx context.Context, path string, o Options, start time.Time) (err error) {
	step := func(format string, args ...any) {
		o.Logf.Printf("[%3.0fs] "+format, append([]any{time.Since(start).Seconds()}, args...)...)
	}
	rootUUID, err := newUUID()
	if err != nil {
		return err
	}
	step("creating a sparse %d GiB disk with one ext4 partition", o.SizeBytes/gib)
	if err := createDisk(ctx, path, o.SizeBytes); err != nil {
		return err
	}
	disk, err := attachLoop(ctx, path)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, disk.detach()) }()
	if err := run(ctx, nil, "mkfs.ext4", "-q", "-F", "-L", "root", "-U", rootUUID, disk.part); err != nil {
		return err
	}
	mnt, err := mountAt(ctx, disk.part, workDir(o.Output))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, mnt.unmount()) }()

	step("bootstrapping Debian %s with %d packages (mmdebstrap, about a minute)", o.Suite, len(o.Packages))
	if err := bootstrap(ctx, mnt.dir, o, step); err != nil {
		return err
	}
	step("configuring boot, network and SSH")
	kernel, initrd, err := findKernel(mnt.dir)
	if err != nil {
		return err
	}
	if err := configure(mnt.dir, o, rootUUID, kernel, initrd); err != nil {
		return err
	}
	step("installing GRUB on the disk")
	if err := installGrub(ctx, mnt, disk.dev); err != nil {
		return err
	}
	// The loop device passes discards on as holes: the blocks apt freed stop taking space.
	if err := run(ctx, nil, "fstrim", mnt.dir); err != nil {
		step("fstrim failed, the image keeps its freed blocks (harmless): %v", err)
	}
	return nil
}

// bootstrap runs mmdebstrap into dir, printing its latest line every few seconds.
func bootstrap(ctx context.Context, dir string, o Options, step func(string, ...any)) error {
	args := []string{
		"--variant=minbase",
		"--include=" + strings.Join(o.Packages, ","),
		// dpkg's fsync per file costs minutes on a loop device; a crash means a rebuild anyway.
		"--dpkgopt=force-unsafe-io",
		// Keep the image small: no docs, man pages or translations.
		"--dpkgopt=path-exclude=/usr/share/man/*",
		"--dpkgopt=path-exclude=/usr/share/doc/*",
		"--dpkgopt=path-include=/usr/share/doc/*/copyright",
		"--dpkgopt=path-exclude=/usr/share/locale/*",
		"--dpkgopt=path-include=/usr/share/locale/locale.alias",
		o.Suite, dir,
	}
	args = append(args, sourceLines(o.Mirror, o.SecurityMirror, o.Suite)...)
	var last lastLine
	stop := heartbeat(20*time.Second, func() { step("mmdebstrap: %s", last.String()) })
	defer stop()
	return runGroupTo(ctx, &last, "mmdebstrap", args...)
}

// heartbeat calls beat every interval until the returned stop is called.
func heartbeat(interval time.Duration, beat func()) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				beat()
			}
		}
	}()
	return func() { close(done) }
}

// lastLine is an io.Writer that remembers the last complete non-empty line written to it
// and the tail of the whole output for error messages.
type lastLine struct {
	mu      sync.Mutex
	partial []byte
	line    string
	all     []byte
}

func (l *lastLine) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = append(l.all, p...)
	if len(l.all) > 64<<10 {
		l.all = l.all[len(l.all)-32<<10:]
	}
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		if s := strings.TrimSpace(string(l.partial[:i])); s != "" {
			l.line = s
		}
		l.partial = l.partial[i+1:]
	}
	return len(p), nil
}

func (l *lastLine) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.line
}

func (l *lastLine) output() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.all)
}
