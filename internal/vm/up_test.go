package vm

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/clock-app/clock/internal/sshx"
)

// sshOn serves SSH on addr with hostKey, accepting one client key; swap replaces the
// host key for the next connections (a re-created VM, or an impostor).
type sshOn struct {
	l   net.Listener
	cfg chan *ssh.ServerConfig
}

func serveSSH(t *testing.T, addr string, hostKey ssh.Signer, client ssh.PublicKey) *sshOn {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s (the VM's SSH port needs root): %v", addr, err)
	}
	s := &sshOn{l: l, cfg: make(chan *ssh.ServerConfig, 1)}
	s.swap(hostKey, client)
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			cfg := <-s.cfg
			s.cfg <- cfg
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if conn, chans, reqs, err := ssh.NewServerConn(c, cfg); err == nil {
					go ssh.DiscardRequests(reqs)
					go func() {
						for nc := range chans {
							nc.Reject(ssh.Prohibited, "no sessions")
						}
					}()
					conn.Wait()
				}
			}()
		}
	}()
	return s
}

func (s *sshOn) swap(hostKey ssh.Signer, client ssh.PublicKey) {
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if string(k.Marshal()) == string(client.Marshal()) {
			return nil, nil
		}
		return nil, errors.New("unknown key")
	}}
	cfg.AddHostKey(hostKey)
	select {
	case <-s.cfg:
	default:
	}
	s.cfg <- cfg
}

func newSigner(t *testing.T) ssh.Signer {
	t.Helper()
	k, err := sshx.EnsureKey(filepath.Join(t.TempDir(), "id_ed25519"))
	if err != nil {
		t.Fatal(err)
	}
	return k.Signer
}

// newUpFixture is a VM on fake libvirt with a bootable base image, the deploy key, and a
// DHCP lease at a random loopback address where the test serves SSH.
func newUpFixture(t *testing.T) (*VM, *fakeLibvirt, *sshx.Key, string) {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
	ip := fmt.Sprintf("127.0.%d.%d", rand.IntN(200)+20, rand.IntN(250)+2)
	v, f := newFakeVM(t, AccelTCG, false)
	v.cfg.BootTimeout = 30 * time.Second
	key, err := sshx.EnsureKey(v.cfg.KeyPath)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(t.TempDir(), "base.img")
	mbr := make([]byte, 1<<20)
	mbr[510], mbr[511] = 0x55, 0xaa
	if err := os.WriteFile(base, mbr, 0o644); err != nil {
		t.Fatal(err)
	}
	v.cfg.BaseImage = base
	f.leases = " Expiry Time  MAC address  Protocol  IP address  Hostname  Client ID\n---\n " +
		time.Now().Add(time.Hour).Format("2006-01-02 15:04:05") + "   " + v.cfg.MAC + "   ipv4   " + ip + "/24   debian   -\n"
	return v, f, key, ip
}

// TestUpHostKeyPolicy runs Up against fake libvirt and an SSH server at the lease's
// address: a VM it creates gets its key pinned over an old one; a running VM showing
// another key is refused and nothing is re-pinned; a key the console printed wins.
func TestUpHostKeyPolicy(t *testing.T) {
	v, _, key, ip := newUpFixture(t)
	vmKey := newSigner(t)
	srv := serveSSH(t, net.JoinHostPort(ip, "22"), vmKey, key.Signer.PublicKey())
	known := v.cfg.KnownHostsPath()
	stale := newSigner(t).PublicKey() // the VM before vm:destroy, at the same address
	if err := sshx.PinHostKey(known, ip, stale); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	res, err := v.Up(ctx)
	if err != nil {
		t.Fatalf("Up(new VM) = %v", err)
	}
	if !res.Started || res.IP != ip {
		t.Errorf("Up(new VM) = %+v, want it started at %s", res, ip)
	}
	if got, _ := os.ReadFile(known); string(got) != sshx.HostKeyLine(net.JoinHostPort(ip, "22"), vmKey.PublicKey())+"\n" {
		t.Errorf("known_hosts after creating the VM = %q, want only its key", got)
	}
	if _, err := os.Stat(v.cfg.unpinnedPath()); err == nil {
		t.Error("the unpinned marker stayed after the key was pinned")
	}

	// Running now; something else answers with another key.
	impostor := newSigner(t)
	srv.swap(impostor, key.Signer.PublicKey())
	before, _ := os.ReadFile(known)
	if _, err := v.Up(ctx); !errors.Is(err, sshx.ErrHostKeyChanged) {
		t.Fatalf("Up(running VM, other key) = %v, want ErrHostKeyChanged", err)
	}
	if after, _ := os.ReadFile(known); string(after) != string(before) {
		t.Errorf("known_hosts re-pinned by a running VM's login:\n%s", after)
	}

	// The VM's own console says which key is its: that one is pinned.
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(impostor.PublicKey())))
	if err := os.WriteFile(v.cfg.ConsoleLogPath(), []byte("Linux version 6.1\r\n"+sshx.ConsoleHostKeyMarker+line+" root@debian\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Up(ctx); err != nil {
		t.Fatalf("Up(running VM, key on its console) = %v", err)
	}
	if got, _ := os.ReadFile(known); !strings.Contains(string(got), line) {
		t.Errorf("known_hosts = %q, want the console's key", got)
	}
}

// TestUpAfterAnInterruptedCreate is vm:up interrupted after creating the VM and before
// pinning its key: the next vm:up finds it running and may still pin the fresh disk's key.
func TestUpAfterAnInterruptedCreate(t *testing.T) {
	v, f, key, ip := newUpFixture(t)
	if err := sshx.PinHostKey(v.cfg.KnownHostsPath(), ip, newSigner(t).PublicKey()); err != nil {
		t.Fatal(err)
	}

	// The first vm:up is interrupted while it waits for SSH (nothing answers yet).
	ctx, cancel := context.WithCancel(context.Background())
	f.onStart = cancel
	if _, err := v.Up(ctx); err == nil {
		t.Fatal("Up(interrupted) = nil error")
	}
	if _, err := os.Stat(v.cfg.unpinnedPath()); err != nil {
		t.Fatalf("no unpinned marker after an interrupted create: %v", err)
	}

	vmKey := newSigner(t)
	serveSSH(t, net.JoinHostPort(ip, "22"), vmKey, key.Signer.PublicKey())
	f.onStart = nil
	if _, err := v.Up(context.Background()); err != nil {
		t.Fatalf("Up(running VM made by the interrupted run) = %v, want its key pinned", err)
	}
	if got, _ := os.ReadFile(v.cfg.KnownHostsPath()); !strings.Contains(string(got), strings.TrimSpace(string(ssh.MarshalAuthorizedKey(vmKey.PublicKey())))) {
		t.Errorf("known_hosts = %q, want the VM's key", got)
	}
}
