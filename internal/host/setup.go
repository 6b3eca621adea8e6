package host

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/clock-app/clock/internal/progress"
)

// Options says what the coming work needs.
type Options struct {
	VM         bool   // libvirt, qemu and the image tools, and their daemons
	Browser    bool   // chromium for the browser tests
	Bench      bool   // the tools in Bench (wrk, nginx, uvicorn) for mage bench
	LibvirtURI string // where the VM runs
}

// Setup makes sure the tools and daemons that opts asks for are there: it installs what is
// missing and starts what is not running, and says what it did.
func Setup(ctx context.Context, out io.Writer, e Env, opts Options) error {
	step := progress.Start(out, "setup: host tools and daemons")
	sets := [][]Tool{Build}
	if opts.VM {
		sets = append(sets, VM, Image)
	}
	if opts.Browser {
		sets = append(sets, Browser)
	}
	if opts.Bench {
		sets = append(sets, Bench)
	}
	if err := e.Install(ctx, out, sets...); err != nil {
		return step.Fail(err)
	}
	daemons := []Daemon{dockerd()}
	if opts.VM {
		daemons = append(daemons, virtlogd(), libvirtd(opts.LibvirtURI))
	}
	var started []string
	for _, d := range daemons {
		wasUp := d.Up(ctx)
		if err := e.Start(ctx, out, d); err != nil {
			return step.Fail(err)
		}
		if !wasUp {
			started = append(started, d.Name)
		}
	}
	if opts.VM {
		did, err := e.DefaultNetwork(ctx, out, opts.LibvirtURI)
		if err != nil {
			return step.Fail(err)
		}
		if did != "" {
			started = append(started, did)
		}
	}
	if len(started) == 0 {
		step.Done("everything already there")
	} else {
		step.Done("started %s", strings.Join(started, ", "))
	}
	return nil
}

// quiet runs a probe command and reports whether it succeeded, within a few seconds.
func quiet(ctx context.Context, name string, args ...string) bool {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, name, args...).Run() == nil
}

func dockerd() Daemon {
	return Daemon{
		Name: "dockerd",
		Unit: "docker",
		Up: func(ctx context.Context) bool {
			return quiet(ctx, "docker", "version", "--format", "{{.Server.Version}}")
		},
		Command: []string{"dockerd"},
		Ready:   60 * time.Second,
		Socket:  dockerSocket(os.Getenv("DOCKER_HOST")),
		Access:  Access{Group: "docker"},
	}
}

// dockerSocket is the socket the docker CLI talks to for DOCKER_HOST, or "" when that is
// not a local socket.
func dockerSocket(dockerHost string) string {
	switch {
	case dockerHost == "":
		return "/var/run/docker.sock"
	case strings.HasPrefix(dockerHost, "unix://"):
		return strings.TrimPrefix(dockerHost, "unix://")
	}
	return ""
}

// libvirtSocket is the socket of the system libvirtd, the one qemu:///system reaches; a
// session URI is the user's own daemon, which no group guards.
func libvirtSocket(uri string) string {
	if strings.HasSuffix(uri, "/system") && (strings.HasPrefix(uri, "qemu:") || strings.HasPrefix(uri, "qemu+unix:")) {
		return "/var/run/libvirt/libvirt-sock"
	}
	return ""
}

func virtlogd() Daemon {
	return Daemon{
		Name:    "virtlogd",
		Unit:    "virtlogd",
		Up:      func(ctx context.Context) bool { return quiet(ctx, "pgrep", "-x", "virtlogd") },
		Command: []string{"virtlogd"},
		Ready:   20 * time.Second,
	}
}

func libvirtd(uri string) Daemon {
	return Daemon{
		Name:    "libvirtd",
		Unit:    "libvirtd",
		Up:      func(ctx context.Context) bool { return quiet(ctx, "virsh", "--connect", uri, "version") },
		Command: []string{"libvirtd"},
		Ready:   30 * time.Second,
		Socket:  libvirtSocket(uri),
		Access:  Access{Group: "libvirt"},
	}
}

// DefaultNetwork makes sure libvirt's `default` network exists and is active. It returns
// what it did, or "" when the network was already up.
func (e Env) DefaultNetwork(ctx context.Context, out io.Writer, uri string) (string, error) {
	virsh := func(args ...string) (string, error) {
		var b bytes.Buffer
		err := e.Run(ctx, &b, "virsh", append([]string{"--connect", uri}, args...)...)
		return b.String(), err
	}
	info, err := virsh("net-info", "default")
	if err != nil {
		fmt.Fprintln(out, "    defining libvirt's default network")
		if msg, err := virsh("net-define", "/usr/share/libvirt/networks/default.xml"); err != nil {
			return "", fmt.Errorf("libvirt has no network named default and defining it failed: %s; define a NAT network named default (virsh net-define) and run again", strings.TrimSpace(msg))
		}
		info = ""
	}
	if NetworkActive(info) {
		return "", nil
	}
	fmt.Fprintln(out, "    starting libvirt's default network")
	if msg, err := virsh("net-start", "default"); err != nil {
		return "", fmt.Errorf("virsh net-start default: %s (is dnsmasq installed and is another DHCP server holding virbr0?)", strings.TrimSpace(msg))
	}
	return "network default", nil
}

// NetworkActive reads `virsh net-info` output.
func NetworkActive(info string) bool {
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == "Active" {
			return strings.TrimSpace(v) == "yes"
		}
	}
	return false
}
