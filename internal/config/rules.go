package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// The rules below are the knobs' value checks, one function per kind of value, so that
// the packages that take these values from elsewhere (tests, other callers) can apply the
// same rule.

// NormalizeMAC returns mac as six lower-case hex pairs separated by colons. It accepts
// either case and '-' or ':' separators, and refuses anything but a unicast 6-byte MAC:
// a multicast NIC address gets no DHCP lease, and dnsmasq's leases are matched by the
// colon form.
func NormalizeMAC(mac string) (string, error) {
	if !macRE.MatchString(mac) {
		return "", errors.New("must be six hex pairs separated by ':' or '-', such as 52:54:00:c0:e9:b1")
	}
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 {
		return "", errors.New("must be six hex pairs separated by ':' or '-', such as 52:54:00:c0:e9:b1")
	}
	if hw[0]&1 == 1 {
		return "", errors.New("is a multicast address (odd first byte): use a unicast MAC such as 52:54:00:c0:e9:b1")
	}
	if strings.Trim(hw.String(), "0:") == "" {
		return "", errors.New("is the all-zero address: use a MAC such as 52:54:00:c0:e9:b1")
	}
	return hw.String(), nil
}

// macRE is the two spellings NormalizeMAC takes; net.ParseMAC alone would also take the
// dotted Cisco form and 8- or 20-byte addresses.
var macRE = regexp.MustCompile(`^[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){4}$`)

// userRE is the POSIX portable user name (letters, digits, '.', '_', '-', not starting
// with '-'), cut at 32 characters as useradd does; a leading '.' or digit is refused too,
// since shadow-utils refuses them by default.
var userRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9._-]{0,31}$`)

// CheckUser reports why name cannot be a login name on the target.
func CheckUser(name string) error {
	if !userRE.MatchString(name) {
		return errors.New("must be a POSIX user name: a letter or '_', then up to 31 letters, digits, '.', '_' or '-'")
	}
	return nil
}

// hostLabelRE is one RFC 1123 label.
var hostLabelRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

// CheckHost reports why host is neither an IP literal nor an RFC 1123 host name. Brackets,
// ports, users and zones are refused: they have variables of their own or no use here.
func CheckHost(host string) error {
	const want = "must be an IP address or a host name (letters, digits and '-' in dot-separated labels; user and port have their own variables)"
	if net.ParseIP(host) != nil {
		return nil
	}
	if host == "" || len(host) > 253 {
		return errors.New(want)
	}
	labels := strings.Split(host, ".")
	for _, l := range labels {
		if !hostLabelRE.MatchString(l) {
			return errors.New(want)
		}
	}
	// 10.0.0.256 is a typo of an address, not a name: an all-digit last label is no TLD.
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return errors.New("looks like an IPv4 address but is not one: " + want)
	}
	return nil
}

// libvirtTransports are the transports of a qemu URI that only connect to a daemon. The
// ext transport runs a program named in the URI, so it is refused.
var libvirtTransports = map[string]bool{"": true, "unix": true, "ssh": true, "libssh": true, "libssh2": true, "tcp": true, "tls": true}

// CheckLibvirtURI parses uri as a libvirt connection URI for the QEMU driver and refuses
// what would run a program (the ext transport, a command= parameter) or is no QEMU
// connection at all.
func CheckLibvirtURI(uri string) error {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme == "" || u.Opaque != "" {
		return errors.New("must be a libvirt URI such as qemu:///system")
	}
	driver, transport, _ := strings.Cut(u.Scheme, "+")
	if driver != "qemu" {
		return fmt.Errorf("driver %q: the VM needs the QEMU driver (qemu:///system, qemu:///session or qemu+ssh://host/system)", driver)
	}
	if transport == "ext" {
		return errors.New("the ext transport runs an external program: use qemu:///system, or qemu+ssh:// for a remote host")
	}
	if !libvirtTransports[transport] {
		return fmt.Errorf("transport %q is not a libvirt transport (unix, ssh, libssh, libssh2, tcp, tls)", transport)
	}
	if u.Path != "/system" && u.Path != "/session" {
		return fmt.Errorf("path %q: a QEMU URI ends in /system or /session", u.Path)
	}
	for k := range u.Query() {
		if strings.EqualFold(k, "command") {
			return errors.New("a command= parameter runs a program: drop it")
		}
	}
	return nil
}

// CheckMountPath reports why path cannot be the source of a docker --mount (a spec of
// comma-separated key=value fields): ',' or '=' would be read as a field or a value
// boundary, a newline or other control character would break the command line.
func CheckMountPath(path string) error {
	if strings.ContainsAny(path, ",=") || strings.IndexFunc(path, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return errors.New("contains ',', '=' or a control character, which would break the container's --mount: use a folder without them")
	}
	return nil
}

// domainNameRE is what libvirt and the file names below the state folder accept.
var domainNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// CheckDomainName reports why name cannot be the VM's libvirt domain name.
func CheckDomainName(name string) error {
	if !domainNameRE.MatchString(name) {
		return errors.New("must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	return nil
}

// CheckDuration reports why d is outside [floor, ceiling].
func CheckDuration(d, floor, ceiling time.Duration) error {
	if d < floor || d > ceiling {
		return fmt.Errorf("must be between %s and %s", floor, ceiling)
	}
	return nil
}

// decimalRE is a number as people write one: no sign, no base prefix, no leading zero.
// strconv's base 0, which envconfig uses, would read 010 as 8 and 0x50 as 80.
var decimalRE = regexp.MustCompile(`^(0|[1-9][0-9]{0,9})$`)

// CheckDecimal reports why s is not a plain decimal number.
func CheckDecimal(s string) error {
	if !decimalRE.MatchString(s) {
		return errors.New("must be a decimal number without sign or leading zeros")
	}
	return nil
}
