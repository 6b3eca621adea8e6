package vmimage

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// A build that is killed (mage gives a cancelled target five seconds, SIGKILL none)
// leaves its work behind: the image's root mounted on its work folder with mmdebstrap's
// proc, sys, dev/pts and dev/shm below it, a loop device on the half-built file, the file
// itself. The names below tie every piece to one image, so a build finds and releases
// what an earlier build of the same image left, and never another image's live build.

// workDir is where the image's root filesystem is mounted while it is built.
func workDir(output string) string { return output + ".root" }

// buildingPath is the half-built image, renamed to output when done.
func buildingPath(output string) string { return output + ".building" }

// leftovers are the traces of an unfinished build of one image.
type leftovers struct {
	Mounts   []string // mount points at or below the work folder, innermost (last mounted) first
	Loops    []string // loop devices backed by the half-built file
	Files    []string // the half-built file, stale temp files
	WorkDir  string   // the work folder, removed once nothing is mounted on it
	haveWork bool
}

func (l leftovers) empty() bool {
	return len(l.Mounts) == 0 && len(l.Loops) == 0 && len(l.Files) == 0 && !l.haveWork
}

func (l leftovers) String() string {
	var parts []string
	if len(l.Mounts) > 0 {
		parts = append(parts, fmt.Sprintf("%d mounts under %s", len(l.Mounts), l.WorkDir))
	}
	if len(l.Loops) > 0 {
		parts = append(parts, "loop devices "+strings.Join(l.Loops, ", "))
	}
	if len(l.Files) > 0 {
		parts = append(parts, strings.Join(l.Files, ", "))
	}
	if len(parts) == 0 && l.haveWork {
		parts = append(parts, "the folder "+l.WorkDir)
	}
	return strings.Join(parts, "; ")
}

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	MountPoint string
	FSType     string
	Source     string
}

// parseMountinfo reads /proc/self/mountinfo (proc(5)): the mount point is field 5, then
// optional fields up to a lone "-", then the filesystem type and source. Octal escapes
// (\040 for a space) are decoded. Lines it cannot read are skipped.
func parseMountinfo(data []byte) []mountEntry {
	var out []mountEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		sep := slices.Index(f, "-")
		if len(f) < 5 || sep < 6 || len(f) < sep+3 {
			continue
		}
		out = append(out, mountEntry{MountPoint: unescapeMountinfo(f[4]), FSType: f[sep+1], Source: unescapeMountinfo(f[sep+2])})
	}
	return out
}

// unescapeMountinfo decodes the kernel's \ooo escapes of space, tab, newline and backslash.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountsUnder returns the mount points at or below dir, the last mounted first: the order
// they can be unmounted in (dev/pts before the root it sits on).
func mountsUnder(entries []mountEntry, dir string) []string {
	dir = filepath.Clean(dir)
	var out []string
	for i := len(entries) - 1; i >= 0; i-- {
		mp := entries[i].MountPoint
		if (mp == dir || strings.HasPrefix(mp, dir+"/")) && !slices.Contains(out, mp) {
			out = append(out, mp)
		}
	}
	return out
}

// loopsBackedBy reads `losetup --json --list` and returns the devices whose backing file
// is file (the kernel adds " (deleted)" once the file is gone).
func loopsBackedBy(losetupJSON []byte, file string) ([]string, error) {
	var out struct {
		Devices []struct {
			Name     string `json:"name"`
			BackFile string `json:"back-file"`
		} `json:"loopdevices"`
	}
	if len(bytes.TrimSpace(losetupJSON)) == 0 {
		return nil, nil // losetup prints nothing when no device is in use
	}
	if err := json.Unmarshal(losetupJSON, &out); err != nil {
		return nil, fmt.Errorf("read losetup --json output: %w", err)
	}
	file = filepath.Clean(file)
	var devs []string
	for _, d := range out.Devices {
		if strings.TrimSuffix(d.BackFile, " (deleted)") == file {
			devs = append(devs, d.Name)
		}
	}
	return devs, nil
}

// staleTemps are the temp files fsx.WriteFileAtomic left next to the image's files when
// killed between create and rename (".debian12.img.stamp.tmp-123").
func staleTemps(output string) []string {
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(output), "."+filepath.Base(output)+"*.tmp-*"))
	return matches
}

// findLeftovers looks for what an unfinished build of output left, from the mount table
// and loop device list given (as read from /proc/self/mountinfo and losetup).
func findLeftovers(output string, mountinfo, losetupJSON []byte) (leftovers, error) {
	l := leftovers{WorkDir: workDir(output)}
	l.Mounts = mountsUnder(parseMountinfo(mountinfo), l.WorkDir)
	loops, err := loopsBackedBy(losetupJSON, buildingPath(output))
	if err != nil {
		return l, err
	}
	l.Loops = loops
	if _, err := os.Lstat(buildingPath(output)); err == nil {
		l.Files = append(l.Files, buildingPath(output))
	}
	l.Files = append(l.Files, staleTemps(output)...)
	if _, err := os.Lstat(l.WorkDir); err == nil {
		l.haveWork = true
	}
	return l, nil
}

// readLeftovers reads the system's mount table and loop devices and finds the leftovers
// of image. Without losetup (a host that only uses a finished image) no loop device is
// looked for.
func readLeftovers(ctx context.Context, image string) (leftovers, error) {
	mountinfo, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return leftovers{}, fmt.Errorf("vmimage: read the mount table: %w", err)
	}
	var losetupJSON []byte
	if _, err := exec.LookPath("losetup"); err == nil {
		out, err := output(ctx, nil, "losetup", "--json", "--list")
		if err != nil {
			return leftovers{}, err
		}
		losetupJSON = []byte(out)
	}
	return findLeftovers(image, mountinfo, losetupJSON)
}

// mountedUnder returns the release of whatever is mounted at or below dir (and dir itself).
func mountedUnder(dir string) (leftovers, error) {
	mountinfo, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return leftovers{}, fmt.Errorf("vmimage: read the mount table: %w", err)
	}
	return leftovers{WorkDir: dir, haveWork: true, Mounts: mountsUnder(parseMountinfo(mountinfo), dir)}, nil
}

// release undoes l: unmounts innermost first (lazily when busy, so a process still
// inside cannot keep the image attached forever), detaches the loop devices, removes the
// files and the emptied work folder. It runs on a context of its own, since it also runs
// after the build's context was cancelled.
func (l leftovers) release() error {
	ctx, cancel := cleanupCtx()
	defer cancel()
	var errs []error
	for _, mp := range l.Mounts {
		if err := run(ctx, nil, "umount", mp); err != nil {
			if lerr := run(ctx, nil, "umount", "--lazy", mp); lerr != nil {
				errs = append(errs, fmt.Errorf("unmount %s (run umount --lazy %s by hand): %w", mp, mp, lerr))
			}
		}
	}
	for _, dev := range l.Loops {
		errs = append(errs, (&loopDisk{dev: dev}).detach())
	}
	for _, f := range l.Files {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if l.haveWork || len(l.Mounts) > 0 {
		// Remove, not RemoveAll: should an unmount have failed, the image's files stay put.
		if err := os.Remove(l.WorkDir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove the work folder %s: %w", l.WorkDir, err))
		}
	}
	return errors.Join(errs...)
}
