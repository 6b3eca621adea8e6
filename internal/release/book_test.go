package release

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// rec is a record of version v with hash h in state, whose images are the given IDs.
func rec(v, h, state, apiImage, webImage string) Record {
	return Record{
		Spec: Spec{Version: v, API: Image{Ref: "clock-api:" + v, ID: apiImage}, Web: Image{Ref: "clock-web:" + v, ID: webImage}, Replicas: 1},
		Hash: h, State: state, By: "op@host",
		DeployedAt: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
	}
}

// id is a fake image ID named by n, distinct for each n.
func id(n string) string { return "sha256:" + n }

// summary is the book as "version:state" in order, for comparing.
func summary(b *Book) []string {
	var out []string
	for _, r := range b.Releases {
		out = append(out, r.Spec.Version+":"+r.State)
	}
	return out
}

func TestBookMadeLive(t *testing.T) {
	for _, tt := range []struct {
		name string
		book []Record
		live Record
		want []string
	}{
		{
			name: "first release",
			live: rec("v1", "h1", "", id("a1"), id("w1")),
			want: []string{"v1:live"},
		},
		{
			name: "the live one becomes previous",
			book: []Record{rec("v1", "h1", StateLive, id("a1"), id("w1"))},
			live: rec("v2", "h2", "", id("a2"), id("w2")),
			want: []string{"v2:live", "v1:previous"},
		},
		{
			name: "a stopped one becomes previous",
			book: []Record{rec("v2", "h2", StateStopped, id("a2"), id("w2")), rec("v1", "h1", StatePrevious, id("a1"), id("w1"))},
			live: rec("v3", "h3", "", id("a3"), id("w3")),
			want: []string{"v3:live", "v2:previous", "v1:previous"},
		},
		{
			name: "a rollback moves the record of the same hash to the top",
			book: []Record{rec("v3", "h3", StateLive, id("a3"), id("w3")), rec("v2", "h2", StatePrevious, id("a2"), id("w2")), rec("v1", "h1", StatePrevious, id("a1"), id("w1"))},
			live: rec("v1", "h1", "", id("a1"), id("w1")),
			want: []string{"v1:live", "v3:previous", "v2:previous"},
		},
		{
			name: "a failed attempt of the same hash is replaced",
			book: []Record{rec("v2", "h2", StateFailed, id("a2"), id("w2")), rec("v1", "h1", StateLive, id("a1"), id("w1"))},
			live: rec("v2", "h2", "", id("a2"), id("w2")),
			want: []string{"v2:live", "v1:previous"},
		},
		{
			name: "failed ones stay failed",
			book: []Record{rec("v2", "h2", StateFailed, id("a2"), id("w2")), rec("v1", "h1", StateLive, id("a1"), id("w1"))},
			live: rec("v3", "h3", "", id("a3"), id("w3")),
			want: []string{"v3:live", "v2:failed", "v1:previous"},
		},
	} {
		b := &Book{Releases: tt.book}
		b.MadeLive(tt.live)
		if got := summary(b); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: book after MadeLive(%s) = %v, want %v", tt.name, tt.live.Spec.Version, got, tt.want)
		}
		if l := b.Live(); l == nil || l.Hash != tt.live.Hash {
			t.Errorf("%s: Live() = %v, want the record of hash %s", tt.name, l, tt.live.Hash)
		}
	}
}

func TestBookFailed(t *testing.T) {
	b := &Book{Releases: []Record{rec("v1", "h1", StateLive, id("a1"), id("w1"))}}
	b.Failed(rec("v2", "h2", "", id("a2"), id("w2")), "clock-api-h2-1 exited with status 2 at start")
	if got, want := summary(b), []string{"v2:failed", "v1:live"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("book after Failed = %v, want %v: a failed release goes on top and the live one stays live", got, want)
	}
	if got := b.Releases[0].Note; got != "clock-api-h2-1 exited with status 2 at start" {
		t.Errorf("Note = %q, want why it failed", got)
	}
	// A second failure of the same release replaces the first, not piles up.
	b.Failed(rec("v2", "h2", "", id("a2"), id("w2")), "again")
	if got, want := summary(b), []string{"v2:failed", "v1:live"}; !reflect.DeepEqual(got, want) {
		t.Errorf("book after a second Failed of h2 = %v, want %v", got, want)
	}
	if got := b.Releases[0].Note; got != "again" {
		t.Errorf("Note = %q, want the newest failure's", got)
	}
	if l := b.Live(); l == nil || l.Spec.Version != "v1" {
		t.Errorf("Live() = %v after failures, want v1: a failed release never took traffic", l)
	}
}

func TestBookStopped(t *testing.T) {
	b := &Book{Releases: []Record{rec("v2", "h2", StateLive, id("a2"), id("w2")), rec("v1", "h1", StatePrevious, id("a1"), id("w1"))}}
	b.Stopped()
	if got, want := summary(b), []string{"v2:stopped", "v1:previous"}; !reflect.DeepEqual(got, want) {
		t.Errorf("book after Stopped = %v, want %v", got, want)
	}
	if l := b.Live(); l != nil {
		t.Errorf("Live() = %v after Stopped, want nil", l)
	}
	empty := &Book{}
	empty.Stopped() // must not panic with no live release
	if len(empty.Releases) != 0 {
		t.Errorf("Stopped on an empty book made %v", empty.Releases)
	}
}

func TestBookRollback(t *testing.T) {
	book := func() *Book {
		return &Book{Releases: []Record{
			rec("v4", "h4", StateFailed, id("a4"), id("w4")),
			rec("v3", "h3", StateLive, id("a3"), id("w3")),
			rec("v2", "h2", StatePrevious, id("a2"), id("w2")),
			rec("v1", "h1", StatePrevious, id("a1"), id("w1")),
		}}
	}
	for _, tt := range []struct {
		name    string
		book    *Book
		version string
		want    string // version picked, or "" for an error
	}{
		{"default is the newest previous, not the failed one above it", book(), "", "v2"},
		{"by version", book(), "v1", "v1"},
		{"by version, the live one", book(), "v3", "v3"},
		{"a failed version is not kept", book(), "v4", ""},
		{"an unknown version", book(), "v9", ""},
		{"default picks a stopped one", &Book{Releases: []Record{rec("v2", "h2", StateStopped, id("a2"), id("w2")), rec("v1", "h1", StatePrevious, id("a1"), id("w1"))}}, "", "v2"},
		{"nothing but the live one", &Book{Releases: []Record{rec("v1", "h1", StateLive, id("a1"), id("w1"))}}, "", ""},
		{"nothing but failed ones", &Book{Releases: []Record{rec("v2", "h2", StateFailed, id("a2"), id("w2")), rec("v1", "h1", StateLive, id("a1"), id("w1"))}}, "", ""},
		{"an empty book", &Book{}, "", ""},
	} {
		r, err := tt.book.Rollback(tt.version)
		if tt.want == "" {
			if err == nil {
				t.Errorf("%s: Rollback(%q) = %s, want an error", tt.name, tt.version, r.Spec.Version)
			} else if !strings.Contains(err.Error(), "go run mage.go releases") {
				t.Errorf("%s: Rollback(%q) error %q, want it to name `go run mage.go releases` so the operator can see what is kept", tt.name, tt.version, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: Rollback(%q) = %v, want %s", tt.name, tt.version, err, tt.want)
			continue
		}
		if r.Spec.Version != tt.want {
			t.Errorf("%s: Rollback(%q) = %s, want %s", tt.name, tt.version, r.Spec.Version, tt.want)
		}
	}
	if _, err := book().Rollback("v9"); err == nil || !strings.Contains(err.Error(), `"v9"`) {
		t.Errorf("Rollback(v9) error = %v, want it to name the version asked for", err)
	}
}

func TestBookPrune(t *testing.T) {
	for _, tt := range []struct {
		name       string
		book       []Record
		keep       int
		wantBook   []string
		wantUnused []string
	}{
		{
			name: "keep 2 of each kind",
			book: []Record{
				rec("v6", "h6", StateFailed, id("a6"), id("w6")),
				rec("v5", "h5", StateLive, id("a5"), id("w5")),
				rec("v4", "h4", StateFailed, id("a4"), id("w4")),
				rec("v3", "h3", StateFailed, id("a3"), id("w3")),
				rec("v2", "h2", StatePrevious, id("a2"), id("w2")),
				rec("v1", "h1", StateStopped, id("a1"), id("w1")),
			},
			keep:       2,
			wantBook:   []string{"v6:failed", "v5:live", "v4:failed", "v2:previous"},
			wantUnused: []string{id("a3"), id("w3"), id("a1"), id("w1")},
		},
		{
			name: "an image a kept release shares is not unused",
			book: []Record{
				rec("v3", "h3", StateLive, id("a2"), id("w3")), // only the web image changed
				rec("v2", "h2", StatePrevious, id("a2"), id("w2")),
				rec("v1", "h1", StatePrevious, id("a1"), id("w2")),
			},
			keep:       1,
			wantBook:   []string{"v3:live"},
			wantUnused: []string{id("w2"), id("a1")},
		},
		{
			name: "an image of two pruned releases is listed once",
			book: []Record{
				rec("v3", "h3", StateLive, id("a3"), id("w3")),
				rec("v2", "h2", StatePrevious, id("a1"), id("w1")),
				rec("v1", "h1", StatePrevious, id("a1"), id("w1")),
			},
			keep:       1,
			wantBook:   []string{"v3:live"},
			wantUnused: []string{id("a1"), id("w1")},
		},
		{
			name:     "nothing beyond keep",
			book:     []Record{rec("v2", "h2", StateLive, id("a2"), id("w2")), rec("v1", "h1", StatePrevious, id("a1"), id("w1"))},
			keep:     3,
			wantBook: []string{"v2:live", "v1:previous"},
		},
	} {
		b := &Book{Releases: tt.book}
		unused := b.Prune(tt.keep)
		if got := summary(b); !reflect.DeepEqual(got, tt.wantBook) {
			t.Errorf("%s: book after Prune(%d) = %v, want %v", tt.name, tt.keep, got, tt.wantBook)
		}
		if !reflect.DeepEqual(unused, tt.wantUnused) {
			t.Errorf("%s: Prune(%d) unused = %v, want %v: only images no kept release uses, each once", tt.name, tt.keep, unused, tt.wantUnused)
		}
	}
}

func TestBookSaveLoad(t *testing.T) {
	dir := t.TempDir()
	b, err := LoadBook(dir)
	if err != nil {
		t.Fatalf("LoadBook of a folder with no book = %v, want an empty book", err)
	}
	if len(b.Releases) != 0 || b.Live() != nil {
		t.Errorf("LoadBook of a folder with no book = %+v, want no releases", b)
	}
	want := &Book{Releases: []Record{
		rec("v2", "h2", StateLive, id("a2"), id("w2")),
		rec("v1", "h1", StateFailed, id("a1"), id("w1")),
	}}
	want.Releases[0].Spec.APIEnv = map[string]string{"CLOCK_API_LOG_LEVEL": "debug"}
	want.Releases[1].Note = "clock-web-h1-1 exited with status 1 at start"
	if err := want.Save(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, bookFile+".tmp")); !os.IsNotExist(err) {
		t.Errorf("Save left %s.tmp behind (stat: %v), want it renamed into place", bookFile, err)
	}
	got, err := LoadBook(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("LoadBook after Save = %+v, want %+v", got, want)
	}
	// Saving again replaces the book, it does not merge.
	if err := (&Book{Releases: want.Releases[:1]}).Save(dir); err != nil {
		t.Fatal(err)
	}
	if got, _ := LoadBook(dir); len(got.Releases) != 1 {
		t.Errorf("LoadBook after saving a one-release book = %v, want one release", summary(got))
	}

	path := filepath.Join(dir, bookFile)
	if err := os.WriteFile(path, []byte(`{"releases": [`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadBook(dir); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("LoadBook of a corrupt book = %v, want an error naming %s", err, path)
	}
}

func TestBookAudit(t *testing.T) {
	dir := t.TempDir()
	events := []Event{
		{Time: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), Action: "deploy", Version: "v1", Hash: "h1", By: "op@host"},
		{Time: time.Date(2026, 3, 1, 13, 0, 0, 0, time.UTC), Action: "failed", Version: "v2", Hash: "h2", By: "op@host", Note: "clock-api-h2-1 exited"},
		{Time: time.Date(2026, 3, 1, 14, 0, 0, 0, time.UTC), Action: "stop", By: "op@host"},
	}
	for _, e := range events {
		if err := Audit(dir, e); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(filepath.Join(dir, auditFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []Event
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit line %q is not one JSON object: %v", sc.Text(), err)
		}
		got = append(got, e)
	}
	if !reflect.DeepEqual(got, events) {
		t.Errorf("audit log = %+v, want the %d events appended in order, one a line", got, len(events))
	}
}

func TestBookPrint(t *testing.T) {
	var empty strings.Builder
	(&Book{}).Print(&empty)
	if !strings.Contains(empty.String(), "no release yet") {
		t.Errorf("Print of an empty book = %q, want it to say there is no release yet", empty.String())
	}
	b := &Book{Releases: []Record{
		rec("v2", "h2aaaaaaaaaa", StateFailed, id("a2"), id("w2")),
		rec("v1", "h1aaaaaaaaaa", StateLive, id("a1"), id("w1")),
	}}
	b.Releases[0].Note = "clock-api-h2-1 exited with status 2 at start"
	b.Releases[0].DeployedAt = time.Date(2026, 3, 1, 13, 4, 5, 0, time.FixedZone("CET", 3600))
	var out strings.Builder
	b.Print(&out)
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("Print = %q, want a header and one line per release", out.String())
	}
	for _, col := range []string{"STATE", "VERSION", "HASH", "DEPLOYED (UTC)", "BY"} {
		if !strings.Contains(lines[0], col) {
			t.Errorf("header %q lacks column %s", lines[0], col)
		}
	}
	for _, want := range []string{"failed", "v2", "h2aaaaaaaaaa", "2026-03-01 12:04:05", "op@host", "(clock-api-h2-1 exited with status 2 at start)"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("line %q lacks %q (the time in UTC, the note in parentheses)", lines[1], want)
		}
	}
	if !strings.HasPrefix(lines[2], "live ") || strings.Contains(lines[2], "(") {
		t.Errorf("line %q, want the live release with no note", lines[2])
	}
	if strings.Contains(out.String(), "no release yet") {
		t.Errorf("Print of a book with releases says there is none: %q", out.String())
	}
}
