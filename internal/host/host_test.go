package host

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// fakeEnv is an Env whose PATH holds only the given commands and that records every command
// it is asked to run instead of running it.
func fakeEnv(t *testing.T, uid int, osRelease string, have ...string) (*Env, *[]string) {
	t.Helper()
	var ran []string
	e := &Env{
		LookPath: func(name string) (string, error) {
			if slices.Contains(have, name) {
				return "/usr/bin/" + name, nil
			}
			return "", exec.ErrNotFound
		},
		Run: func(_ context.Context, _ io.Writer, name string, args ...string) error {
			ran = append(ran, strings.Join(append([]string{name}, args...), " "))
			return nil
		},
		Geteuid:   func() int { return uid },
		OSRelease: osRelease,
	}
	return e, &ran
}

const debian = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n"
const ubuntu = "NAME=\"Ubuntu\"\nID=ubuntu\nID_LIKE=debian\n"
const fedora = "NAME=\"Fedora Linux\"\nID=fedora\n"

func TestMissingDeduplicatesPackages(t *testing.T) {
	e, _ := fakeEnv(t, 0, debian, "docker")
	tools, pkgs := e.Missing(Build, VM)
	if len(tools) != len(Build)+len(VM)-1 {
		t.Errorf("missing %d tools, want all but docker (%d)", len(tools), len(Build)+len(VM)-1)
	}
	if got := strings.Join(pkgs, " "); strings.Count(got, "libvirt-daemon-system") != 1 || !strings.HasPrefix(got, "docker.io ") {
		t.Errorf("packages = %q, want docker.io first and each package once", got)
	}
}

func TestDebianFamily(t *testing.T) {
	for _, tt := range []struct {
		osr  string
		want bool
	}{{debian, true}, {ubuntu, true}, {fedora, false}, {"", false}} {
		e, _ := fakeEnv(t, 0, tt.osr)
		if got := e.DebianFamily(); got != tt.want {
			t.Errorf("DebianFamily(%q) = %v, want %v", tt.osr, got, tt.want)
		}
	}
}

func TestInstallAsRootRunsApt(t *testing.T) {
	e, ran := fakeEnv(t, 0, debian, "docker")
	err := e.Install(context.Background(), io.Discard, Build)
	// The fake installs nothing, so the re-check must notice that dockerd is still missing.
	if err == nil || !strings.Contains(err.Error(), "still missing") {
		t.Errorf("Install = %v, want a 'still missing' error from the re-check", err)
	}
	want := []string{"apt-get update -q", "apt-get install -y -q docker.io"}
	if !slices.Equal(*ran, want) {
		t.Errorf("ran %q, want %q", *ran, want)
	}
}

func TestInstallWithoutPrivilegePrintsCommands(t *testing.T) {
	e, ran := fakeEnv(t, 1000, debian)
	err := e.Install(context.Background(), io.Discard, Bench)
	if err == nil {
		t.Fatal("Install as a user without sudo = nil, want an error with the commands")
	}
	for _, want := range []string{"sudo apt-get update", "sudo apt-get install -y wrk nginx-light util-linux"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if len(*ran) != 0 {
		t.Errorf("ran %q, want nothing run", *ran)
	}
}

func TestInstallWithSudo(t *testing.T) {
	e, ran := fakeEnv(t, 1000, ubuntu, "sudo")
	_ = e.Install(context.Background(), io.Discard, Browser)
	want := []string{"sudo -n true", "sudo -n apt-get update -q", "sudo -n apt-get install -y -q chromium"}
	if !slices.Equal(*ran, want) {
		t.Errorf("ran %q, want %q", *ran, want)
	}
}

func TestInstallNotDebian(t *testing.T) {
	e, _ := fakeEnv(t, 0, fedora)
	err := e.Install(context.Background(), io.Discard, Bench)
	if err == nil || !strings.Contains(err.Error(), "not a Debian-family host") {
		t.Errorf("Install on Fedora = %v, want a not-Debian error", err)
	}
}

func TestInstallNothingMissing(t *testing.T) {
	var all []string
	for _, tool := range Bench {
		all = append(all, tool.Cmd)
	}
	e, ran := fakeEnv(t, 1000, fedora, all...)
	var out bytes.Buffer
	if err := e.Install(context.Background(), &out, Bench); err != nil {
		t.Fatalf("Install with all present = %v", err)
	}
	if len(*ran) != 0 || out.Len() != 0 {
		t.Errorf("ran %q and printed %q, want nothing", *ran, out.String())
	}
}

func TestStartSystemd(t *testing.T) {
	e, ran := fakeEnv(t, 0, debian)
	e.Systemd = true
	up := false
	d := Daemon{Name: "dockerd", Unit: "docker", Up: func(context.Context) bool { r := up; up = true; return r }, Ready: 1}
	if err := e.Start(context.Background(), io.Discard, d); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(*ran, []string{"systemctl start docker"}) {
		t.Errorf("ran %q, want systemctl start docker", *ran)
	}
}

func TestStartWithoutPrivilege(t *testing.T) {
	e, _ := fakeEnv(t, 1000, debian)
	d := Daemon{Name: "libvirtd", Unit: "libvirtd", Up: func(context.Context) bool { return false }, Command: []string{"libvirtd"}}
	err := e.Start(context.Background(), io.Discard, d)
	if err == nil || !strings.Contains(err.Error(), "run: sudo libvirtd") {
		t.Errorf("Start = %v, want the command to run", err)
	}
}

func TestNetworkActive(t *testing.T) {
	info := "Name:           default\nUUID:           1b2f\nActive:         yes\nPersistent:     yes\nAutostart:      no\nBridge:         virbr0\n"
	if !NetworkActive(info) {
		t.Errorf("NetworkActive = false for %q", info)
	}
	if NetworkActive(strings.Replace(info, "Active:         yes", "Active:         no", 1)) {
		t.Error("NetworkActive = true for an inactive network")
	}
}

func TestSocketDenied(t *testing.T) {
	d := dockerd()
	d.Socket = "/var/run/docker.sock"
	sysErr := func(errno syscall.Errno) error {
		return &net.OpError{Op: "dial", Net: "unix", Err: &os.SyscallError{Syscall: "connect", Err: errno}}
	}
	tests := []struct {
		name string
		err  error
		want []string // nil: not a permission problem
	}{
		{"permission denied", sysErr(syscall.EACCES), []string{"dockerd is running", "/var/run/docker.sock", "permission denied", "docker group", "usermod -aG docker", "log in again", "root"}},
		{"operation not permitted", sysErr(syscall.EPERM), []string{"docker group"}},
		{"no socket", sysErr(syscall.ENOENT), nil},
		{"stale socket", sysErr(syscall.ECONNREFUSED), nil},
		{"reachable", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := socketDenied(d, tt.err)
			if tt.want == nil {
				if err != nil {
					t.Errorf("socketDenied(%v) = %v, want nil (dockerd is simply not running)", tt.err, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("socketDenied(%v) = nil, want an error", tt.err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("socketDenied = %q, want it to contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "sudo dockerd") {
				t.Errorf("socketDenied = %q suggests starting a second daemon", err)
			}
		})
	}
	lv := libvirtd("qemu:///system")
	if err := socketDenied(lv, sysErr(syscall.EACCES)); err == nil || !strings.Contains(err.Error(), "libvirt group") {
		t.Errorf("socketDenied(libvirtd) = %v, want the libvirt group named", err)
	}
	if s := libvirtd("qemu:///session").Socket; s != "" {
		t.Errorf("a session URI checks the system socket %q", s)
	}
}

func TestDockerSocket(t *testing.T) {
	for in, want := range map[string]string{"": "/var/run/docker.sock", "unix:///run/user/1000/docker.sock": "/run/user/1000/docker.sock", "tcp://10.0.0.1:2376": ""} {
		if got := dockerSocket(in); got != want {
			t.Errorf("dockerSocket(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestStartDoesNotStartASecondDaemon is a user outside the docker group on a host where
// dockerd runs: the socket's permission is named, and nothing is started.
func TestStartDoesNotStartASecondDaemon(t *testing.T) {
	e, ran := fakeEnv(t, 1000, debian, "sudo", "dockerd")
	old := dialSocket
	dialSocket = func(string) error {
		return &net.OpError{Op: "dial", Net: "unix", Err: &os.SyscallError{Syscall: "connect", Err: syscall.EACCES}}
	}
	t.Cleanup(func() { dialSocket = old })
	d := dockerd()
	d.Up = func(context.Context) bool { return false }
	d.Socket = "/var/run/docker.sock"
	err := e.Start(context.Background(), io.Discard, d)
	if err == nil || !strings.Contains(err.Error(), "docker group") {
		t.Errorf("Start = %v, want the docker group named", err)
	}
	if len(*ran) != 0 {
		t.Errorf("ran %q, want nothing (dockerd already runs)", *ran)
	}
}

// TestLookPathAbsolute: a Python module has no command, so the tool lists
// name one of its files, which need only exist.
func TestLookPathAbsolute(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "__init__.py")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := LookPath(file); err != nil || got != file {
		t.Errorf("LookPath(%q) = %q, %v; want the file", file, got, err)
	}
	for _, missing := range []string{filepath.Join(dir, "absent.py"), dir} {
		if _, err := LookPath(missing); !errors.Is(err, exec.ErrNotFound) {
			t.Errorf("LookPath(%q) = %v, want ErrNotFound", missing, err)
		}
	}
}
