//go:build integration

package vmimage

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSweepReleasesARealLeftover makes what an mmdebstrap killed mid-install leaves (the
// image's root mounted on a loop device with proc, sys, dev/pts and dev/shm below it, the
// .building file beside it) and checks that the next build's sweep releases all of it.
// It mounts and attaches loop devices, so it is in the integration tier (go run mage.go
// test:e2e), which runs as root.
func TestSweepReleasesARealLeftover(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test mounts filesystems and attaches a loop device: run the integration tier as root (go run mage.go test:e2e, as .ci/run does)")
	}
	ctx := context.Background()
	image := filepath.Join(t.TempDir(), "debian12.img")
	if err := createDisk(ctx, buildingPath(image), 64<<20); err != nil {
		t.Fatal(err)
	}
	disk, err := attachLoop(ctx, buildingPath(image))
	if err != nil {
		t.Fatal(err)
	}
	swept := false
	// Once swept, the device number may already be another build's: never detach it then.
	t.Cleanup(func() {
		if !swept {
			_ = disk.detach()
		}
	})
	if err := run(ctx, nil, "mkfs.ext4", "-q", "-F", disk.part); err != nil {
		t.Fatal(err)
	}
	mnt, err := mountAt(ctx, disk.part, workDir(image))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mnt.unmount() })
	for _, m := range [][]string{
		{"-t", "proc", "proc", "proc"},
		{"-t", "sysfs", "sysfs", "sys"},
		{"-t", "devpts", "devpts", "dev/pts"},
		{"-t", "tmpfs", "tmpfs", "dev/shm"},
	} {
		target := filepath.Join(mnt.dir, m[3])
		if err := os.MkdirAll(target, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := run(ctx, nil, "mount", m[0], m[1], m[2], target); err != nil {
			t.Fatal(err)
		}
	}

	l, err := readLeftovers(ctx, image)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Mounts) != 5 || len(l.Loops) != 1 || l.Loops[0] != disk.dev || len(l.Files) != 1 {
		t.Fatalf("readLeftovers = %+v, want 5 mounts, %s and the .building file", l, disk.dev)
	}
	var log []string
	if err := sweep(ctx, Options{Output: image, Logf: func(f string, a ...any) { log = append(log, f) }}); err != nil {
		t.Fatalf("sweep: %v", err)
	}
	swept = true
	after, err := readLeftovers(ctx, image)
	if err != nil {
		t.Fatal(err)
	}
	if !after.empty() {
		t.Errorf("after the sweep: %+v, want nothing left", after)
	}
	if out, _ := exec.Command("losetup", "--list", "--noheadings", "--output", "NAME").Output(); strings.Contains(string(out), disk.dev+"\n") {
		t.Errorf("%s is still attached", disk.dev)
	}
	if len(log) == 0 {
		t.Error("the sweep said nothing about what it released")
	}
}
