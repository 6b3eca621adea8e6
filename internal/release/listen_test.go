package release

import (
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
)

// procFS is a /proc tree for tests: files from a MapFS, and the fd entries as symlinks
// from links, read through fs.ReadLinkFS as Listening reads os.DirFS("/proc"). The targets
// ("socket:[12345]") are not paths, as in the real /proc; links keeps the test independent of
// how MapFS resolves symlinks of its own.
type procFS struct {
	fstest.MapFS
	links map[string]string // name to link target
}

var _ fs.ReadLinkFS = procFS{}

func (p procFS) ReadLink(name string) (string, error) {
	if target, ok := p.links[name]; ok {
		return target, nil
	}
	return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
}

func (p procFS) Lstat(name string) (fs.FileInfo, error) { return p.MapFS.Lstat(name) }

// newProc makes a procFS with one process's tcp tables and fds (fd number to link target).
func newProc(pid int, tcp, tcp6 string, fds map[string]string) procFS {
	p := procFS{MapFS: fstest.MapFS{}, links: map[string]string{}}
	addProc(p, pid, tcp, tcp6, fds)
	return p
}

func addProc(p procFS, pid int, tcp, tcp6 string, fds map[string]string) {
	p.MapFS[fmt.Sprintf("%d/net/tcp", pid)] = &fstest.MapFile{Data: []byte(tcp)}
	p.MapFS[fmt.Sprintf("%d/net/tcp6", pid)] = &fstest.MapFile{Data: []byte(tcp6)}
	for fd, target := range fds {
		name := fmt.Sprintf("%d/fd/%s", pid, fd)
		p.MapFS[name] = &fstest.MapFile{Mode: fs.ModeSymlink | 0o700}
		p.links[name] = target
	}
}

// Tables in the kernel's format (net/ipv4/tcp_ipv4.c, net/ipv6/tcp_ipv6.c): a header, then
// one row per socket; st 0A is LISTEN, 01 ESTABLISHED; the inode is the tenth column.
const (
	tcpHeader  = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	tcp6Header = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
)

// tcpRow is a row of /proc/net/tcp: local port port in state st, socket inode.
func tcpRow(n int, port int, st string, inode int) string {
	return fmt.Sprintf("   %d: 00000000:%04X 00000000:0000 %s 00000000:00000000 00:00000000 00000000 10001        0 %d 1 0000000000000000 100 0 0 10 0\n", n, port, st, inode)
}

// tcp6Row is a row of /proc/net/tcp6.
func tcp6Row(n int, port int, st string, inode int) string {
	return fmt.Sprintf("   %d: 00000000000000000000000000000000:%04X 00000000000000000000000000000000:0000 %s 00000000:00000000 00:00000000 00000000 10001        0 %d 1 0000000000000000 100 0 0 10 0\n", n, port, st, inode)
}

func TestListening(t *testing.T) {
	const pid = 4242
	stdFDs := map[string]string{"0": "/dev/null", "1": "pipe:[777]", "2": "pipe:[778]", "3": "socket:[12345]"}
	for _, tt := range []struct {
		name       string
		tcp, tcp6  string
		fds        map[string]string
		port       int
		want       bool
		whyWant    string
		otherProcs bool
	}{
		{
			name: "listening on the port",
			tcp:  tcpHeader + tcpRow(0, 8080, "0A", 12345),
			tcp6: tcp6Header,
			fds:  stdFDs, port: 8080, want: true,
			whyWant: "its fd 3 is the LISTEN socket of :8080 (1F90)",
		},
		{
			name: "a listener on another port",
			tcp:  tcpHeader + tcpRow(0, 8081, "0A", 12345),
			tcp6: tcp6Header,
			fds:  stdFDs, port: 8080, want: false,
			whyWant: "its socket listens on :8081",
		},
		{
			name: "another instance's listener",
			tcp:  tcpHeader + tcpRow(0, 8080, "0A", 99999) + tcpRow(1, 8080, "0A", 88888),
			tcp6: tcp6Header,
			fds:  stdFDs, port: 8080, want: false,
			whyWant: "the namespace has listeners on :8080, but none is among this process's fds",
		},
		{
			name: "a connection on the port, not a listener",
			tcp:  tcpHeader + tcpRow(0, 8080, "01", 12345),
			tcp6: tcp6Header,
			fds:  stdFDs, port: 8080, want: false,
			whyWant: "state 01 is ESTABLISHED, not LISTEN",
		},
		{
			name: "IPv6 only",
			tcp:  tcpHeader,
			tcp6: tcp6Header + tcp6Row(0, 8080, "0A", 12345),
			fds:  stdFDs, port: 8080, want: true,
			whyWant: "a tcp6 listener on [::]:8080 serves IPv4 too",
		},
		{
			name: "among other sockets and processes",
			tcp:  tcpHeader + tcpRow(0, 22, "0A", 111) + tcpRow(1, 8080, "0A", 99999) + tcpRow(2, 8080, "0A", 12345),
			tcp6: tcp6Header + tcp6Row(0, 22, "0A", 112),
			fds:  stdFDs, port: 8080, want: true, otherProcs: true,
			whyWant: "one of the :8080 listeners is its fd 3",
		},
		{
			name: "no fds but the standard ones",
			tcp:  tcpHeader + tcpRow(0, 8080, "0A", 12345),
			tcp6: tcp6Header,
			fds:  map[string]string{"0": "/dev/null", "1": "pipe:[777]", "2": "pipe:[778]"},
			port: 8080, want: false,
			whyWant: "it holds no socket",
		},
	} {
		p := newProc(pid, tt.tcp, tt.tcp6, tt.fds)
		if tt.otherProcs {
			addProc(p, 5151, tt.tcp, tt.tcp6, map[string]string{"3": "socket:[99999]"})
		}
		got, err := Listening(p, pid, tt.port)
		if err != nil {
			t.Errorf("%s: Listening = %v", tt.name, err)
			continue
		}
		if got != tt.want {
			t.Errorf("%s: Listening(%d, %d) = %v, want %v: %s", tt.name, pid, tt.port, got, tt.want, tt.whyWant)
		}
	}
}

func TestListeningErrors(t *testing.T) {
	// A process that has gone: no /proc/<pid> at all.
	p := newProc(1, tcpHeader, tcp6Header, nil)
	if ok, err := Listening(p, 4242, 8080); err == nil || ok {
		t.Errorf("Listening of a missing pid = %v, %v, want false and an error", ok, err)
	}
	// An fs that cannot read links cannot see the process's sockets: not listening, no panic.
	m := fstest.MapFS{
		"7/net/tcp":  {Data: []byte(tcpHeader + tcpRow(0, 8080, "0A", 12345))},
		"7/net/tcp6": {Data: []byte(tcp6Header)},
		"7/fd/3":     {Data: []byte("socket:[12345]")},
	}
	if ok, _ := Listening(noLinks{m}, 7, 8080); ok {
		t.Error("Listening through an fs without ReadLink = true, want false: it cannot tell the fds' targets")
	}
	if _, err := readLink(noLinks{m}, "7/fd/3"); err == nil || !strings.Contains(err.Error(), "cannot read links") {
		t.Errorf("readLink on an fs without ReadLink = %v, want an error saying it cannot read links", err)
	}
}

// noLinks hides every method of its fs but Open.
type noLinks struct{ fs fs.FS }

func (n noLinks) Open(name string) (fs.File, error) { return n.fs.Open(name) }
