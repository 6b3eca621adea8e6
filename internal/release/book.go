package release

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/clock-app/clock/internal/fix"
)

// The release states a Record moves through.
const (
	StateLive     = "live"     // serving now
	StatePrevious = "previous" // kept for rollback, images on the target
	StateFailed   = "failed"   // never took traffic: its start or gate failed
	StateStopped  = "stopped"  // was live when `stop` removed the containers
)

// Record is one release in the book.
type Record struct {
	Spec       Spec      `json:"spec"`
	Hash       string    `json:"hash"`
	State      string    `json:"state"`
	DeployedAt time.Time `json:"deployed_at"`
	By         string    `json:"by"`
	Note       string    `json:"note,omitempty"` // why it failed
}

// Book is the target's list of releases, newest first, kept in Dir/releases.json beside the
// deploy lock, with every change also appended to Dir/audit.log.
type Book struct {
	Releases []Record `json:"releases"`
}

// File names in the book's folder.
const (
	bookFile  = "releases.json"
	auditFile = "audit.log"
)

// LoadBook reads the book in dir; a target that never had a release has an empty one.
func LoadBook(dir string) (*Book, error) {
	var b Book
	data, err := os.ReadFile(filepath.Join(dir, bookFile))
	if errors.Is(err, os.ErrNotExist) {
		return &b, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("%s: %w (move it aside to start a new book)", filepath.Join(dir, bookFile), err)
	}
	return &b, nil
}

// Save writes the book atomically: a crash leaves the old book or the new one, never half.
func (b *Book) Save(dir string) error {
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	// Synced before the rename: without it a VM switched off right after a deploy came back
	// with an empty releases.json (ext4 had renamed a file whose data was never written).
	tmp := filepath.Join(dir, bookFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, bookFile))
}

// Live is the serving release, or nil.
func (b *Book) Live() *Record { return b.find(func(r Record) bool { return r.State == StateLive }) }

// Rollback picks what `rollback` goes back to: the given version, or else the newest kept
// release that is not live.
func (b *Book) Rollback(version string) (*Record, error) {
	if version != "" {
		r := b.find(func(r Record) bool { return r.Spec.Version == version && r.State != StateFailed })
		if r == nil {
			return nil, fmt.Errorf("no kept release %q on the target: `%s` lists them", version, fix.Command("releases"))
		}
		return r, nil
	}
	r := b.find(func(r Record) bool { return r.State == StatePrevious || r.State == StateStopped })
	if r == nil {
		return nil, fmt.Errorf("no previous release on the target to go back to: `%s` lists them", fix.Command("releases"))
	}
	return r, nil
}

func (b *Book) find(f func(Record) bool) *Record {
	for i := range b.Releases {
		if f(b.Releases[i]) {
			return &b.Releases[i]
		}
	}
	return nil
}

// MadeLive records rec as the live release: the one live before becomes previous, and a
// record of the same hash (a rollback, or a redeploy) moves to the top.
func (b *Book) MadeLive(rec Record) {
	b.Releases = slices.DeleteFunc(b.Releases, func(r Record) bool { return r.Hash == rec.Hash })
	for i := range b.Releases {
		if b.Releases[i].State == StateLive || b.Releases[i].State == StateStopped {
			b.Releases[i].State = StatePrevious
		}
	}
	rec.State = StateLive
	b.Releases = append([]Record{rec}, b.Releases...)
}

// Failed records a release that never took traffic.
func (b *Book) Failed(rec Record, why string) {
	b.Releases = slices.DeleteFunc(b.Releases, func(r Record) bool { return r.Hash == rec.Hash && r.State == StateFailed })
	rec.State, rec.Note = StateFailed, why
	b.Releases = append([]Record{rec}, b.Releases...)
}

// Stopped marks the live release as stopped.
func (b *Book) Stopped() {
	if l := b.Live(); l != nil {
		l.State = StateStopped
	}
}

// Prune keeps the keep newest releases that ran (live, previous, stopped) and the keep newest
// failed ones, and returns the image IDs that no kept release uses any more.
func (b *Book) Prune(keep int) (unused []string) {
	var kept []Record
	ran, failed := 0, 0
	for _, r := range b.Releases {
		if r.State == StateFailed {
			if failed++; failed <= keep {
				kept = append(kept, r)
			}
			continue
		}
		if ran++; ran <= keep {
			kept = append(kept, r)
		}
	}
	used := map[string]bool{}
	for _, r := range kept {
		used[r.Spec.API.ID], used[r.Spec.Web.ID] = true, true
	}
	for _, r := range b.Releases {
		for _, id := range []string{r.Spec.API.ID, r.Spec.Web.ID} {
			if !used[id] && !slices.Contains(unused, id) {
				unused = append(unused, id)
			}
		}
	}
	b.Releases = kept
	return unused
}

// Event is one line of the audit log.
type Event struct {
	Time    time.Time `json:"time"`
	Action  string    `json:"action"` // deploy, rollback, repair, failed, stop
	Version string    `json:"version,omitempty"`
	Hash    string    `json:"hash,omitempty"`
	By      string    `json:"by"`
	Note    string    `json:"note,omitempty"`
}

// Audit appends e to the audit log in dir, one JSON object per line.
func Audit(dir string, e Event) error {
	f, err := os.OpenFile(filepath.Join(dir, auditFile), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	line, _ := json.Marshal(e)
	_, err = f.Write(append(line, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Print writes the book as the `releases` table.
func (b *Book) Print(w io.Writer) {
	fmt.Fprintf(w, "%-10s %-28s %-12s %-20s %s\n", "STATE", "VERSION", "HASH", "DEPLOYED (UTC)", "BY")
	for _, r := range b.Releases {
		line := fmt.Sprintf("%-10s %-28s %-12s %-20s %s", r.State, r.Spec.Version, r.Hash, r.DeployedAt.UTC().Format("2006-01-02 15:04:05"), r.By)
		if r.Note != "" {
			line += "  (" + r.Note + ")"
		}
		fmt.Fprintln(w, line)
	}
	if len(b.Releases) == 0 {
		fmt.Fprintln(w, "(no release yet: "+fix.Command("deploy")+")")
	}
}
