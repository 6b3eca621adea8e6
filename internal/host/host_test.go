package host

import (
	"bytes"
	"context"
	"io"
	"os/exec"
	"slices"
	"strings"
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
	e, ran := fakeEnv(t, 1000, fedora, "wrk", "nginx", "taskset")
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
