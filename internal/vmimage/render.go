package vmimage

import (
	"fmt"
	"strings"

	"github.com/clock-app/clock/internal/sshx"
)

// The files below are written into the image by the builder; they are pure functions of
// their inputs so the tests can check them without root.

// renderFstab mounts the root filesystem by UUID: device names differ between libvirt
// (virtio: vda) and other hypervisors.
func renderFstab(rootUUID string) string {
	return fmt.Sprintf("# <file system> <mount point> <type> <options> <dump> <pass>\n"+
		"UUID=%s / ext4 errors=remount-ro 0 1\n", rootUUID)
}

// grubConfig is what renderGrubCfg needs: the root filesystem UUID and the kernel and
// initrd paths relative to that filesystem.
type grubConfig struct {
	RootUUID string
	Kernel   string // e.g. /boot/vmlinuz-6.1.0-28-amd64
	Initrd   string // e.g. /boot/initrd.img-6.1.0-28-amd64
	Timeout  int    // seconds the menu waits
}

// renderGrubCfg writes the grub.cfg that update-grub would (it cannot run without udev).
// GRUB itself talks on the serial port too, and the kernel's last console= is ttyS0 so that
// systemd's boot status lines also reach the serial log that `vm:up` watches.
func renderGrubCfg(c grubConfig) string {
	var b strings.Builder
	fmt.Fprintf(&b, "serial --unit=0 --speed=115200 --word=8 --parity=no --stop=1\n")
	fmt.Fprintf(&b, "terminal_input serial console\n")
	fmt.Fprintf(&b, "terminal_output serial console\n")
	fmt.Fprintf(&b, "set timeout=%d\n", c.Timeout)
	fmt.Fprintf(&b, "set default=0\n")
	fmt.Fprintf(&b, "insmod part_msdos\n")
	fmt.Fprintf(&b, "insmod ext2\n")
	fmt.Fprintf(&b, "search --no-floppy --fs-uuid --set=root %s\n", c.RootUUID)
	fmt.Fprintf(&b, "menuentry 'Debian GNU/Linux' {\n")
	fmt.Fprintf(&b, "\tlinux %s root=UUID=%s ro %s\n", c.Kernel, c.RootUUID, KernelCmdline)
	fmt.Fprintf(&b, "\tinitrd %s\n", c.Initrd)
	fmt.Fprintf(&b, "}\n")
	return b.String()
}

// KernelCmdline is the kernel command line after root=: both consoles, the serial one last
// so it becomes /dev/console.
const KernelCmdline = "console=tty0 console=ttyS0,115200n8"

// defaultGrub keeps the serial console when update-grub runs inside the VM later (e.g. after
// a kernel upgrade there, where udev makes it work).
const defaultGrub = `GRUB_DEFAULT=0
GRUB_TIMEOUT=1
GRUB_DISTRIBUTOR="Debian"
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="` + KernelCmdline + `"
GRUB_TERMINAL="serial console"
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200 --word=8 --parity=no --stop=1"
`

// networkdDHCP matches every wired NIC whatever it is called: enp1s0 under libvirt's fixed
// PCI address, ens3 or eth0 under plain qemu. The DHCP client ID is the MAC, not networkd's
// default DUID (derived from the machine ID, new in every VM): dnsmasq then hands a
// re-created VM with the same MAC the same address instead of a new one.
const networkdDHCP = `[Match]
Name=en* eth*

[Network]
DHCP=ipv4

[DHCPv4]
ClientIdentifier=mac
`

// resolvedConfig turns off systemd-resolved's LLMNR and mDNS responders: they answer on
// TCP/UDP 5355 and UDP 5353 on every interface, and the VM offers nothing but SSH and the
// clock to its network. Unicast DNS through the stub on 127.0.0.53 stays.
const resolvedConfig = `# Written by the clock image builder: no name service for the network.
[Resolve]
LLMNR=no
MulticastDNS=no
`

// sshdConfig is a drop-in read before the defaults in sshd_config (first value wins).
// Only an ed25519 host key: generating RSA keys on first boot costs tens of seconds under
// TCG, and every client the deploy uses (OpenSSH, x/crypto/ssh) speaks ed25519.
const sshdConfig = `# Written by the clock image builder: key-only root login for the deploy.
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UseDNS no
`

// sshHostKeysDropIn replaces the ExecStartPre of Debian's ssh.service: the image ships
// without host keys so that each VM makes its own on first boot, and sshd -t fails without
// them. At every start it prints the public key on the serial console, which vm:up reads
// through libvirt's log: the key it pins comes from the VM itself, not from whatever
// answers at the VM's address ($$ is systemd's escape for a shell's $; the leading - keeps
// sshd starting should the console be missing).
const sshHostKeysDropIn = `[Service]
ExecStartPre=
ExecStartPre=/bin/sh -c 'test -s /etc/ssh/ssh_host_ed25519_key || exec /usr/bin/ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key'
ExecStartPre=-/bin/sh -c 'echo "` + sshx.ConsoleHostKeyMarker + `$$(cat /etc/ssh/ssh_host_ed25519_key.pub)" >/dev/console'
ExecStartPre=/usr/sbin/sshd -t
`

// renderHosts gives the hostname a local address, as the Debian installer does.
func renderHosts(hostname string) string {
	return fmt.Sprintf("127.0.0.1\tlocalhost\n127.0.1.1\t%s\n\n"+
		"::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n", hostname)
}

// sourceLines are the apt sources written into the image (and used by mmdebstrap).
func sourceLines(mirror, securityMirror, suite string) []string {
	mirror = strings.TrimRight(mirror, "/")
	securityMirror = strings.TrimRight(securityMirror, "/")
	return []string{
		fmt.Sprintf("deb %s %s main", mirror, suite),
		fmt.Sprintf("deb %s %s-updates main", mirror, suite),
		fmt.Sprintf("deb %s %s-security main", securityMirror, suite),
	}
}

// symlink is a link the builder creates inside the image (Target is what the link says).
type symlink struct {
	Path, Target string
}

// enableLinks are the symlinks `systemctl enable` would create; systemctl needs a running
// systemd to be reliable in a chroot, links do not.
var enableLinks = []symlink{
	{"/etc/systemd/system/multi-user.target.wants/systemd-networkd.service", "/lib/systemd/system/systemd-networkd.service"},
	{"/etc/systemd/system/sockets.target.wants/systemd-networkd.socket", "/lib/systemd/system/systemd-networkd.socket"},
	{"/etc/systemd/system/multi-user.target.wants/systemd-resolved.service", "/lib/systemd/system/systemd-resolved.service"},
	{"/etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service", "/lib/systemd/system/serial-getty@.service"},
	// systemd-resolved answers on 127.0.0.53 with the DNS server DHCP gave networkd.
	{"/etc/resolv.conf", "../run/systemd/resolve/stub-resolv.conf"},
}
