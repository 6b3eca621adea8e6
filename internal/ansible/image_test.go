package ansible

import (
	"regexp"
	"testing"
)

func TestRunnerTag(t *testing.T) {
	df := []byte("FROM x\n")
	a := RunnerTag(df, map[string]string{"ANSIBLE_VERSION": "7.7.*", "YAMLLINT_VERSION": "1.29.*"})
	if !regexp.MustCompile(`^clock-ansible:[0-9a-f]{12}$`).MatchString(a) {
		t.Fatalf("RunnerTag = %q, want clock-ansible:<12 hex>", a)
	}
	if b := RunnerTag(df, map[string]string{"YAMLLINT_VERSION": "1.29.*", "ANSIBLE_VERSION": "7.7.*"}); b != a {
		t.Errorf("tag depends on map order: %q != %q", b, a)
	}
	if b := RunnerTag(df, map[string]string{"ANSIBLE_VERSION": "7.7.*", "YAMLLINT_VERSION": "1.29.*",
		"BASE_IMAGE": "clock-base:bookworm"}); b != a {
		t.Errorf("tag depends on BASE_IMAGE: %q != %q", b, a)
	}
	if b := RunnerTag(df, map[string]string{"ANSIBLE_VERSION": "7.8.*", "YAMLLINT_VERSION": "1.29.*"}); b == a {
		t.Errorf("tag ignores a changed build arg: %q", b)
	}
	if b := RunnerTag([]byte("FROM y\n"), nil); b == a || b == RunnerTag(df, nil) {
		t.Errorf("tag ignores the Dockerfile: %q", b)
	}
}
