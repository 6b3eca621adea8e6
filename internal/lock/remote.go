package lock

import (
	"bytes"
	"context"
	"fmt"
	"strings"
)

// RemotePath is the lock on the target: a directory, because mkdir is atomic on every
// filesystem, with the holder record in it.
const RemotePath = "/var/lib/clock/lock"

// Runner runs a shell command on the target and returns its standard output; a non-zero
// exit is an error.
type Runner interface {
	Run(ctx context.Context, cmd string) ([]byte, error)
}

// Remote is the lock of one target.
type Remote struct {
	Run   Runner
	Where string // the target's address, for messages
	Path  string // RemotePath on a target; a temporary folder in tests
	Sudo  bool   // run the commands with sudo -n (the SSH user is not root)
}

// The scripts answer with a status word on the first line and the holder record after it.
// Each is a single command, so one SSH round trip decides.
const (
	takeScript = `d=%[1]s; mkdir -p -m 0755 "${d%%/*}" || exit 1
if mkdir -m 0700 "$d" 2>/dev/null; then printf '%%s' %[2]s >"$d/holder" || { rm -rf -- "$d"; exit 1; }; echo taken
elif [ -d "$d" ]; then echo held; cat "$d/holder" 2>/dev/null || true
else mkdir "$d"; exit 1; fi`
	// release removes the lock only while it is still this holder's: after an unlock
	// another deploy may hold it.
	releaseScript = `d=%[1]s; if [ "$(cat "$d/holder" 2>/dev/null)" = %[2]s ]; then rm -rf -- "$d" && echo released
elif [ -d "$d" ]; then echo other; cat "$d/holder" 2>/dev/null || true; else echo gone; fi`
	clearScript = `d=%[1]s; if [ -d "$d" ]; then echo cleared; cat "$d/holder" 2>/dev/null; rm -rf -- "$d"; else echo free; fi`
)

func (r Remote) run(ctx context.Context, script string, args ...any) (status string, holder *Holder, err error) {
	cmd := fmt.Sprintf(script, args...)
	if r.Sudo {
		cmd = "sudo -n sh -c " + shellQuote(cmd)
	}
	out, err := r.Run.Run(ctx, cmd)
	if err != nil {
		return "", nil, err
	}
	first, rest, _ := bytes.Cut(out, []byte("\n"))
	return string(first), holderOf(bytes.TrimSpace(rest)), nil
}

// Take takes the target's lock for h, or fails at once with a *HeldError naming the holder.
func (r Remote) Take(ctx context.Context, h Holder) error {
	status, holder, err := r.run(ctx, takeScript, shellQuote(r.Path), shellQuote(string(h.Marshal())))
	switch {
	case err != nil:
		return fmt.Errorf("take the deploy lock %s on %s: %w", r.Path, r.Where, err)
	case status == "held":
		return &HeldError{Where: r.Where, Holder: holder}
	case status != "taken":
		return fmt.Errorf("take the deploy lock %s on %s: unexpected answer %q", r.Path, r.Where, status)
	}
	return nil
}

// Release gives up h's lock on the target. A lock that is gone or someone else's (cleared
// by unlock meanwhile) is left alone, and said so.
func (r Remote) Release(ctx context.Context, h Holder) error {
	status, holder, err := r.run(ctx, releaseScript, shellQuote(r.Path), shellQuote(string(h.Marshal())))
	switch {
	case err != nil:
		return fmt.Errorf("release the deploy lock %s on %s: %w (if it stays, run unlock)", r.Path, r.Where, err)
	case status == "other":
		return fmt.Errorf("the deploy lock on %s is no longer ours: %w; left alone", r.Where, &HeldError{Where: r.Where, Holder: holder})
	case status == "gone":
		return fmt.Errorf("the deploy lock on %s was cleared while we held it; nothing to release", r.Where)
	case status != "released":
		return fmt.Errorf("release the deploy lock %s on %s: unexpected answer %q", r.Path, r.Where, status)
	}
	return nil
}

// Clear removes the target's lock whoever holds it, for a holder that died (its machine
// with it), and returns that holder: nil, false when there was no lock.
func (r Remote) Clear(ctx context.Context) (holder *Holder, cleared bool, err error) {
	status, holder, err := r.run(ctx, clearScript, shellQuote(r.Path))
	switch {
	case err != nil:
		return nil, false, fmt.Errorf("clear the deploy lock %s on %s: %w", r.Path, r.Where, err)
	case status == "free":
		return nil, false, nil
	case status != "cleared":
		return nil, false, fmt.Errorf("clear the deploy lock %s on %s: unexpected answer %q", r.Path, r.Where, status)
	}
	return holder, true, nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
