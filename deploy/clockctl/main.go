// Command clockctl runs on the target and switches the clock's releases there (package
// release): the deploy on the operator's machine copies it in, sends it a release over SSH
// and reads its one-line JSON result. It is also the holder of the pods' network namespaces
// (`clockctl pause`), in an image it makes of itself.
//
//	clockctl load < image.tar         load an image archive into Docker (docker load)
//	clockctl state [IMAGE_ID...]      the live release, the instances, which images exist (JSON)
//	clockctl deploy < request.json   start, gate and switch to the release (result as JSON)
//	clockctl rollback [VERSION]       back to VERSION, or to the previous release
//	clockctl repair                   start what is missing of the live release (at boot)
//	clockctl releases                 the kept releases, newest first
//	clockctl stop                     drain and remove every container of the clock
//	clockctl pause                    wait for SIGTERM (the pod holder's process)
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/clock-app/clock/internal/release"
)

// healthTimeout bounds the gate of a rollback or repair run without the deploying machine's
// CLOCK_HEALTH_TIMEOUT: by hand, or at boot. The same as that setting's default.
const healthTimeout = time.Minute

// stateDir holds the book, the audit log and the deploy lock; the role creates it.
const stateDir = "/var/lib/clock"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "pause" {
		pause()
		return
	}
	// An operator's Ctrl-C closes the SSH session and with it our stdout and stderr: a switch
	// under way still finishes (or fails its gate and cleans up) instead of dying at its next
	// progress line, half done. Its result is in the book and the audit log either way.
	signal.Ignore(syscall.SIGPIPE, syscall.SIGHUP)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "clockctl: %v\n", err)
		var ge *release.GateError
		if errors.As(err, &ge) {
			os.Exit(release.ExitGate)
		}
		if errors.Is(err, errBusy) {
			os.Exit(release.ExitBusy)
		}
		os.Exit(1)
	}
}

// pause is the whole program of a pod holder: PID 1 of its container, which ignores signals
// it has no handler for, so it waits for SIGTERM or SIGINT explicitly.
func pause() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	<-sigs
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: clockctl load|state|deploy|rollback|repair|releases|stop (see its package comment)")
	}
	cmd, rest := args[0], args[1:]
	docker := &release.Socket{Path: release.DockerSocket}
	if cmd == "load" {
		_, err := docker.Run(ctx, stdin, "load")
		return err
	}
	if cmd == "releases" {
		book, err := release.LoadBook(stateDir)
		if err != nil {
			return err
		}
		book.Print(stdout)
		return nil
	}
	set, err := release.LoadSettings(release.SettingsPath)
	if err != nil {
		return err
	}
	e := &release.Engine{
		Docker: docker, Settings: set, Dir: stateDir, Proc: os.DirFS("/proc"),
		PodTar: selfTar, Now: time.Now, Get: release.HTTPGet,
		Logf: func(format string, a ...any) {
			fmt.Fprintf(stderr, "%s %s\n", time.Now().UTC().Format("15:04:05.0"), fmt.Sprintf(format, a...))
		},
	}
	unlock, err := lockDir(stateDir)
	if err != nil {
		return err
	}
	defer unlock()
	enc := json.NewEncoder(stdout)
	switch cmd {
	case "state":
		st, err := e.State(ctx, rest)
		if err != nil {
			return err
		}
		return enc.Encode(st)
	case "deploy":
		var req release.Request
		if err := json.NewDecoder(io.LimitReader(stdin, 1<<20)).Decode(&req); err != nil {
			return fmt.Errorf("reading the release request on stdin: %w", err)
		}
		res, err := e.Deploy(ctx, req, "deploy")
		if err != nil {
			return err
		}
		return enc.Encode(res)
	case "rollback":
		fs := flag.NewFlagSet("rollback", flag.ContinueOnError)
		by := fs.String("by", "", "user@host of the operator")
		timeout := fs.Duration("health-timeout", healthTimeout, "CLOCK_HEALTH_TIMEOUT")
		keep := fs.Int("keep", 3, "CLOCK_KEEP_RELEASES")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		res, err := e.Rollback(ctx, fs.Arg(0), *by, *timeout, *keep)
		if err != nil {
			return err
		}
		return enc.Encode(res)
	case "repair":
		fs := flag.NewFlagSet("repair", flag.ContinueOnError)
		by := fs.String("by", "boot", "who asked: the unit that runs it at boot, or user@host")
		timeout := fs.Duration("health-timeout", healthTimeout, "CLOCK_HEALTH_TIMEOUT")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		res, err := e.Repair(ctx, *by, *timeout)
		if err != nil {
			return err
		}
		return enc.Encode(res)
	case "stop":
		fs := flag.NewFlagSet("stop", flag.ContinueOnError)
		by := fs.String("by", "", "user@host of the operator")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		n, err := e.Stop(ctx, *by)
		if err != nil {
			return err
		}
		return enc.Encode(map[string]int{"removed": n})
	}
	return fmt.Errorf("unknown command %q: want load, state, deploy, rollback, repair, releases or stop", cmd)
}

var errBusy = errors.New("another clockctl is running on this host")

// lockDir keeps two clockctl runs (one by hand, say) from switching at once; the deploy
// lock in the same folder keeps two operators apart before either gets here.
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, "clockctl.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w (%s is locked)", errBusy, f.Name())
	}
	return func() { f.Close() }, nil
}

// selfTar is a tar of this very binary: the pod image's only file.
func selfTar() (io.Reader, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return release.PodTar(exe)
}
