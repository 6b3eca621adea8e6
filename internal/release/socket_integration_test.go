//go:build integration

package release

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestSocketCreatesWhatTheCLIWould creates each container the engine describes twice on this
// machine's Docker, once with `docker create` and once through Socket, and compares what
// Docker made of them: every limit and hardening flag must survive the translation.
func TestSocketCreatesWhatTheCLIWould(t *testing.T) {
	ctx := t.Context()
	s := &Socket{Path: DockerSocket}
	set, spec := testSettings(), testSpec()
	set.Networks = Networks{Backend: "clock-sockettest-backend", Frontend: "clock-sockettest-frontend"}
	const img = "clock-sockettest:1"
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tar, err := PodTar(exe)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(ctx, tar, "import", "--change", `ENTRYPOINT ["/clockctl"]`, "-", img); err != nil {
		t.Fatal(err)
	}
	spec.API.ID, spec.Web.ID = img, img
	var made []string
	t.Cleanup(func() {
		_, _ = s.Run(context.Background(), nil, append([]string{"rm", "--force"}, made...)...)
		_, _ = s.Run(context.Background(), nil, "network", "rm", set.Networks.Backend, set.Networks.Frontend)
		_, _ = s.Run(context.Background(), nil, "image", "rm", img)
	})
	for _, n := range []string{set.Networks.Backend, set.Networks.Frontend} {
		if _, err := s.Run(ctx, nil, "network", "create", "--label", "clock.role=network", n); err != nil {
			t.Fatal(err)
		}
	}
	h := Hash(spec, set)
	for _, tc := range []struct {
		what string
		args []string
	}{
		{"the API pod", set.podArgs(API)},
		{"the web pod", set.podArgs(Web)},
		{"an API instance", set.instanceArgs(spec, h, API, 1)},
		{"a web instance", set.instanceArgs(spec, h, Web, 2)},
	} {
		if i := slices.Index(tc.args, PodImage); i > 0 {
			tc.args[i] = img // the pod image of this test, not the machine's
		}
		// Names of this test's own: the pods' real names belong to whatever else runs on
		// this Docker (test/release's switch, or a user's deploy), which a cleanup by name
		// would remove.
		real := flagValues(tc.args, "--name")[0]
		name := "sockettest-" + real
		tc.args[slices.Index(tc.args, real)] = name
		for i, a := range tc.args {
			if pod, ok := strings.CutPrefix(a, "container:"); ok {
				tc.args[i] = "container:sockettest-" + pod
			}
		}
		viaCLI := slices.Clone(tc.args)
		viaCLI[0] = "create"
		viaCLI = slices.DeleteFunc(viaCLI, func(a string) bool { return a == "--detach" })
		viaCLI[slices.Index(viaCLI, name)] = name + "-cli"
		made = append(made, name, name+"-cli")
		if out, err := exec.CommandContext(ctx, "docker", viaCLI...).CombinedOutput(); err != nil {
			t.Fatalf("%s: docker create: %v %s", tc.what, err, out)
		}
		if _, err := s.create(ctx, tc.args[1:]); err != nil {
			t.Fatalf("%s: Socket: %v", tc.what, err)
		}
		cli, sock := inspected(t, s, name+"-cli"), inspected(t, s, name)
		for _, part := range []string{"Config", "HostConfig", "Aliases"} {
			if !reflect.DeepEqual(cli[part], sock[part]) {
				a, _ := json.Marshal(cli[part])
				b, _ := json.Marshal(sock[part])
				t.Errorf("%s: %s differs:\n  docker create: %s\n  Socket:        %s", tc.what, part, a, b)
			}
		}
	}
}

// inspected is what Docker made of a container, without what differs by name or ID.
func inspected(t *testing.T, s *Socket, name string) map[string]any {
	t.Helper()
	out, err := s.call(t.Context(), "GET", "/containers/"+name+"/json", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Config          map[string]any
		HostConfig      map[string]any
		NetworkSettings struct {
			Networks map[string]struct{ Aliases []string }
		}
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	// Hostname is the ID; Attach* is what a `docker create` in a terminal attaches, never
	// set by docker run --detach, which the engine issues.
	for _, k := range []string{"Hostname", "AttachStdout", "AttachStderr"} {
		delete(v.Config, k)
	}
	if env, ok := v.Config["Env"].([]any); ok {
		slices.SortFunc(env, func(a, b any) int { return strings.Compare(a.(string), b.(string)) })
	}
	for _, m := range []map[string]any{v.Config, v.HostConfig} {
		for k, x := range m {
			if emptyJSON(x) {
				delete(m, k) // [] and {} mean what null does
			}
		}
	}
	aliases := map[string]any{}
	for n, e := range v.NetworkSettings.Networks {
		var keep []string
		for _, a := range e.Aliases {
			if !strings.HasPrefix(name, a) { // Docker adds the short ID at start, not at create
				keep = append(keep, a)
			}
		}
		aliases[n] = keep
	}
	return map[string]any{"Config": v.Config, "HostConfig": v.HostConfig, "Aliases": aliases}
}

func emptyJSON(x any) bool {
	switch x := x.(type) {
	case nil:
		return true
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}
