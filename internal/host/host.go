// Package host prepares the machine that runs mage: it finds the tools the targets need,
// installs the missing ones from the distribution's packages where it may (Debian family,
// root or passwordless sudo), and starts the daemons that are not running. Where it may not,
// it prints the exact commands instead.
package host

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Tool is a command some target needs and the Debian package that ships it.
type Tool struct {
	Cmd     string // looked up in PATH and the sbin folders; an absolute path need only exist
	Package string
	For     string // what needs it, for messages
}

// Tool sets: what each kind of work needs.
var (
	Build = []Tool{
		{"docker", "docker.io", "building and running images"},
		{"dockerd", "docker.io", "the Docker engine"},
	}
	VM = []Tool{
		{"virsh", "libvirt-clients", "managing the VM"},
		{"libvirtd", "libvirt-daemon-system", "the libvirt daemon"},
		{"virtlogd", "libvirt-daemon-system", "the VM's console log"},
		{"dnsmasq", "dnsmasq-base", "DHCP on libvirt's default network"},
		{"qemu-system-x86_64", "qemu-system-x86", "running the VM"},
		{"qemu-img", "qemu-utils", "the VM's overlay disk"},
	}
	// Image is what vm:image's recipe runs (internal/vmimage checks it before a build).
	Image = []Tool{
		{"mmdebstrap", "mmdebstrap", "building the Debian images offline"},
		{"sfdisk", "fdisk", "partitioning the VM image"},
		{"mkfs.ext4", "e2fsprogs", "formatting the VM image"},
		{"partx", "util-linux", "the VM image's partition device"},
		{"losetup", "mount", "the VM image's loop device"},
		{"mount", "mount", "mounting the VM image"},
		{"umount", "mount", "unmounting the VM image"},
		{"chroot", "coreutils", "configuring the VM image"},
	}
	Browser = []Tool{{"chromium", "chromium", "the browser tests"}}
	Bench   = []Tool{
		{"wrk", "wrk", "the load test"},
		{"nginx", "nginx-light", "the nginx yardstick"},
		{"taskset", "util-linux", "pinning the load test to CPUs"},
		// Python modules have no command: their files stand for them.
		{"/usr/lib/python3/dist-packages/uvicorn/__main__.py", "python3-uvicorn", "the nginx -> uvicorn yardstick"},
		{"/usr/lib/python3/dist-packages/fastapi/__init__.py", "python3-fastapi", "the nginx -> uvicorn yardstick"},
		{"/usr/lib/python3/dist-packages/uvloop/__init__.py", "python3-uvloop", "uvicorn's event loop"},
		{"/usr/lib/python3/dist-packages/httptools/__init__.py", "python3-httptools", "uvicorn's HTTP parser"},
	}
)

// Env is what Setup needs of the machine; tests replace its functions.
type Env struct {
	LookPath  func(string) (string, error)
	Run       func(ctx context.Context, out io.Writer, name string, args ...string) error
	Geteuid   func() int
	OSRelease string // contents of /etc/os-release
	Systemd   bool   // PID 1 is systemd: daemons are started with systemctl
	LogDir    string // where daemons started by hand log
}

// Real is the Env of this machine.
func Real(logDir string) Env {
	osr, _ := os.ReadFile("/etc/os-release")
	_, err := os.Stat("/run/systemd/system")
	return Env{
		LookPath:  LookPath,
		Run:       run,
		Geteuid:   os.Geteuid,
		OSRelease: string(osr),
		Systemd:   err == nil,
		LogDir:    logDir,
	}
}

// LookPath is exec.LookPath that also searches the sbin folders: a non-root PATH on Debian
// often lacks them, and the daemons and nginx live there.
func LookPath(name string) (string, error) {
	if filepath.IsAbs(name) {
		if st, err := os.Stat(name); err != nil || st.IsDir() {
			return "", exec.ErrNotFound
		}
		return name, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

func run(ctx context.Context, out io.Writer, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	return cmd.Run()
}

// Missing returns the tools of the sets that are not found, and their packages, deduplicated
// and in a stable order.
func (e Env) Missing(sets ...[]Tool) (tools []Tool, pkgs []string) {
	seen := map[string]bool{}
	for _, set := range sets {
		for _, t := range set {
			if seen[t.Cmd] {
				continue
			}
			seen[t.Cmd] = true
			if _, err := e.LookPath(t.Cmd); err != nil {
				tools = append(tools, t)
				if !slices.Contains(pkgs, t.Package) {
					pkgs = append(pkgs, t.Package)
				}
			}
		}
	}
	return tools, pkgs
}

// DebianFamily reports whether os-release names Debian or a derivative (Ubuntu and others).
func (e Env) DebianFamily() bool {
	sc := bufio.NewScanner(strings.NewReader(e.OSRelease))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		v = strings.Trim(v, `"'`)
		if (k == "ID" && v == "debian") || (k == "ID_LIKE" && slices.Contains(strings.Fields(v), "debian")) {
			return true
		}
	}
	return false
}

// privilege returns the command prefix that runs as root: none for root, sudo -n where it
// works without a password, or an error saying why nothing can be installed.
func (e Env) privilege(ctx context.Context) ([]string, error) {
	if e.Geteuid() == 0 {
		return nil, nil
	}
	if _, err := e.LookPath("sudo"); err == nil {
		if e.Run(ctx, io.Discard, "sudo", "-n", "true") == nil {
			return []string{"sudo", "-n"}, nil
		}
	}
	return nil, errors.New("not root and no passwordless sudo")
}

// InstallCommands are the commands that install pkgs, as a person would type them.
func InstallCommands(pkgs []string) []string {
	return []string{
		"sudo apt-get update",
		"sudo apt-get install -y " + strings.Join(pkgs, " "),
	}
}

// Install installs what the sets need and is missing. It prints what it does to out. Where
// it cannot install (not Debian, not root), it returns an error listing the exact commands.
func (e Env) Install(ctx context.Context, out io.Writer, sets ...[]Tool) error {
	missing, pkgs := e.Missing(sets...)
	if len(missing) == 0 {
		return nil
	}
	var names []string
	for _, t := range missing {
		names = append(names, t.Cmd)
	}
	fmt.Fprintf(out, "    missing: %s\n", strings.Join(names, ", "))
	if !e.DebianFamily() {
		return fmt.Errorf("missing %s and this is not a Debian-family host: install the equivalents of the Debian packages %s, then run again",
			strings.Join(names, ", "), strings.Join(pkgs, " "))
	}
	sudo, err := e.privilege(ctx)
	if err != nil {
		return fmt.Errorf("missing %s and cannot install them (%v); run:\n    %s",
			strings.Join(names, ", "), err, strings.Join(InstallCommands(pkgs), "\n    "))
	}
	fmt.Fprintf(out, "    installing from the distribution: %s\n", strings.Join(pkgs, " "))
	var log bytes.Buffer
	if err := e.Run(ctx, &log, first(sudo, "apt-get"), rest(sudo, "apt-get", "update", "-q")...); err != nil {
		return fmt.Errorf("apt-get update failed: %v\n%s", err, tail(log.String(), 20))
	}
	log.Reset()
	args := append([]string{"install", "-y", "-q"}, pkgs...)
	if err := e.Run(ctx, &log, first(sudo, "apt-get"), rest(sudo, "apt-get", args...)...); err != nil {
		return fmt.Errorf("apt-get install %s failed: %v\n%s", strings.Join(pkgs, " "), err, tail(log.String(), 20))
	}
	if still, _ := e.Missing(sets...); len(still) > 0 {
		return fmt.Errorf("still missing after installing: %v", still)
	}
	return nil
}

func first(prefix []string, cmd string) string {
	if len(prefix) > 0 {
		return prefix[0]
	}
	return cmd
}

func rest(prefix []string, cmd string, args ...string) []string {
	if len(prefix) > 0 {
		return append(append(prefix[1:], cmd), args...)
	}
	return args
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Daemon is a background service a target needs: Up says whether it answers, Start brings it
// up where there is no systemd.
type Daemon struct {
	Name    string // for messages
	Unit    string // systemd unit
	Up      func(ctx context.Context) bool
	Command []string // started detached, logging to LogDir/<Name>.log, when there is no systemd
	Ready   time.Duration
	// Socket is the unix socket clients talk to it on; Access says who may use it. When
	// Up fails but the socket refuses this user with a permission error, the daemon runs
	// and starting another is the wrong fix.
	Socket string
	Access Access
}

// Access is how a user gets the right to a daemon's socket.
type Access struct {
	Group string // the group that owns the socket, e.g. docker
}

// dialSocket tries the unix socket at path; tests replace it.
var dialSocket = func(path string) error {
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err == nil {
		c.Close()
	}
	return err
}

// socketDenied returns the error for a daemon whose socket refused this user (dialErr is
// the connect's error), or nil when that is not why the daemon cannot be used: then it is
// not running (no socket, or a stale one that refuses connections).
func socketDenied(d Daemon, dialErr error) error {
	if d.Socket == "" || !(errors.Is(dialErr, syscall.EACCES) || errors.Is(dialErr, syscall.EPERM)) {
		return nil
	}
	fix := "run as root"
	if d.Access.Group != "" {
		fix = fmt.Sprintf("add the user to the %s group (sudo usermod -aG %s $USER) and log in again (or run `newgrp %s`), or run as root",
			d.Access.Group, d.Access.Group, d.Access.Group)
	}
	return fmt.Errorf("%s is running, but this user (uid %d) may not use its socket %s (permission denied): %s",
		d.Name, os.Geteuid(), d.Socket, fix)
}

// Start brings d up if it is not: with systemctl under systemd, else as a detached process.
// It waits until d.Up answers, at most d.Ready.
func (e Env) Start(ctx context.Context, out io.Writer, d Daemon) error {
	if d.Up(ctx) {
		return nil
	}
	if d.Socket != "" {
		if err := socketDenied(d, dialSocket(d.Socket)); err != nil {
			return err
		}
	}
	sudo, err := e.privilege(ctx)
	if err != nil {
		how := "sudo systemctl start " + d.Unit
		if !e.Systemd {
			how = "sudo " + strings.Join(d.Command, " ")
		}
		return fmt.Errorf("%s is not running and cannot be started (%v); run: %s", d.Name, err, how)
	}
	fmt.Fprintf(out, "    starting %s\n", d.Name)
	if e.Systemd {
		var log bytes.Buffer
		if err := e.Run(ctx, &log, first(sudo, "systemctl"), rest(sudo, "systemctl", "start", d.Unit)...); err != nil {
			return fmt.Errorf("systemctl start %s: %v\n%s", d.Unit, err, log.String())
		}
	} else if err := e.detach(sudo, d); err != nil {
		return err
	}
	deadline := time.Now().Add(d.Ready)
	for !d.Up(ctx) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not come up within %s; see %s", d.Name, d.Ready, filepath.Join(e.LogDir, d.Name+".log"))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return nil
}
