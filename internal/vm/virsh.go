package vm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"
)

// virshFunc runs `virsh --connect URI args...` and returns its stdout; the error carries
// stderr. Tests replace it.
type virshFunc func(ctx context.Context, args ...string) (string, error)

// execVirsh is the real virshFunc for uri.
func execVirsh(uri string) virshFunc {
	return func(ctx context.Context, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "virsh", append([]string{"--connect", uri}, args...)...)
		// Column headers and dates are parsed: keep them unlocalized.
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.WaitDelay = 5 * time.Second
		if err := cmd.Run(); err != nil {
			if errors.Is(err, exec.ErrNotFound) {
				return "", errors.New("virsh not found: install libvirt-clients (apt-get install -y libvirt-clients)")
			}
			return stdout.String(), &virshError{args: args, err: err, stderr: strings.TrimSpace(stderr.String())}
		}
		return stdout.String(), nil
	}
}

// virshError is a failed virsh command with its stderr.
type virshError struct {
	args   []string
	err    error
	stderr string
}

func (e *virshError) Error() string {
	return fmt.Sprintf("virsh %s: %v: %s", strings.Join(e.args, " "), e.err, e.stderr)
}

func (e *virshError) Unwrap() error { return e.err }

// stderrContains reports whether err is a virsh failure whose stderr mentions any of subs.
func stderrContains(err error, subs ...string) bool {
	var ve *virshError
	if !errors.As(err, &ve) {
		return false
	}
	for _, s := range subs {
		if strings.Contains(ve.stderr, s) {
			return true
		}
	}
	return false
}

// isNoDomain reports whether err says the domain does not exist.
func isNoDomain(err error) bool {
	return stderrContains(err, "failed to get domain", "Domain not found", "domain not found")
}

// Domain states as `virsh domstate` prints them, plus StateUndefined.
const (
	StateUndefined = "undefined"
	StateRunning   = "running"
	StateShutOff   = "shut off"
	StatePaused    = "paused"
)

// Lease is one DHCP lease of a libvirt network.
type Lease struct {
	Expiry   time.Time
	MAC      string
	Protocol string // ipv4 or ipv6
	IP       net.IP
	Hostname string
}

// parseLeases reads `virsh net-dhcp-leases NETWORK` output: a header, a line of dashes, then
// one lease per line (expiry date and time, MAC, protocol, address/prefix, hostname,
// client ID). Dates are in loc (virsh prints local time).
func parseLeases(out string, loc *time.Location) ([]Lease, error) {
	var leases []Lease
	sc := bufio.NewScanner(strings.NewReader(out))
	inBody := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !inBody {
			inBody = strings.HasPrefix(line, "---")
			continue
		}
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 5 {
			return nil, fmt.Errorf("unexpected lease line %q", line)
		}
		expiry, err := time.ParseInLocation("2006-01-02 15:04:05", f[0]+" "+f[1], loc)
		if err != nil {
			return nil, fmt.Errorf("lease line %q: %w", line, err)
		}
		ip, _, err := net.ParseCIDR(f[4])
		if err != nil {
			return nil, fmt.Errorf("lease line %q: %w", line, err)
		}
		l := Lease{Expiry: expiry, MAC: strings.ToLower(f[2]), Protocol: f[3], IP: ip}
		if len(f) > 5 && f[5] != "-" {
			l.Hostname = f[5]
		}
		leases = append(leases, l)
	}
	return leases, sc.Err()
}

// currentLease picks the IPv4 lease of mac that expires last among those not expired at
// now; ok is false when there is none.
func currentLease(leases []Lease, mac string, now time.Time) (Lease, bool) {
	var match []Lease
	for _, l := range leases {
		if strings.EqualFold(l.MAC, mac) && l.Protocol == "ipv4" && l.Expiry.After(now) {
			match = append(match, l)
		}
	}
	if len(match) == 0 {
		return Lease{}, false
	}
	sort.Slice(match, func(i, j int) bool { return match[i].Expiry.After(match[j].Expiry) })
	return match[0], true
}

// parseDomIfAddr reads `virsh domifaddr --source lease DOMAIN` output and returns the IPv4
// address of mac.
func parseDomIfAddr(out, mac string) (net.IP, bool) {
	sc := bufio.NewScanner(strings.NewReader(out))
	inBody := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !inBody {
			inBody = strings.HasPrefix(line, "---")
			continue
		}
		f := strings.Fields(line)
		// "vnet0 52:54:00:c0:e9:b1 ipv4 192.168.122.188/24"; continuation lines of an
		// interface with several addresses start with "-".
		if len(f) < 4 || !strings.EqualFold(f[1], mac) || f[2] != "ipv4" {
			continue
		}
		if ip, _, err := net.ParseCIDR(f[3]); err == nil {
			return ip, true
		}
	}
	return nil, false
}

// parseNetInfo reads `virsh net-info NAME` and reports whether the network is active.
func parseNetInfo(out string) (active bool, ok bool) {
	for _, line := range strings.Split(out, "\n") {
		k, v, found := strings.Cut(line, ":")
		if found && strings.TrimSpace(k) == "Active" {
			return strings.TrimSpace(v) == "yes", true
		}
	}
	return false, false
}
