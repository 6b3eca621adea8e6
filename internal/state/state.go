// Package state is the layout of the state folder (.state/, or CLOCK_STATE_DIR): each path
// in it is a method of Dir, the one place that spells it, and the table in docs/DESIGN.md
// lists them. Packages receive their paths from a Dir (or from a path one gave them) and
// never join names onto the folder themselves.
package state

import "path/filepath"

// Dir is the state folder, absolute so that containers can mount it.
type Dir string

// New is the state folder at dir, made absolute.
func New(dir string) Dir {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return Dir(dir)
}

func (d Dir) join(elem ...string) string {
	return filepath.Join(append([]string{string(d)}, elem...)...)
}

// Root is the folder itself.
func (d Dir) Root() string { return string(d) }

// SSH holds the generated deploy key and the pinned host keys (mode 0700).
func (d Dir) SSH() string { return d.join("ssh") }

// Key is the generated deploy key (ed25519); its public half is Key() + ".pub".
func (d Dir) Key() string { return d.join("ssh", KeyName) }

// KeyName is the deploy key's file name in SSH().
const KeyName = "id_ed25519"

// KnownHosts is where vm:up and a first deploy to a given host pin host keys.
func (d Dir) KnownHosts() string { return d.join("ssh", "known_hosts") }

// VM holds the base images and each VM's files.
func (d Dir) VM() string { return d.join("vm") }

// BaseImage is the base image vm:image builds for a Debian suite: vm/debian12.img.
func (d Dir) BaseImage(suite string) string { return d.join("vm", debian(suite)+".img") }

// MinimalImage is the image of a bare Debian host (openssh-server and python3 only), which
// the VM test deploys to: vm/debian12-minimal.img.
func (d Dir) MinimalImage(suite string) string { return d.join("vm", debian(suite)+"-minimal.img") }

// debian names a suite's images by its release number.
func debian(suite string) string {
	if n, ok := map[string]string{"bookworm": "12", "bullseye": "11"}[suite]; ok {
		return "debian" + n
	}
	return "debian-" + suite
}

// Overlay is the qcow2 overlay of VM name on its base image.
func (d Dir) Overlay(name string) string { return d.join("vm", name+".qcow2") }

// ConsoleLog is VM name's serial console.
func (d Dir) ConsoleLog(name string) string { return d.join("vm", name+".console.log") }

// DomainXML is VM name's rendered libvirt domain.
func (d Dir) DomainXML(name string) string { return d.join("vm", name+".xml") }

// Unpinned marks VM name's overlay as new, its host key not pinned yet.
func (d Dir) Unpinned(name string) string { return d.join("vm", name+".unpinned") }

// AccelProbe caches whether KVM can boot a guest here.
func (d Dir) AccelProbe() string { return d.join("vm", "accel-probe.json") }

// Images holds what the deploy ships: the services' docker save archives and clockctl.
func (d Dir) Images() string { return d.join("images") }

// Image is the file name in Images(): an archive (clock-api.tar) or clockctl.
func (d Dir) Image(name string) string { return d.join("images", name) }

// Inventory is the generated Ansible inventory.
func (d Dir) Inventory() string { return d.join("ansible", "inventory.yml") }

// DeployLock is this machine's deploy lock.
func (d Dir) DeployLock() string { return d.join("deploy.lock") }

// Logs holds the logs of setup's package installs and daemons.
func (d Dir) Logs() string { return d.join("logs") }
