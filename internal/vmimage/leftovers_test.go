package vmimage

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const repoState = "/srv/my repo/.state/vm"

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseMountinfo(t *testing.T) {
	entries := parseMountinfo(readTestdata(t, "mountinfo-interrupted.txt"))
	if len(entries) != 13 {
		t.Fatalf("parsed %d entries, want 13", len(entries))
	}
	got := entries[6]
	if got.MountPoint != repoState+"/debian12.img.root" || got.FSType != "ext4" || got.Source != "/dev/loop0p1" {
		t.Errorf("entry 7 = %+v, want the image root on /dev/loop0p1 with its space decoded", got)
	}
	if e := parseMountinfo([]byte("garbage\n1 2 3\n")); len(e) != 0 {
		t.Errorf("parseMountinfo(garbage) = %v, want nothing", e)
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{`/a\040b`: "/a b", `/t\011ab`: "/t\tab", `/back\134slash`: `/back\slash`, `/plain`: "/plain", `/end\04`: `/end\04`} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMountsUnderInnermostFirst(t *testing.T) {
	root := repoState + "/debian12.img.root"
	got := mountsUnder(parseMountinfo(readTestdata(t, "mountinfo-interrupted.txt")), root)
	want := []string{root + "/dev/shm", root + "/dev/pts", root + "/sys", root + "/proc", root}
	if !slices.Equal(got, want) {
		t.Errorf("mountsUnder = %q\nwant %q (not debian11's, not the .rootfs look-alike)", got, want)
	}
}

func TestLoopsBackedBy(t *testing.T) {
	got, err := loopsBackedBy(readTestdata(t, "losetup-interrupted.json"), repoState+"/debian12.img.building")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/dev/loop0", "/dev/loop3"}; !slices.Equal(got, want) {
		t.Errorf("loopsBackedBy = %q, want %q (the deleted file's too, not debian11's)", got, want)
	}
	if got, err := loopsBackedBy(nil, "/x.building"); err != nil || len(got) != 0 {
		t.Errorf("loopsBackedBy(no output) = %v, %v; want none", got, err)
	}
	if _, err := loopsBackedBy([]byte("{not json"), "/x"); err == nil {
		t.Error("loopsBackedBy(broken JSON) = nil error")
	}
}

func TestFindLeftoversAndReleaseFiles(t *testing.T) {
	dir := t.TempDir()
	image := filepath.Join(dir, "debian12.img")
	for _, f := range []string{buildingPath(image), filepath.Join(dir, ".debian12.img.stamp.tmp-123"), image, image + ".stamp", filepath.Join(dir, ".other.tmp-1")} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(workDir(image), 0o700); err != nil {
		t.Fatal(err)
	}
	l, err := findLeftovers(image, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.empty() || len(l.Mounts) != 0 || len(l.Loops) != 0 {
		t.Fatalf("findLeftovers = %+v, want only files and the work folder", l)
	}
	wantFiles := []string{buildingPath(image), filepath.Join(dir, ".debian12.img.stamp.tmp-123")}
	if !slices.Equal(l.Files, wantFiles) {
		t.Errorf("Files = %q, want %q", l.Files, wantFiles)
	}
	if err := l.release(); err != nil {
		t.Fatalf("release: %v", err)
	}
	for _, gone := range append(wantFiles, workDir(image)) {
		if _, err := os.Lstat(gone); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there after release", gone)
		}
	}
	for _, kept := range []string{image, image + ".stamp", filepath.Join(dir, ".other.tmp-1")} {
		if _, err := os.Lstat(kept); err != nil {
			t.Errorf("release removed %s: %v", kept, err)
		}
	}
	if l, _ := findLeftovers(image, nil, nil); !l.empty() {
		t.Errorf("findLeftovers after release = %+v, want nothing", l)
	}
}

// TestReleaseKeepsAFolderStillMounted: should an unmount fail, the work folder is removed
// with os.Remove, which fails on a non-empty folder, never with RemoveAll, which would
// delete the mounted image's files.
func TestReleaseKeepsAFolderStillMounted(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "debian12.img.root")
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	l := leftovers{WorkDir: dir, haveWork: true}
	if err := l.release(); err == nil {
		t.Error("release of a non-empty work folder = nil error, want one")
	}
	if _, err := os.Stat(filepath.Join(dir, "etc")); err != nil {
		t.Errorf("release deleted what was inside the work folder: %v", err)
	}
}

// TestRunGroupToStopsTheWholeGroup is mmdebstrap cancelled while a child of its runs: the
// command gets SIGTERM, which it can answer (mmdebstrap unmounts), and its child does not
// outlive it.
func TestRunGroupToStopsTheWholeGroup(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var w lastLine
	done := make(chan error, 1)
	go func() {
		done <- runGroupTo(ctx, &w, "sh", "-c", `trap 'echo got TERM; exit 3' TERM; sleep 300 & echo child $!; wait`)
	}()
	var child int
	deadline := time.Now().Add(10 * time.Second)
	for child == 0 && time.Now().Before(deadline) {
		if f := strings.Fields(w.String()); len(f) == 2 && f[0] == "child" {
			child, _ = strconv.Atoi(f[1])
		}
		select {
		case err := <-done:
			t.Fatalf("runGroupTo returned early: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if child == 0 {
		t.Fatalf("the command did not start its child; output %q", w.output())
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("runGroupTo = %v, want context.Canceled", err)
		}
	case <-time.After(stopGrace + 5*time.Second):
		t.Fatal("runGroupTo did not return after cancel")
	}
	if !strings.Contains(w.output(), "got TERM") {
		t.Errorf("the command never saw SIGTERM; output %q", w.output())
	}
	// Gone, or a zombie waiting for init: either way not running. A SIGKILL is delivered
	// asynchronously, so the child may show as running for a moment after the group's kill.
	state := ""
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		state = processState(child)
		if state == "" || state == "Z" {
			return
		}
	}
	t.Errorf("the command's child %d still runs (state %s)", child, state)
}

// processState is the state letter of pid from /proc (R, S, Z...), or "" when it is gone.
func processState(pid int) string {
	if err := syscall.Kill(pid, 0); err != nil {
		return ""
	}
	stat, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	// The command name in field 2 is in parentheses and may hold spaces: read after it.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 {
		if f := bytes.Fields(stat[i+1:]); len(f) > 0 {
			return string(f[0])
		}
	}
	return ""
}
