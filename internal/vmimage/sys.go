package vmimage

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/clock-app/clock/internal/fix"
	"github.com/clock-app/clock/internal/host"
)

// preflight checks for root and the host tools before anything is created.
func preflight() error {
	if os.Geteuid() != 0 {
		return fix.By("vm:image", errors.New("vmimage: building the image needs root (loop devices and mounts): run it as root"))
	}
	tools, pkgs := host.Env{LookPath: host.LookPath}.Missing(host.Image)
	if len(tools) > 0 {
		var missing []string
		for _, t := range tools {
			missing = append(missing, t.Cmd)
		}
		slices.Sort(missing)
		slices.Sort(pkgs)
		return fmt.Errorf("vmimage: missing host tools %s: install them with apt-get install -y %s",
			strings.Join(missing, ", "), strings.Join(pkgs, " "))
	}
	return nil
}

// cleanupTimeout bounds each release step; cleanup runs even when the build's context is
// cancelled, so it gets a context of its own.
const cleanupTimeout = time.Minute

func cleanupCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), cleanupTimeout)
}

// run runs a command, returning its output's tail in the error when it fails.
func run(ctx context.Context, stdin io.Reader, name string, args ...string) error {
	_, err := output(ctx, stdin, name, args...)
	return err
}

// stopGrace is how long a cancelled mmdebstrap gets to undo its own mounts before it is
// killed: mage gives a cancelled target five seconds in all, and our own release follows.
const stopGrace = 3 * time.Second

// runGroupTo runs a long command with its output going to w, reporting w's tail when it
// fails. The command and everything it starts (apt, dpkg and the maintainer scripts in the
// chroot) form their own process group: on cancellation the group gets SIGTERM, which
// mmdebstrap answers by unmounting what it mounted, and whatever is left of the group is
// killed before this returns, so nothing keeps the image busy. Should mage itself die, the
// kernel sends the command SIGTERM (Pdeathsig; Go starts commands from threads it keeps).
func runGroupTo(ctx context.Context, w *lastLine, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout = w
	cmd.Stderr = w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = stopGrace
	err := cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // ESRCH once the group is gone
	}
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return fmt.Errorf("%s failed: %w\n%s", name, err, tail(w.output(), 25))
	}
	return nil
}

func output(ctx context.Context, stdin io.Reader, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = stdin
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return out.String(), fmt.Errorf("%s failed: %w\n%s", name, err, tail(out.String(), 25))
	}
	return out.String(), nil
}

// tail returns the last n lines of s, indented, for error messages.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}

// partitionTable is an sfdisk script: MBR, one bootable Linux partition from 1 MiB to the end
// (the gap before it holds GRUB's core image).
const partitionTable = "label: dos\nstart=2048, type=83, bootable\n"

func createDisk(ctx context.Context, path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return run(ctx, strings.NewReader(partitionTable), "sfdisk", "--quiet", path)
}

// loopDisk is the image attached to a loop device, with its partition node.
type loopDisk struct {
	dev  string // /dev/loopN
	part string // /dev/loopNp1
}

// attachLoop attaches path and makes the kernel create the partition node: `losetup -P`
// creates none here (no udev), `partx -a` does.
func attachLoop(ctx context.Context, path string) (*loopDisk, error) {
	out, err := output(ctx, nil, "losetup", "--find", "--show", path)
	if err != nil {
		return nil, err
	}
	d := &loopDisk{dev: strings.TrimSpace(out)}
	d.part = d.dev + "p1"
	if err := run(ctx, nil, "partx", "-a", d.dev); err != nil {
		return nil, errors.Join(err, d.detach())
	}
	if err := waitForPath(ctx, d.part, 10*time.Second); err != nil {
		return nil, errors.Join(err, d.detach())
	}
	return d, nil
}

func (d *loopDisk) detach() error {
	ctx, cancel := cleanupCtx()
	defer cancel()
	// partx -d fails harmlessly when the partition is already gone.
	_ = run(ctx, nil, "partx", "-d", d.dev)
	if err := run(ctx, nil, "losetup", "-d", d.dev); err != nil {
		return fmt.Errorf("detach loop device %s (run losetup -d %s by hand): %w", d.dev, d.dev, err)
	}
	return nil
}

func waitForPath(ctx context.Context, path string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("partition node %s did not appear within %s (is devtmpfs mounted on /dev?)", path, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// mount is a filesystem mounted on the image's work folder (workDir).
type mount struct{ dir string }

func mountAt(ctx context.Context, dev, dir string) (*mount, error) {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	if err := run(ctx, nil, "mount", dev, dir); err != nil {
		os.Remove(dir)
		return nil, err
	}
	return &mount{dir: dir}, nil
}

// unmount unmounts the tree innermost first, including whatever an interrupted step
// (mmdebstrap's proc, sys, dev/pts, dev/shm) left mounted below it, and removes the folder.
func (m *mount) unmount() error {
	l, err := mountedUnder(m.dir)
	if err != nil {
		return err
	}
	return l.release()
}

// installGrub runs the image's own grub-install (grub-pc-bin) in a chroot that sees the
// host's /dev, /proc and /sys, writing GRUB to the loop device's MBR.
func installGrub(ctx context.Context, m *mount, dev string) (err error) {
	for _, d := range []string{"dev", "proc", "sys"} {
		target := filepath.Join(m.dir, d)
		if err := run(ctx, nil, "mount", "--bind", "/"+d, target); err != nil {
			return err
		}
		defer func() {
			cctx, cancel := cleanupCtx()
			defer cancel()
			err = errors.Join(err, run(cctx, nil, "umount", target))
		}()
	}
	return run(ctx, nil, "chroot", m.dir, "grub-install", "--target=i386-pc",
		"--boot-directory=/boot", "--modules=part_msdos ext2 serial", dev)
}

// findKernel returns the newest kernel and its initrd under root/boot, as paths inside the
// image.
func findKernel(root string) (kernel, initrd string, err error) {
	kernels, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if len(kernels) == 0 {
		return "", "", errors.New("no kernel in /boot of the image: is linux-image-amd64 in the package list?")
	}
	slices.Sort(kernels)
	version := strings.TrimPrefix(filepath.Base(kernels[len(kernels)-1]), "vmlinuz-")
	kernel = "/boot/vmlinuz-" + version
	initrd = "/boot/initrd.img-" + version
	if _, err := os.Stat(filepath.Join(root, initrd)); err != nil {
		return "", "", fmt.Errorf("no initrd for kernel %s in the image (initramfs-tools failed?): %w", version, err)
	}
	return kernel, initrd, nil
}

// configure writes the files that make the bootstrapped tree a bootable, reachable VM.
func configure(root string, o Options, rootUUID, kernel, initrd string) error {
	files := []struct {
		path string
		mode os.FileMode
		data string
	}{
		{"/etc/fstab", 0o644, renderFstab(rootUUID)},
		{"/boot/grub/grub.cfg", 0o644, renderGrubCfg(grubConfig{RootUUID: rootUUID, Kernel: kernel, Initrd: initrd, Timeout: 1})},
		{"/etc/hostname", 0o644, o.Hostname + "\n"},
		{"/etc/hosts", 0o644, renderHosts(o.Hostname)},
		{"/etc/default/grub", 0o644, defaultGrub},
		{"/etc/systemd/network/80-dhcp.network", 0o644, networkdDHCP},
		{"/etc/systemd/resolved.conf.d/10-clock.conf", 0o644, resolvedConfig},
		{"/etc/ssh/sshd_config.d/10-clock.conf", 0o644, sshdConfig},
		{"/etc/systemd/system/ssh.service.d/10-host-keys.conf", 0o644, sshHostKeysDropIn},
		{"/root/.ssh/authorized_keys", 0o600, strings.TrimSpace(string(o.PublicKey)) + "\n"},
		// Empty, not absent: systemd makes a new one on first boot.
		{"/etc/machine-id", 0o444, ""},
	}
	for _, f := range files {
		p := filepath.Join(root, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(f.data), f.mode); err != nil {
			return fmt.Errorf("write %s in the image: %w", f.path, err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(root, "root/.ssh"), 0o700); err != nil {
		return err
	}
	for _, l := range enableLinks {
		p := filepath.Join(root, l.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := os.Symlink(l.Target, p); err != nil {
			return fmt.Errorf("link %s in the image: %w", l.Path, err)
		}
	}
	// Every VM gets its own identity on first boot: host keys from ssh.service's
	// ExecStartPre, the machine ID from systemd.
	keys, _ := filepath.Glob(filepath.Join(root, "etc/ssh/ssh_host_*"))
	for _, k := range keys {
		if err := os.Remove(k); err != nil {
			return err
		}
	}
	if fi, err := os.Lstat(filepath.Join(root, "var/lib/dbus/machine-id")); err == nil && fi.Mode().IsRegular() {
		if err := os.Remove(filepath.Join(root, "var/lib/dbus/machine-id")); err != nil {
			return err
		}
	}
	return nil
}

// newUUID returns a random (version 4) UUID for the root filesystem.
func newUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}

// lockFile takes an exclusive lock so two builds of the same image do not race.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("vmimage: open lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("vmimage: another build of this image is running (lock %s held): wait for it", path)
	}
	return func() {
		os.Remove(path) // others fail fast on a held lock instead of waiting, so this is safe
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
