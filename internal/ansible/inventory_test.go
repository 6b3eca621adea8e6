package ansible

import (
	"strings"
	"testing"
)

// TestRenderInventoryMarksStringsUnsafe: a value with Jinja in it stays data.
func TestRenderInventoryMarksStringsUnsafe(t *testing.T) {
	got, err := RenderInventory(Target{Host: "{{ lookup('pipe', 'id') }}", User: "{{ x }}"})
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(got), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ": ")
		if !ok || !strings.HasPrefix(v, `"`) && !strings.HasPrefix(v, "!unsafe") {
			continue
		}
		if !strings.HasPrefix(v, `!unsafe "`) {
			t.Errorf("%s: %s is a string without !unsafe", k, v)
		}
	}
	if !strings.Contains(string(got), `ansible_host: !unsafe "{{ lookup('pipe', 'id') }}"`) {
		t.Errorf("inventory:\n%s\nwant the host as an !unsafe string", got)
	}
}
