// Package localvm is the local VM of one configuration: the knobs wired into package vm's
// options, and the vm:image and vm:up steps with their progress lines. Both the vm:*
// targets and a deploy without CLOCK_TARGET_HOST use it; nothing here deploys.
package localvm

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"

	"github.com/clock-app/clock/internal/config"
	"github.com/clock-app/clock/internal/progress"
	"github.com/clock-app/clock/internal/sshx"
	"github.com/clock-app/clock/internal/vm"
	"github.com/clock-app/clock/internal/vmimage"
)

// ErrRemote is the refusal of the vm:* targets when the deploy goes to a given host.
var ErrRemote = errors.New("CLOCK_TARGET_HOST is set: the vm targets manage the local VM only")

// Options is package vm's configuration for the knobs c, with the domain template of the
// repo at root; logf gets the VM's progress lines.
func Options(c config.Config, root string, logf progress.Func) vm.Config {
	key, _ := c.DeployKey()
	return vm.Config{
		Name:        c.VMName,
		MemoryMiB:   c.VMMemoryMiB,
		VCPUs:       c.VMVCPUs,
		Accel:       c.VMAccel,
		MAC:         c.VMMAC,
		URI:         c.LibvirtURI,
		StateDir:    c.State().Root(),
		BaseImage:   c.BaseImage(),
		KeyPath:     key,
		User:        c.VMUser,
		Template:    filepath.Join(root, "deploy", "libvirt", "domain.xml.tmpl"),
		BootTimeout: c.VMBoot,
		Logf:        logf,
	}
}

// Open returns the local VM of c, and ErrRemote when c deploys to a given host.
func Open(c config.Config, root string, logf progress.Func) (*vm.VM, error) {
	if c.Remote() {
		return nil, ErrRemote
	}
	return vm.New(Options(c, root, logf))
}

// Image builds the Debian base image (vm:image) unless the user brings their own or the one
// built before is up to date; the image lets the deploy key in.
func Image(ctx context.Context, c config.Config, out io.Writer) error {
	if c.Remote() {
		return ErrRemote
	}
	step := progress.Start(out, "vm:image")
	if c.VMImage != "" {
		step.Done("using your image %s", c.VMImage)
		return nil
	}
	key, err := sshx.OpenKey(c.DeployKey())
	if err != nil {
		return step.Fail(err)
	}
	built, err := vmimage.Build(ctx, vmimage.Options{
		Output:    c.BaseImage(),
		PublicKey: key.AuthorizedKey,
		Suite:     c.VMSuite,
		Logf:      step.Logf,
	})
	if err != nil {
		return step.Fail(err)
	}
	if built {
		step.Done("built %s", c.BaseImage())
	} else {
		step.Done("%s is up to date", c.BaseImage())
	}
	return nil
}

// Up makes sure the VM runs and answers SSH with its pinned host key (vm:up), and returns
// its address. The base image must exist: Image comes first.
func Up(ctx context.Context, c config.Config, root string, out io.Writer) (string, error) {
	step := progress.Start(out, "vm:up "+c.VMName)
	v, err := Open(c, root, step.Logf)
	if err != nil {
		return "", step.Fail(err)
	}
	if err := vm.ReachableByQEMU(c.LibvirtURI, c.State().Root()); err != nil {
		return "", step.Fail(err)
	}
	res, err := v.Up(ctx)
	if err != nil {
		return "", step.Fail(err)
	}
	if res.Started {
		step.Done("%s booted under %s: lease after %s, SSH after %s", res.IP, strings.ToUpper(res.Accel),
			progress.Round(res.LeaseAfter), progress.Round(res.SSHAfter))
	} else {
		step.Done("%s already running", res.IP)
	}
	return res.IP, nil
}
