package config

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

func TestNormalizeMAC(t *testing.T) {
	tests := []struct {
		in, want string // want "" means refused
	}{
		{"52:54:00:c0:e9:b1", "52:54:00:c0:e9:b1"},
		{"52:54:00:C0:E9:B1", "52:54:00:c0:e9:b1"},
		{"52-54-00-C0-E9-B1", "52:54:00:c0:e9:b1"},
		{"02:00:00:00:00:01", "02:00:00:00:00:01"},
		{"00:16:3e:00:00:01", "00:16:3e:00:00:01"}, // a vendor (Xen) prefix is unicast too
		{"01:00:5e:00:00:01", ""},                  // multicast
		{"ff:ff:ff:ff:ff:ff", ""},                  // broadcast
		{"00:00:00:00:00:00", ""},
		{"5254.00c0.e9b1", ""}, // the dotted form
		{"52:54:00:c0:e9", ""},
		{"52:54:00:c0:e9:b1:00:01", ""}, // EUI-64
		{"52:54:00:zz:e9:b1", ""},
		{"52:54:00:c0:e9:b1 ", ""},
		{"", ""},
	}
	for _, tt := range tests {
		got, err := NormalizeMAC(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("NormalizeMAC(%q) = %q, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("NormalizeMAC(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestCheckUser(t *testing.T) {
	for _, ok := range []string{"root", "debian", "deploy_bot", "_svc", "a.b-c", "A", strings.Repeat("u", 32)} {
		if err := CheckUser(ok); err != nil {
			t.Errorf("CheckUser(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "-oProxyCommand=x", "root@host", "ro ot", "1abc", ".hidden", "r/oot", "root\n", "ü", strings.Repeat("u", 33), "$(id)"} {
		if err := CheckUser(bad); err == nil {
			t.Errorf("CheckUser(%q) = nil, want an error", bad)
		}
	}
}

func TestCheckHost(t *testing.T) {
	for _, ok := range []string{"10.0.0.5", "192.0.2.10", "::1", "2001:db8::1", "vm", "clock-vm.example.org", "a1.b2", "xn--bcher-kva.example"} {
		if err := CheckHost(ok); err != nil {
			t.Errorf("CheckHost(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "root@h", "h:22", "[::1]", "-oProxyCommand=x", "a..b", "a.", ".a", "-a.b", "a-.b", "a_b", "a b", "h/x",
		"10.0.0.256", "1.2.3", strings.Repeat("a", 64) + ".org", "fe80::1%eth0", "host\n"} {
		if err := CheckHost(bad); err == nil {
			t.Errorf("CheckHost(%q) = nil, want an error", bad)
		}
	}
}

func TestCheckLibvirtURI(t *testing.T) {
	for _, ok := range []string{"qemu:///system", "qemu:///session", "qemu+ssh://root@h/system", "qemu+unix:///system?socket=/run/libvirt/libvirt-sock", "qemu+tls://h/system"} {
		if err := CheckLibvirtURI(ok); err != nil {
			t.Errorf("CheckLibvirtURI(%q) = %v, want nil", ok, err)
		}
	}
	tests := []struct{ uri, want string }{
		{"qemu+ext:///system?command=/bin/evil", "ext transport"},
		{"qemu+unix:///system?command=/bin/evil", "command="},
		{"qemu+ssh://h/system?Command=/bin/evil", "command="},
		{"xen:///system", "QEMU driver"},
		{"qemu+foo:///system", "not a libvirt transport"},
		{"qemu:///", "/system or /session"},
		{"qemu", "libvirt URI"},
		{"qemu:system", "libvirt URI"},
		{"", "libvirt URI"},
	}
	for _, tt := range tests {
		err := CheckLibvirtURI(tt.uri)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("CheckLibvirtURI(%q) = %v, want an error about %q", tt.uri, err, tt.want)
		}
	}
}

func TestCheckMountPath(t *testing.T) {
	for _, ok := range []string{"/var/lib/clock", "/home/me/my repo/.state", "/tmp/ünï"} {
		if err := CheckMountPath(ok); err != nil {
			t.Errorf("CheckMountPath(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"/a,b", "/a=b", "/a\nb", "/a\tb", "/x,readonly=false"} {
		if err := CheckMountPath(bad); err == nil {
			t.Errorf("CheckMountPath(%q) = nil, want an error", bad)
		}
	}
}

func TestCheckDecimal(t *testing.T) {
	for _, ok := range []string{"0", "8", "22", "65535", "1024"} {
		if err := CheckDecimal(ok); err != nil {
			t.Errorf("CheckDecimal(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"010", "0x50", "0o17", "0b1", "+22", "-1", "1_000", " 22", "22 ", "", "12345678901"} {
		if err := CheckDecimal(bad); err == nil {
			t.Errorf("CheckDecimal(%q) = nil, want an error", bad)
		}
	}
}

func TestCheckDuration(t *testing.T) {
	tests := []struct {
		d  time.Duration
		ok bool
	}{{MinBootTimeout, true}, {MaxBootTimeout, true}, {5 * time.Minute, true}, {MinBootTimeout - 1, false}, {MaxBootTimeout + 1, false}, {-time.Second, false}}
	for _, tt := range tests {
		if err := CheckDuration(tt.d, MinBootTimeout, MaxBootTimeout); (err == nil) != tt.ok {
			t.Errorf("CheckDuration(%s) = %v, want ok=%v", tt.d, err, tt.ok)
		}
	}
}

// clearKnobs unsets every CLOCK_* knob for the test.
func clearKnobs(t *testing.T) {
	t.Helper()
	for _, k := range Names() {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}

func TestLoadAppliesTheRules(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"CLOCK_TARGET_PORT": "010"}, `CLOCK_TARGET_PORT="010": must be a decimal number`},
		{map[string]string{"CLOCK_HTTP_PORT": "0x50"}, `CLOCK_HTTP_PORT="0x50": must be a decimal number`},
		{map[string]string{"CLOCK_VM_MEMORY": "02048"}, `CLOCK_VM_MEMORY="02048"`},
		{map[string]string{"CLOCK_VM_BOOT_TIMEOUT": "48h"}, `CLOCK_VM_BOOT_TIMEOUT="48h0m0s": must be between 30s and 1h0m0s`},
		{map[string]string{"CLOCK_VM_BOOT_TIMEOUT": "10s"}, `CLOCK_VM_BOOT_TIMEOUT="10s": must be between`},
		{map[string]string{"CLOCK_VM_USER": "-oProxyCommand=x"}, `CLOCK_VM_USER="-oProxyCommand=x": must be a POSIX user name`},
		{map[string]string{"CLOCK_TARGET_USER": "root@h"}, `CLOCK_TARGET_USER="root@h"`},
		{map[string]string{"CLOCK_TARGET_HOST": "10.0.0.256"}, `CLOCK_TARGET_HOST="10.0.0.256": looks like an IPv4 address`},
		{map[string]string{"CLOCK_LIBVIRT_URI": "qemu+ext:///system?command=/bin/sh"}, `CLOCK_LIBVIRT_URI="qemu+ext:///system?command=/bin/sh": the ext transport`},
		{map[string]string{"CLOCK_STATE_DIR": "/tmp/a,readonly=false"}, `CLOCK_STATE_DIR="/tmp/a,readonly=false": contains ','`},
		{map[string]string{"CLOCK_VM_MAC": "52:54:00:c0:e9"}, `CLOCK_VM_MAC="52:54:00:c0:e9": must be six hex pairs`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			clearKnobs(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, err := Load()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load(%v) = %v, want an error containing %q", tt.env, err, tt.want)
			}
		})
	}
}

func TestLoadNormalizesMAC(t *testing.T) {
	clearKnobs(t)
	t.Setenv("CLOCK_VM_MAC", "52-54-00-AB-CD-EF")
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.VMMAC != "52:54:00:ab:cd:ef" {
		t.Errorf("VMMAC = %q, want 52:54:00:ab:cd:ef", c.VMMAC)
	}
}

func TestEffective(t *testing.T) {
	clearKnobs(t)
	t.Setenv("CLOCK_VM_MAC", "52-54-00-AB-CD-EF")
	var b bytes.Buffer
	if err := Effective(&b); err != nil {
		t.Fatalf("Effective: %v", err)
	}
	for _, want := range []string{"CLOCK_VM_MAC", "52:54:00:ab:cd:ef", "environment", "CLOCK_VM_BOOT_TIMEOUT", "5m0s", "default"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("Effective output does not contain %q:\n%s", want, b.String())
		}
	}

	t.Setenv("CLOCK_HTTP_PORT", "010")
	b.Reset()
	err := Effective(&b)
	if err == nil || !strings.Contains(err.Error(), "CLOCK_HTTP_PORT") {
		t.Errorf("Effective with a bad port = %v, want its error", err)
	}
	if !strings.Contains(b.String(), "010") {
		t.Errorf("Effective did not show the bad value:\n%s", b.String())
	}
}

func TestCheckDomainName(t *testing.T) {
	for _, ok := range []string{"immfly-debian10", "clock.dev_1", "a", strings.Repeat("a", 63)} {
		if err := CheckDomainName(ok); err != nil {
			t.Errorf("CheckDomainName(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "-vm", ".vm", "my vm", "../x", "vm/x", strings.Repeat("a", 64), "vm\n"} {
		if err := CheckDomainName(bad); err == nil {
			t.Errorf("CheckDomainName(%q) = nil, want an error", bad)
		}
	}
}
