package state

import (
	"path/filepath"
	"testing"
)

// TestLayout pins the state folder's layout to docs/DESIGN.md's table: other packages and a
// user's scripts find their files by these names.
func TestLayout(t *testing.T) {
	d := New("/srv/clock/.state")
	for got, want := range map[string]string{
		d.Root():                   "/srv/clock/.state",
		d.Key():                    "/srv/clock/.state/ssh/id_ed25519",
		d.KnownHosts():             "/srv/clock/.state/ssh/known_hosts",
		d.BaseImage("bookworm"):    "/srv/clock/.state/vm/debian12.img",
		d.BaseImage("bullseye"):    "/srv/clock/.state/vm/debian11.img",
		d.MinimalImage("bookworm"): "/srv/clock/.state/vm/debian12-minimal.img",
		d.Overlay("vm1"):           "/srv/clock/.state/vm/vm1.qcow2",
		d.ConsoleLog("vm1"):        "/srv/clock/.state/vm/vm1.console.log",
		d.DomainXML("vm1"):         "/srv/clock/.state/vm/vm1.xml",
		d.Unpinned("vm1"):          "/srv/clock/.state/vm/vm1.unpinned",
		d.Image("clock-api.tar"):   "/srv/clock/.state/images/clock-api.tar",
		d.Inventory():              "/srv/clock/.state/ansible/inventory.yml",
		d.DeployLock():             "/srv/clock/.state/deploy.lock",
	} {
		if got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
	if rel := New(".state"); !filepath.IsAbs(rel.Root()) {
		t.Errorf("New(.state) = %s, want an absolute folder: containers mount it", rel)
	}
}
