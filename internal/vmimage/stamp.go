package vmimage

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"

	"golang.org/x/crypto/ssh"

	"github.com/clock-app/clock/internal/fsx"
)

// BuilderVersion changes whenever the recipe changes in a way that needs a rebuild.
//
//	1: first recipe
//	2: ed25519 host key only (faster first boot under TCG)
//	3: DHCP client ID = MAC, so a re-created VM keeps its address
//	4: the SSH host key printed on the serial console, for vm:up to pin
//	5: systemd-resolved without LLMNR and mDNS (no 5355/5353 listeners)
const BuilderVersion = "5"

// stamp records the inputs of a finished build next to the image (<image>.stamp).
type stamp struct {
	Builder      string   `json:"builder"`
	Suite        string   `json:"suite"`
	Mirror       string   `json:"mirror"`
	Security     string   `json:"security_mirror"`
	Packages     []string `json:"packages"`
	SizeBytes    int64    `json:"size_bytes"`
	Hostname     string   `json:"hostname"`
	PublicKeySHA string   `json:"public_key_sha256"`
	BuiltAt      string   `json:"built_at,omitempty"` // informative, not compared
}

func newStamp(o Options) stamp {
	pkgs := slices.Clone(o.Packages)
	slices.Sort(pkgs)
	pkgs = slices.Compact(pkgs)
	return stamp{
		Builder:      BuilderVersion,
		Suite:        o.Suite,
		Mirror:       o.Mirror,
		Security:     o.SecurityMirror,
		Packages:     pkgs,
		SizeBytes:    o.SizeBytes,
		Hostname:     o.Hostname,
		PublicKeySHA: keysHash(o.PublicKey),
	}
}

// keysHash identifies the authorized keys by their wire form, so a comment or a trailing
// newline (the .pub file versus sshx.Key.AuthorizedKey) does not force a rebuild.
func keysHash(authorized []byte) string {
	h := sha256.New()
	rest := authorized
	for len(bytes.TrimSpace(rest)) > 0 {
		key, _, _, next, err := ssh.ParseAuthorizedKey(rest)
		if err != nil {
			// Validate rejects unparsable keys; hash the text so the stamp still differs.
			h.Write(bytes.TrimSpace(rest))
			break
		}
		h.Write(key.Marshal())
		rest = next
	}
	return hex.EncodeToString(h.Sum(nil))
}

// sameInputs reports whether two stamps describe the same build.
func (s stamp) sameInputs(o stamp) bool {
	s.BuiltAt, o.BuiltAt = "", ""
	a, _ := json.Marshal(s)
	b, _ := json.Marshal(o)
	return bytes.Equal(a, b)
}

func stampPath(image string) string { return image + ".stamp" }

// readStamp returns the stamp beside image; a missing or unreadable stamp is reported as
// ok=false so the caller rebuilds.
func readStamp(image string) (s stamp, ok bool) {
	data, err := os.ReadFile(stampPath(image))
	if err != nil {
		return stamp{}, false
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return stamp{}, false
	}
	return s, true
}

func writeStamp(image string, s stamp) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return fsx.WriteFileAtomic(stampPath(image), append(data, '\n'), 0o644)
}

// UpToDate reports whether image exists and its stamp records the same inputs as o (after
// defaults), i.e. whether Build would skip.
func UpToDate(o Options) (bool, error) {
	o = o.withDefaults()
	if err := o.Validate(); err != nil {
		return false, err
	}
	return upToDate(o)
}

func upToDate(o Options) (bool, error) {
	if _, err := os.Stat(o.Output); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("image %s: %w", o.Output, err)
	}
	old, ok := readStamp(o.Output)
	return ok && old.sameInputs(newStamp(o)), nil
}
