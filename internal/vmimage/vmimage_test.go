package vmimage

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/clock-app/clock/internal/sshx"
)

const (
	testKey  = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGVe+I/9BPDc9MAtj79ZXOIAdiqHBtzZH6/tSmBLl27I test"
	otherKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIek+0XtYzCBX+Y11bKP+vxejrpRUAgpthT1+DhqSIZC"
)

func TestRenderGrubCfg(t *testing.T) {
	got := renderGrubCfg(grubConfig{
		RootUUID: "0b7c-uuid", Kernel: "/boot/vmlinuz-6.1.0-1-amd64", Initrd: "/boot/initrd.img-6.1.0-1-amd64", Timeout: 1,
	})
	for _, want := range []string{
		"serial --unit=0 --speed=115200",
		"terminal_output serial console",
		"set timeout=1\n",
		"search --no-floppy --fs-uuid --set=root 0b7c-uuid\n",
		"linux /boot/vmlinuz-6.1.0-1-amd64 root=UUID=0b7c-uuid ro console=tty0 console=ttyS0,115200n8\n",
		"initrd /boot/initrd.img-6.1.0-1-amd64\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("grub.cfg lacks %q:\n%s", want, got)
		}
	}
	// The serial console must come last: it becomes /dev/console, which the VM layer's
	// serial log relies on for systemd's status lines.
	if strings.LastIndex(got, "console=ttyS0") < strings.LastIndex(got, "console=tty0") {
		t.Errorf("console=ttyS0 must be the last console= in:\n%s", got)
	}
}

func TestRenderFstab(t *testing.T) {
	got := renderFstab("1234-abcd")
	if want := "UUID=1234-abcd / ext4 errors=remount-ro 0 1\n"; !strings.Contains(got, want) {
		t.Errorf("fstab = %q, want a line %q", got, want)
	}
}

func TestNetworkMatchesEveryNICName(t *testing.T) {
	// enp1s0 under libvirt, ens3/eth0 under plain qemu.
	if !strings.Contains(networkdDHCP, "Name=en* eth*") || !strings.Contains(networkdDHCP, "DHCP=ipv4") {
		t.Errorf("network unit does not do DHCP on en*/eth*:\n%s", networkdDHCP)
	}
	// Same MAC, same lease: a re-created VM keeps its address.
	if !strings.Contains(networkdDHCP, "ClientIdentifier=mac") {
		t.Errorf("network unit does not identify the DHCP client by MAC:\n%s", networkdDHCP)
	}
}

func TestResolvedAnswersNoNetworkNameQueries(t *testing.T) {
	for _, want := range []string{"[Resolve]\n", "LLMNR=no\n", "MulticastDNS=no\n"} {
		if !strings.Contains(resolvedConfig, want) {
			t.Errorf("resolved drop-in lacks %q:\n%s", want, resolvedConfig)
		}
	}
}

func TestSSHDConfigIsKeyOnly(t *testing.T) {
	for _, want := range []string{"PermitRootLogin prohibit-password\n", "PasswordAuthentication no\n", "HostKey /etc/ssh/ssh_host_ed25519_key\n"} {
		if !strings.Contains(sshdConfig, want) {
			t.Errorf("sshd drop-in lacks %q", want)
		}
	}
	if !strings.Contains(sshHostKeysDropIn, "ExecStartPre=\n") || !strings.Contains(sshHostKeysDropIn, "ssh-keygen -q -t ed25519") {
		t.Errorf("ssh.service drop-in does not regenerate host keys before sshd -t:\n%s", sshHostKeysDropIn)
	}
	// The key reaches the console as the line sshx.ConsoleHostKeys reads; systemd turns $$ into $.
	want := `echo "` + sshx.ConsoleHostKeyMarker + `$$(cat /etc/ssh/ssh_host_ed25519_key.pub)" >/dev/console`
	keygen := strings.Index(sshHostKeysDropIn, "ssh-keygen")
	if i := strings.Index(sshHostKeysDropIn, want); i < keygen || keygen < 0 {
		t.Errorf("ssh.service drop-in does not print the host key on the console after making it:\n%s", sshHostKeysDropIn)
	}
}

func TestSourceLines(t *testing.T) {
	got := sourceLines("http://m/debian/", "http://m/debian-security", "bookworm")
	want := []string{
		"deb http://m/debian bookworm main",
		"deb http://m/debian bookworm-updates main",
		"deb http://m/debian-security bookworm-security main",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("sourceLines = %q, want %q", got, want)
	}
}

func TestValidate(t *testing.T) {
	ok := Options{Output: "/x/debian12.img", PublicKey: []byte(testKey)}.withDefaults()
	if err := ok.Validate(); err != nil {
		t.Fatalf("Validate(defaults) = %v, want nil", err)
	}
	// The mistake the check is for: a whole private key file, generated here, where the
	// public key belongs.
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	privateKey := pem.EncodeToMemory(block)
	tests := []struct {
		name   string
		change func(*Options)
		want   string
	}{
		{"no output", func(o *Options) { o.Output = "" }, "no output path"},
		{"no key", func(o *Options) { o.PublicKey = nil }, "no SSH public key"},
		{"private key", func(o *Options) { o.PublicKey = privateKey }, "not in authorized_keys format"},
		{"tiny disk", func(o *Options) { o.SizeBytes = 1 << 20 }, "too small"},
		{"bad package", func(o *Options) { o.Packages = []string{"python3,curl"} }, "package name"},
		{"bad hostname", func(o *Options) { o.Hostname = "a b" }, "hostname"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := ok
			tt.change(&o)
			err := o.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// writeImage fakes a finished build: the image file plus the stamp for o.
func writeImage(t testing.TB, o Options) {
	t.Helper()
	if err := os.WriteFile(o.Output, []byte("disk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeStamp(o.Output, newStamp(o)); err != nil {
		t.Fatal(err)
	}
}

func TestUpToDate(t *testing.T) {
	dir := t.TempDir()
	base := Options{Output: filepath.Join(dir, "debian12.img"), PublicKey: []byte(testKey)}

	if ok, err := UpToDate(base); err != nil || ok {
		t.Fatalf("UpToDate(no image) = %v, %v; want false, nil", ok, err)
	}
	writeImage(t, base.withDefaults())
	if ok, err := UpToDate(base); err != nil || !ok {
		t.Fatalf("UpToDate(same inputs) = %v, %v; want true, nil", ok, err)
	}

	// The package order, the key's comment and a trailing newline do not matter.
	same := base
	same.PublicKey = []byte(strings.TrimSuffix(testKey, " test") + "\n")
	same.Packages = append([]string{"python3"}, DefaultPackages...)
	if ok, _ := UpToDate(same); !ok {
		t.Errorf("UpToDate(reordered packages, key with newline) = false, want true")
	}

	changes := map[string]func(*Options){
		"key":      func(o *Options) { o.PublicKey = []byte(otherKey) },
		"suite":    func(o *Options) { o.Suite = "bullseye" },
		"packages": func(o *Options) { o.Packages = append([]string{"curl"}, DefaultPackages...) },
		"size":     func(o *Options) { o.SizeBytes = 4 * gib },
	}
	for name, change := range changes {
		o := base
		change(&o)
		if ok, _ := UpToDate(o); ok {
			t.Errorf("UpToDate after changing the %s = true, want false", name)
		}
	}
}

func TestUpToDateRebuildsOnBadStamp(t *testing.T) {
	dir := t.TempDir()
	o := Options{Output: filepath.Join(dir, "debian12.img"), PublicKey: []byte(testKey)}.withDefaults()
	writeImage(t, o)
	if err := os.WriteFile(stampPath(o.Output), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if ok, err := UpToDate(o); err != nil || ok {
		t.Errorf("UpToDate(corrupt stamp) = %v, %v; want false, nil", ok, err)
	}
}

func TestBuildSkipsWhenUpToDate(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	o := Options{
		Output: filepath.Join(dir, "debian12.img"), PublicKey: []byte(testKey),
		Logf: func(f string, a ...any) { lines = append(lines, f) },
	}
	writeImage(t, o.withDefaults())
	// No root or tools needed: the stamp matches, so nothing runs.
	built, err := Build(context.Background(), o)
	if err != nil || built {
		t.Fatalf("Build(up to date) = %v, %v; want false, nil", built, err)
	}
	if len(lines) != 1 || !strings.Contains(lines[0], "up to date") {
		t.Errorf("progress = %q, want one 'up to date' line", lines)
	}
}

func TestLastLine(t *testing.T) {
	var l lastLine
	for _, chunk := range []string{"I: one\nI: t", "wo\n\n", "I: thr"} {
		l.Write([]byte(chunk))
	}
	if got := l.String(); got != "I: two" {
		t.Errorf("lastLine = %q, want %q", got, "I: two")
	}
}

func TestNewUUID(t *testing.T) {
	u, err := newUUID()
	if err != nil {
		t.Fatal(err)
	}
	if len(u) != 36 || u[14] != '4' || strings.Count(u, "-") != 4 {
		t.Errorf("newUUID() = %q, want a version 4 UUID", u)
	}
}

func TestConfigureWritesTree(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"etc/ssh", "root", "var/lib/dbus"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"etc/ssh/ssh_host_ed25519_key", "etc/ssh/ssh_host_rsa_key.pub", "var/lib/dbus/machine-id"} {
		if err := os.WriteFile(filepath.Join(root, f), []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	o := Options{Output: "x", PublicKey: []byte(testKey)}.withDefaults()
	if err := configure(root, o, "uuid-1", "/boot/vmlinuz-1", "/boot/initrd.img-1"); err != nil {
		t.Fatalf("configure: %v", err)
	}
	if keys, _ := filepath.Glob(filepath.Join(root, "etc/ssh/ssh_host_*")); len(keys) != 0 {
		t.Errorf("host keys left in the image: %q", keys)
	}
	if _, err := os.Stat(filepath.Join(root, "var/lib/dbus/machine-id")); err == nil {
		t.Errorf("dbus machine-id left in the image")
	}
	if fi, err := os.Stat(filepath.Join(root, "etc/machine-id")); err != nil || fi.Size() != 0 {
		t.Errorf("/etc/machine-id must exist and be empty: %v %v", fi, err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "etc/systemd/resolved.conf.d/10-clock.conf")); err != nil || string(b) != resolvedConfig {
		t.Errorf("resolved drop-in = %q, %v; want LLMNR and mDNS off", b, err)
	}
	ak, err := os.ReadFile(filepath.Join(root, "root/.ssh/authorized_keys"))
	if err != nil || string(ak) != testKey+"\n" {
		t.Errorf("authorized_keys = %q, %v; want the key", ak, err)
	}
	if fi, _ := os.Stat(filepath.Join(root, "root/.ssh")); fi.Mode().Perm() != 0o700 {
		t.Errorf("/root/.ssh mode = %v, want 0700", fi.Mode().Perm())
	}
	if target, err := os.Readlink(filepath.Join(root, "etc/resolv.conf")); err != nil || !strings.Contains(target, "systemd/resolve") {
		t.Errorf("/etc/resolv.conf -> %q, %v; want systemd-resolved's stub", target, err)
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/systemd-networkd.service")); err != nil {
		t.Errorf("systemd-networkd not enabled: %v", err)
	}
}

// TestConsoleKeyLineRuns runs the drop-in's print line as systemd would (after its $$
// unescaping) with the key and the console swapped for temp files, and reads the key back
// the way vm:up does.
func TestConsoleKeyLineRuns(t *testing.T) {
	var line string
	for _, l := range strings.Split(sshHostKeysDropIn, "\n") {
		if strings.Contains(l, "/dev/console") {
			line = l
		}
	}
	if line == "" {
		t.Fatal("no ExecStartPre prints to /dev/console")
	}
	dir := t.TempDir()
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pubPath, console := filepath.Join(dir, "host.pub"), filepath.Join(dir, "console")
	if err := os.WriteFile(pubPath, append(bytes.TrimSpace(ssh.MarshalAuthorizedKey(key)), " root@debian\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(line, "ExecStartPre=-/bin/sh -c ") {
		t.Errorf("the print line %q may fail ssh.service: want ExecStartPre=- so sshd starts anyway", line)
	}
	script := strings.TrimPrefix(line, "ExecStartPre=-/bin/sh -c ")
	script = strings.Trim(script, "'")
	script = strings.ReplaceAll(script, "$$", "$")
	script = strings.ReplaceAll(script, "/etc/ssh/ssh_host_ed25519_key.pub", pubPath)
	script = strings.ReplaceAll(script, "/dev/console", console)
	if out, err := exec.Command("/bin/sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("sh -c %q: %v: %s", script, err, out)
	}
	log, _ := os.ReadFile(console)
	keys := sshx.ConsoleHostKeys(log)
	if len(keys) != 1 || !bytes.Equal(keys[0].Marshal(), key.Marshal()) {
		t.Errorf("the console got %q, want the host key on a %q line", log, sshx.ConsoleHostKeyMarker)
	}
}
