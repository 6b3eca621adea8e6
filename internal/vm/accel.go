package vm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/clock-app/clock/internal/fsx"
)

// Why probe at all: on a nested-virtualisation host /dev/kvm exists and a KVM domain starts,
// then sits in the firmware or GRUB for minutes. The kernel's first console line is the
// cheapest reliable sign that the guest really runs.

// lifeSign is the first line the guest kernel prints on the serial console.
const lifeSign = "Linux version"

// consoleShowsLife reports whether a serial console log shows the guest kernel running.
func consoleShowsLife(log []byte) bool { return bytes.Contains(log, []byte(lifeSign)) }

// waitForLife polls the console log until it shows the kernel or limit passes.
func waitForLife(ctx context.Context, path string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		if data, err := os.ReadFile(path); err == nil && consoleShowsLife(data) {
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("no %q on the serial console (%s) within %s", lifeSign, path, limit)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// probeRecord is the remembered outcome of starting a guest under KVM on this host
// (<state>/vm/accel-probe.json). It is tied to the host kernel: a new kernel is probed again.
type probeRecord struct {
	KVMBoots   bool   `json:"kvm_boots"`
	Reason     string `json:"reason"`
	HostKernel string `json:"host_kernel"`
	CheckedAt  string `json:"checked_at"`
}

func readProbe(path string) (*probeRecord, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r probeRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, nil // unreadable: probe again
	}
	return &r, nil
}

func writeProbe(path string, r probeRecord) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return fsx.WriteFileAtomic(path, append(data, '\n'), 0o644)
}

// accelPlan is how to start the domain.
type accelPlan struct {
	Accel    string // kvm or tcg: the domain type to start with
	Verify   bool   // under KVM: wait for the kernel on the console before trusting it
	Fallback bool   // when Verify fails: restart under TCG instead of failing
	Why      string // for the progress line
}

// planAccel decides the acceleration. kvmErr says why /dev/kvm cannot be used (nil: it
// can); rec is the remembered probe (nil: none); hostKernel is the running kernel release.
func planAccel(mode string, kvmErr error, rec *probeRecord, hostKernel, probePath string) (accelPlan, error) {
	switch mode {
	case AccelTCG:
		return accelPlan{Accel: AccelTCG, Why: "TCG as configured"}, nil
	case AccelKVM:
		if kvmErr != nil {
			return accelPlan{}, fmt.Errorf("acceleration kvm was asked for but %v: use CLOCK_VM_ACCEL=auto or tcg", kvmErr)
		}
		return accelPlan{Accel: AccelKVM, Verify: true, Why: "KVM as configured"}, nil
	case AccelAuto:
	default:
		return accelPlan{}, fmt.Errorf("acceleration %q: use auto, kvm or tcg", mode)
	}
	if kvmErr != nil {
		return accelPlan{Accel: AccelTCG, Why: fmt.Sprintf("TCG: %v", kvmErr)}, nil
	}
	if rec != nil && rec.HostKernel == hostKernel {
		if !rec.KVMBoots {
			return accelPlan{Accel: AccelTCG, Why: fmt.Sprintf("TCG: KVM did not boot a guest here when probed at %s (%s); delete %s to probe again",
				rec.CheckedAt, rec.Reason, probePath)}, nil
		}
		return accelPlan{Accel: AccelKVM, Verify: true, Fallback: true, Why: "KVM (probed before: it boots guests here)"}, nil
	}
	return accelPlan{Accel: AccelKVM, Verify: true, Fallback: true, Why: "KVM on probation: falling back to TCG unless the guest kernel shows up on the console"}, nil
}

// kvmUsable reports why /dev/kvm cannot be used, or nil.
func kvmUsable() error {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return errors.New("/dev/kvm does not exist (no hardware virtualisation, or the kvm module is not loaded)")
	}
	if err != nil {
		return fmt.Errorf("/dev/kvm cannot be opened: %v", err)
	}
	f.Close()
	return nil
}

// hostKernel returns the running kernel's release.
func hostKernel() string {
	data, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(data))
}
