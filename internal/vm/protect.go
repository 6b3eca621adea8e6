package vm

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
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
