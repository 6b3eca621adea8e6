package release

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
)

// Listening reports whether process pid holds a listening TCP socket on port, read from a
// /proc tree (os.DirFS("/proc") on the target). All instances of a service share one port in
// one network namespace, so a request to the port says nothing about a given instance; its
// own sockets do. /proc/<pid>/net/tcp{,6} list the namespace's sockets, /proc/<pid>/fd the
// process's own.
func Listening(proc fs.FS, pid, port int) (bool, error) {
	inodes := map[string]bool{}
	for _, table := range []string{"tcp", "tcp6"} {
		f, err := proc.Open(fmt.Sprintf("%d/net/%s", pid, table))
		if errors.Is(err, fs.ErrNotExist) && table == "tcp6" {
			continue // a kernel booted with ipv6.disable=1 has no tcp6 table
		}
		if err != nil {
			return false, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "0A" { // 0A: LISTEN
				continue
			}
			_, hexPort, ok := strings.Cut(fields[1], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 16); ok && err == nil && int(p) == port {
				inodes["socket:["+fields[9]+"]"] = true
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return false, err
		}
	}
	if len(inodes) == 0 {
		return false, nil
	}
	fdDir := fmt.Sprintf("%d/fd", pid)
	fds, err := fs.ReadDir(proc, fdDir)
	if err != nil {
		return false, err
	}
	for _, fd := range fds {
		target, err := readLink(proc, fdDir+"/"+fd.Name())
		if err == nil && inodes[target] {
			return true, nil
		}
	}
	return false, nil
}

// readLink reads a symlink of an fs.FS that can (os.DirFS since Go 1.25).
func readLink(fsys fs.FS, name string) (string, error) {
	if rl, ok := fsys.(fs.ReadLinkFS); ok {
		return rl.ReadLink(name)
	}
	return "", fmt.Errorf("readlink %s: %T cannot read links", name, fsys)
}
