package deploy

import (
	"context"
	"path/filepath"
	"strings"

	"github.com/clock-app/clock/internal/progress"
	"github.com/clock-app/clock/internal/sshx"
	"github.com/clock-app/clock/internal/vm"
	"github.com/clock-app/clock/internal/vmimage"
)

// The VM layer for this configuration: the deploy key, the base image, vm:image and vm:up.

// keyPath is the deploy key: the user's for their own image or host, else the generated one.
func (d *Deployer) keyPath() string {
	switch {
	case d.Cfg.Remote():
		return d.Cfg.TargetKey
	case d.Cfg.VMKey != "":
		return d.Cfg.VMKey
	}
	return d.Cfg.State().Key()
}

// key loads the deploy key, generating ours when the user gave none.
func (d *Deployer) key() (*sshx.Key, error) {
	if d.Cfg.Remote() || d.Cfg.VMKey != "" {
		return sshx.LoadKey(d.keyPath())
	}
	return sshx.EnsureKey(d.Cfg.State().Key())
}

// baseImage is the VM's base disk: the user's, or the one vm:image builds for the suite.
func (d *Deployer) baseImage() string {
	if d.Cfg.VMImage != "" {
		return d.Cfg.VMImage
	}
	return d.Cfg.State().BaseImage(d.Cfg.VMSuite)
}

// VM returns the VM layer for this configuration; logf gets its progress lines.
func (d *Deployer) VM(logf func(string, ...any)) (*vm.VM, error) {
	return vm.New(vm.Config{
		Name:        d.Cfg.VMName,
		MemoryMiB:   d.Cfg.VMMemoryMiB,
		VCPUs:       d.Cfg.VMVCPUs,
		Accel:       d.Cfg.VMAccel,
		MAC:         d.Cfg.VMMAC,
		URI:         d.Cfg.LibvirtURI,
		StateDir:    d.Cfg.State().Root(),
		BaseImage:   d.baseImage(),
		KeyPath:     d.keyPath(),
		User:        d.Cfg.VMUser,
		Template:    filepath.Join(d.Root, "deploy", "libvirt", "domain.xml.tmpl"),
		BootTimeout: d.Cfg.VMBoot,
		Logf:        logf,
	})
}

// Image builds the Debian base image unless the user brings their own or it is up to date.
func (d *Deployer) Image(ctx context.Context) error {
	step := progress.Start(d.out(), "vm:image")
	if d.Cfg.VMImage != "" {
		step.Done("using your image %s", d.Cfg.VMImage)
		return nil
	}
	key, err := d.key()
	if err != nil {
		return step.Fail(err)
	}
	built, err := vmimage.Build(ctx, vmimage.Options{
		Output:    d.baseImage(),
		PublicKey: key.AuthorizedKey,
		Suite:     d.Cfg.VMSuite,
		Logf:      step.Logf,
	})
	if err != nil {
		return step.Fail(err)
	}
	if built {
		step.Done("built %s", d.baseImage())
	} else {
		step.Done("%s is up to date", d.baseImage())
	}
	return nil
}

// Up makes sure the VM runs and answers SSH, and returns its address.
func (d *Deployer) Up(ctx context.Context) (string, error) {
	if err := d.Image(ctx); err != nil {
		return "", err
	}
	step := progress.Start(d.out(), "vm:up "+d.Cfg.VMName)
	if err := vm.ReachableByQEMU(d.Cfg.LibvirtURI, d.Cfg.State().Root()); err != nil {
		return "", step.Fail(err)
	}
	v, err := d.VM(step.Logf)
	if err != nil {
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
