// Package lock keeps two deploys from running at once: a local lock for two mage processes
// on this machine (flock on a file in the state folder) and a remote one on the target for
// two operators on two machines (an atomic mkdir over SSH). Both record their holder, so
// that the one refused can say who holds it and since when.
package lock

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strings"
	"syscall"
	"time"
)

// Holder is who holds a lock: the operator (user@host), the process, the mage target and
// the moment it was taken.
type Holder struct {
	Who    string    `json:"who"`
	PID    int       `json:"pid"`
	Target string    `json:"target"`
	Since  time.Time `json:"since"`
	// PIDSpace names the kernel boot and PID namespace PID belongs to, so that a later
	// process in the same space can tell the holder is dead (see Dead).
	PIDSpace string `json:"pid_space,omitempty"`
}

// Me is the holder record of this process running the mage target named target.
func Me(target string) Holder {
	return Holder{Who: operator(), PID: os.Getpid(), Target: target, Since: time.Now().UTC().Truncate(time.Second), PIDSpace: pidSpace()}
}

// Dead reports whether h's process is known to be gone: it ran in this process's PID space
// (same boot, same PID namespace) and no process has its PID now. A holder from another
// machine, container or boot is never known dead: only unlock clears its lock.
func (h Holder) Dead() bool {
	if h.PIDSpace == "" || h.PIDSpace != pidSpace() || h.PID <= 0 {
		return false
	}
	return errors.Is(syscall.Kill(h.PID, 0), syscall.ESRCH)
}

// pidSpace is this kernel boot's random ID and this process's PID namespace; "" when either
// cannot be read, which makes no holder ever known dead.
func pidSpace() string {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(boot)) + "/" + ns
}

// operator is user@host of the person running this process, as the releases and the audit
// log name them too.
func operator() string {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, err := os.Hostname()
	if err != nil {
		host = "unknown-host"
	}
	return name + "@" + host
}

// Marshal is the record as one line of JSON, without a newline: the remote lock compares it
// byte for byte to know that a lock is still its own.
func (h Holder) Marshal() []byte {
	b, _ := json.Marshal(h) // a struct of strings, an int and a time cannot fail
	return b
}

// ParseHolder reads a record written by Marshal.
func ParseHolder(b []byte) (Holder, error) {
	var h Holder
	if err := json.Unmarshal(b, &h); err != nil {
		return Holder{}, fmt.Errorf("lock holder record %q: %w", b, err)
	}
	return h, nil
}

// String names the holder for people: "root@ci-host pid 4123, deploy".
func (h Holder) String() string {
	return fmt.Sprintf("%s pid %d, %s", h.Who, h.PID, h.Target)
}

// HeldError is the refusal of a lock that another holder has. Holder is nil when the record
// could not be read: the holder was between taking the lock and writing it.
type HeldError struct {
	Where  string // "this machine" or the target's address
	Holder *Holder
}

func (e *HeldError) Error() string {
	if e.Holder == nil {
		return fmt.Sprintf("another deploy holds the lock on %s (its holder is not recorded yet)", e.Where)
	}
	return fmt.Sprintf("another deploy holds the lock on %s since %s (%s)", e.Where, e.Holder.Since.Format(time.RFC3339), e.Holder)
}

// holderOf parses a record read from a held lock; an unreadable one (empty while the holder
// writes it) gives nil rather than an error, since the lock is held either way.
func holderOf(b []byte) *Holder {
	h, err := ParseHolder(b)
	if err != nil {
		return nil
	}
	return &h
}
