//go:build mage

// The clock's targets. Each one is a few lines over the packages in internal/, which hold
// the logic and its tests; `mage -l` lists them, `mage config` lists every knob.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/magefile/mage/mg"

	"github.com/clock-app/clock/internal/ansible"
	"github.com/clock-app/clock/internal/bench"
	"github.com/clock-app/clock/internal/config"
	"github.com/clock-app/clock/internal/deploy"
	"github.com/clock-app/clock/internal/fix"
	"github.com/clock-app/clock/internal/gotool"
	"github.com/clock-app/clock/internal/host"
	"github.com/clock-app/clock/internal/images"
	"github.com/clock-app/clock/internal/localvm"
	"github.com/clock-app/clock/internal/vm"
)

// Aliases: `mage test` runs every suite, as the README says.
var Aliases = map[string]any{"test": Test.All}

// Knobs are read once, at the top, and validated before any target starts work.
var (
	cfg    config.Config
	cfgErr error
)

func init() {
	cfg, cfgErr = config.Load()
	termAsInterrupt()
}

// termAsInterrupt makes SIGTERM (a CI timeout, kill, systemd) do what Ctrl-C does: mage
// cancels the targets' context on SIGINT only, and SIGTERM would otherwise end the process
// with no cleanup at all (a mounted image, a VM on probation, a runner container). A
// second one forces the exit, like a second Ctrl-C.
func termAsInterrupt() {
	term := make(chan os.Signal, 2)
	signal.Notify(term, syscall.SIGTERM)
	go func() {
		for range term {
			_ = syscall.Kill(os.Getpid(), syscall.SIGINT)
		}
	}()
}

func knobs() (config.Config, error) {
	if cfgErr != nil {
		// Exit 2 like the services: bad input, not a failed step.
		return cfg, mg.Fatalf(2, "configuration: %v\n(see `%s` for every variable)", cfgErr, fix.Command("config"))
	}
	return cfg, nil
}

func root() string {
	wd, _ := os.Getwd()
	return wd
}

func meta(ctx context.Context) images.Meta {
	m := images.Describe(ctx, root())
	if cfg.Version != "" {
		m.Version = cfg.Version
	}
	return m
}

func deployer(ctx context.Context) (*deploy.Deployer, error) {
	c, err := knobs()
	if err != nil {
		return nil, err
	}
	return &deploy.Deployer{Cfg: c, Root: root(), Out: os.Stdout, Meta: meta(ctx)}, nil
}

// withDeployer runs f on the deployer of the knobs: the preamble of every target below.
func withDeployer(ctx context.Context, f func(*deploy.Deployer) error) error {
	d, err := deployer(ctx)
	if err != nil {
		return err
	}
	return fix.Explain(f(d))
}

// Deploy builds the images, brings the VM up (unless CLOCK_TARGET_HOST is set), runs the playbook when the target needs it, switches to the new release with zero downtime and checks the clock from the host.
func Deploy(ctx context.Context) error {
	mg.CtxDeps(ctx, Setup)
	return withDeployer(ctx, func(d *deploy.Deployer) error { _, err := d.Deploy(ctx); return err })
}

// Stop drains and removes every clock container and network on the target; the VM, the images and the releases stay.
func Stop(ctx context.Context) error {
	return withDeployer(ctx, func(d *deploy.Deployer) error { _, err := d.Stop(ctx); return err })
}

// Rollback makes the previous release (or CLOCK_RELEASE=<version>) live again with the same zero-downtime switch, building nothing.
func Rollback(ctx context.Context) error {
	return withDeployer(ctx, func(d *deploy.Deployer) error { _, err := d.Rollback(ctx); return err })
}

// Releases lists the releases kept on the target: version, config hash, when, by whom, and state (live, previous, failed).
func Releases(ctx context.Context) error {
	return withDeployer(ctx, func(d *deploy.Deployer) error { return d.Releases(ctx) })
}

// Unlock clears a deploy lock on the target that a dead deploy left, after printing its holder.
func Unlock(ctx context.Context) error {
	return withDeployer(ctx, func(d *deploy.Deployer) error { return d.Unlock(ctx) })
}

// Status prints the VM's state and address, the containers' health and versions, and the URL.
func Status(ctx context.Context) error {
	return withDeployer(ctx, func(d *deploy.Deployer) error { return d.Status(ctx) })
}

// Logs prints the last 100 lines of each instance's log.
func Logs(ctx context.Context) error {
	return withDeployer(ctx, func(d *deploy.Deployer) error { return d.Logs(ctx, 100) })
}

// VM groups the targets of the local VM.
type VM mg.Namespace

// Image builds the Debian 12 base image offline with mmdebstrap (cached; skipped with CLOCK_VM_IMAGE).
func (VM) Image(ctx context.Context) error {
	mg.CtxDeps(ctx, Setup)
	c, err := knobs()
	if err != nil {
		return err
	}
	return fix.Explain(localvm.Image(ctx, c, os.Stdout))
}

// Up defines and boots the VM on a qcow2 overlay of the base image (vm:image first), waits for SSH and pins its host key.
func (VM) Up(ctx context.Context) error {
	mg.SerialCtxDeps(ctx, Setup, VM.Image)
	c, err := knobs()
	if err != nil {
		return err
	}
	_, err = localvm.Up(ctx, c, root(), os.Stdout)
	return fix.Explain(err)
}

// Down shuts the VM down (forced off after a bounded wait).
func (VM) Down(ctx context.Context) error {
	return withVM(func(v *vm.VM) error { return v.Down(ctx) })
}

// Destroy stops and undefines the VM and removes its overlay: the next vm:up starts clean.
func (VM) Destroy(ctx context.Context) error {
	return withVM(func(v *vm.VM) error { return v.Destroy(ctx) })
}

// IP prints the VM's address from the DHCP leases.
func (VM) IP(ctx context.Context) error {
	return withVM(func(v *vm.VM) error {
		ip, err := v.IP(ctx)
		if err == nil {
			fmt.Println(ip)
		}
		return err
	})
}

// SSH opens a shell on the VM as root, checking the pinned host key.
func (VM) SSH(ctx context.Context) error {
	return withVM(func(v *vm.VM) error {
		argv, err := v.SSHCommand(ctx)
		if err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		return cmd.Run()
	})
}

// withVM runs f on the local VM of the knobs: the preamble of vm:down, vm:destroy, vm:ip
// and vm:ssh.
func withVM(f func(*vm.VM) error) error {
	c, err := knobs()
	if err != nil {
		return err
	}
	v, err := localvm.Open(c, root(), func(format string, args ...any) { fmt.Printf("    "+format+"\n", args...) })
	if err != nil {
		return err
	}
	return fix.Explain(f(v))
}

// Config prints every CLOCK_* variable with its effective value, default and meaning; a bad value fails with exit code 2.
func Config() error {
	if err := config.Effective(os.Stdout); err != nil {
		return mg.Fatalf(2, "configuration: %v", err)
	}
	fmt.Println()
	return config.Usage(os.Stdout)
}

// Setup installs the missing host tools (Debian packages) and starts dockerd, libvirtd and the default network.
func Setup(ctx context.Context) error { return setup(ctx, false) }

// setup prepares the host for a deploy, and with forTests also for the browser tests and the
// load test.
func setup(ctx context.Context, forTests bool) error {
	c, err := knobs()
	if err != nil {
		return err
	}
	return host.Setup(ctx, os.Stdout, host.Real(c.State().Logs()), host.Options{
		VM: !c.Remote() || forTests, Browser: forTests, Bench: forTests, LibvirtURI: c.LibvirtURI,
	})
}

// Build compiles both services into static binaries under services/*/dist.
func Build(ctx context.Context) error {
	return images.BuildBinaries(ctx, os.Stdout, root(), meta(ctx))
}

// Images builds the clock-api and clock-web images, tagged with the git version and latest.
func Images(ctx context.Context) error {
	mg.CtxDeps(ctx, Setup)
	return images.BuildAll(ctx, os.Stdout, root(), meta(ctx))
}

// Test groups the suites; `mage test` (Test.All) runs them all, each can also run alone.
type Test mg.Namespace

// All runs every check: lint, unit tests, the container tests with a browser, and the VM deploy test.
func (Test) All(ctx context.Context) {
	mg.SerialCtxDeps(ctx, mg.F(setup, true), Test.Lint, Test.Unit, Test.E2e, Test.VM)
}

// Lint fails on gofmt or go vet findings in any module, and on ansible-lint or yamllint findings.
func (Test) Lint(ctx context.Context) error {
	if err := gotool.Lint(ctx, os.Stdout, root()); err != nil {
		return err
	}
	d, err := deployer(ctx)
	if err != nil {
		return err
	}
	image, err := d.RunnerImage(ctx)
	if err != nil {
		return err
	}
	if err := ansible.Lint(ctx, image, filepath.Join(root(), "deploy", "ansible"), os.Stdout); err != nil {
		return err
	}
	fmt.Println("    ansible-lint (production profile) and yamllint: clean")
	return nil
}

// Unit runs the unit tests of every module in go.work but test/e2e: the tooling, both services and their shared code.
func (Test) Unit(ctx context.Context) error {
	mods, err := gotool.Modules(ctx, root())
	if err != nil {
		return err
	}
	for _, mod := range mods {
		if filepath.ToSlash(mod) == "test/e2e" { // needs Docker: test:e2e runs it
			continue
		}
		if err := gotool.Go(ctx, os.Stdout, root(), mod, nil, "test", "-count=1", "./..."); err != nil {
			return err
		}
	}
	return nil
}

// E2e runs the integration tier (build tag integration): both images from their Dockerfiles with testcontainers-go, together and in a browser; the release switch and its Engine API client on this machine's Docker; the runner image; the image builder's leftover sweep.
func (Test) E2e(ctx context.Context) error {
	mg.CtxDeps(ctx, Build)
	if err := gotool.Go(ctx, os.Stdout, root(), "test/e2e", testcontainersEnv(), "test", "-count=1", "-timeout=20m", "./..."); err != nil {
		return err
	}
	// -p 1: the packages share this machine's Docker, and test/release's pods have the fixed
	// names a deploy uses.
	return gotool.Go(ctx, os.Stdout, root(), ".", nil, "test", "-tags", "integration", "-p", "1", "-count=1", "-v", "-timeout=10m", "./test/release", "./internal/release", "./internal/vmimage", "./internal/ansible")
}

// testcontainersEnv holds the two settings this kind of machine needs (see
// ../shared/ENVIRONMENT.md), unless the user chose otherwise: no Ryuk (its image cannot be
// pulled without a registry; the suite removes its containers itself) and localhost as the
// Docker host when the daemon is local.
func testcontainersEnv() []string {
	var env []string
	if os.Getenv("TESTCONTAINERS_RYUK_DISABLED") == "" {
		env = append(env, "TESTCONTAINERS_RYUK_DISABLED=true")
	}
	if os.Getenv("TESTCONTAINERS_HOST_OVERRIDE") == "" && os.Getenv("DOCKER_HOST") == "" {
		env = append(env, "TESTCONTAINERS_HOST_OVERRIDE=localhost")
	}
	return env
}

// Bench load-tests each service on loopback beside its yardstick (net/http, nginx, nginx -> clock-api, nginx -> uvicorn) and checks CPU per request, req/s and RSS.
func Bench(ctx context.Context) error {
	mg.SerialCtxDeps(ctx, mg.F(setup, true), Build)
	// Five rounds of 4 s per target, each beside its yardstick: the checks take the
	// median of the five paired ratios, about 3 minutes in all.
	rep, err := bench.Run(ctx, bench.Options{Root: root(), Rounds: 5, Duration: 4 * time.Second}, os.Stdout)
	if err != nil {
		return fix.Explain(err)
	}
	if failed := rep.Failed(); len(failed) > 0 {
		return fmt.Errorf("bench: %d of %d checks failed (see above)", len(failed), len(rep.Checks))
	}
	return nil
}

// VM deploys into a fresh local VM under TCG, then releases, rollback, kills and a reboot with a poller counting failed requests, stops and destroys it; then deploys to a bare Debian.
func (Test) VM(ctx context.Context) error {
	mg.CtxDeps(ctx, mg.F(setup, true))
	return gotool.Go(ctx, os.Stdout, root(), "test/vm", nil, "test", "-tags", "vmtest", "-count=1", "-v", "-timeout=70m", ".")
}
