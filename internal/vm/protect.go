package vm

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
)

// qemuUser is the user libvirt's system instance runs QEMU as on Debian.
const qemuUser = "libvirt-qemu"

// protectVMFile makes a file of the VM (its disk, its console log) unreadable by other
// local users: the disk holds the guest's SSH host key and whatever is deployed. QEMU
// still needs the disk: libvirt's dynamic ownership hands it to libvirt-qemu while the VM
// runs, and the group keeps it usable where that is turned off.
func protectVMFile(path string) error { return protectFile(path, qemuGroup()) }

// protectFile sets path to 0660 with group gid, or 0600 when gid < 0.
func protectFile(path string, gid int) error {
	mode := os.FileMode(0o600)
	if gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			return fmt.Errorf("give %s to libvirt's QEMU group: %w", path, err)
		}
		mode = 0o660
	}
	if err := os.Chmod(path, mode); err != nil {
		return fmt.Errorf("make %s private: %w", path, err)
	}
	return nil
}

// qemuGroup is the primary group of libvirt's QEMU user when mage may hand files to it
// (as root), else -1: a user's own session QEMU runs as that user.
func qemuGroup() int {
	if os.Geteuid() != 0 {
		return -1
	}
	u, err := user.Lookup(qemuUser)
	if err != nil {
		return -1
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return -1
	}
	return gid
}

// ReachableByQEMU makes the state folder's vm/ reachable for libvirt's qemu, which runs as
// its own user (libvirt-qemu on Debian) under a system URI: the folders are made 0755 (ssh/
// keeps its 0700), and a private folder above them is an error naming the fix, not a VM that
// fails to start.
func ReachableByQEMU(uri, stateDir string) error {
	if !strings.HasSuffix(uri, "/system") {
		return nil // a session URI runs qemu as the user itself
	}
	vmDir := filepath.Join(stateDir, "vm")
	if err := os.MkdirAll(vmDir, 0o755); err != nil {
		return err
	}
	for _, dir := range []string{stateDir, vmDir} {
		if err := os.Chmod(dir, 0o755); err != nil {
			return err
		}
	}
	return traversable(filepath.Dir(stateDir))
}

// traversable fails when dir or a folder above it denies other users passage (o+x): the
// libvirt-qemu user could not open the VM's disk below it.
func traversable(dir string) error {
	for ; ; dir = filepath.Dir(dir) {
		st, err := os.Stat(dir)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("libvirt's qemu runs as its own user and cannot reach the VM disks: %s is mode %04o; "+
				"run `chmod o+x %s`, or set CLOCK_STATE_DIR to a folder others can traverse (e.g. /var/lib/clock)",
				dir, st.Mode().Perm(), dir)
		}
		if dir == filepath.Dir(dir) {
			return nil
		}
	}
}
