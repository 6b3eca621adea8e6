package deploy

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/clock-app/clock/internal/fix"
	"github.com/clock-app/clock/internal/localvm"
	"github.com/clock-app/clock/internal/verify"
	"github.com/clock-app/clock/internal/vm"
)

// status and logs: what the target runs and says, read only.

// Status prints the VM's state and address, the containers' health and image versions, and
// the URL with what /clock says now.
func (d *Deployer) Status(ctx context.Context) error {
	w := d.out()
	if !d.Cfg.Remote() {
		v, err := localvm.Open(d.Cfg, d.Root, nil)
		if err != nil {
			return err
		}
		state, err := v.State(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "vm:         %s (%s)\n", d.Cfg.VMName, state)
		if state != vm.StateRunning {
			return nil
		}
	}
	t, err := d.existingTarget(ctx)
	if err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(t.Addr)
	fmt.Fprintf(w, "address:    %s\n", host)
	c := &conn{t: t} // one handshake for the commands below, not one each
	defer c.Close()
	ps, err := c.Run(ctx, sudo(t, `docker ps --all --filter name=^clock- --format '{{.Names}}\t{{.Image}}\t{{.Status}}'`))
	if err != nil {
		return err
	}
	out := strings.TrimSpace(string(ps))
	if out == "" {
		out = "(none: run " + fix.Command("deploy") + ")"
	}
	fmt.Fprintf(w, "containers:\n    %s\n", strings.ReplaceAll(out, "\n", "\n    "))
	if rel, err := c.Run(ctx, sudo(t, clockctlPath+" releases")); err == nil {
		fmt.Fprintf(w, "releases:\n    %s\n", strings.ReplaceAll(strings.TrimSpace(string(rel)), "\n", "\n    "))
	}
	base := "http://" + net.JoinHostPort(host, strconv.Itoa(d.Cfg.HTTPPort))
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if r, err := verify.Clock(ctx, nil, base, 5*time.Second); err != nil {
		fmt.Fprintf(w, "url:        %s/ (not serving: %v)\n", base, err)
	} else {
		fmt.Fprintf(w, "url:        %s (/clock %.3f)\n", r.URL, r.Clock)
	}
	return nil
}

// Logs prints the last lines of each instance's log.
func (d *Deployer) Logs(ctx context.Context, lines int) error {
	t, err := d.existingTarget(ctx)
	if err != nil {
		return err
	}
	c := &conn{t: t} // one handshake for every instance, not one each
	defer c.Close()
	ps, err := c.Run(ctx, sudo(t, "docker ps --all --filter label=clock.role=instance --format '{{.Names}}'"))
	if err != nil {
		return err
	}
	names := strings.Fields(string(ps))
	if len(names) == 0 {
		fmt.Fprintln(d.out(), "no clock instances on the target: "+fix.Command("deploy"))
	}
	for _, name := range names {
		log, err := c.Run(ctx, sudo(t, fmt.Sprintf("docker logs --tail %d %s 2>&1", lines, name)))
		fmt.Fprintf(d.out(), "==> %s\n%s", name, log)
		if err != nil {
			return err
		}
	}
	return nil
}
