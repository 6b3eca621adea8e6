package ansible

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clock-app/clock/internal/sshx"
)

// TestDeployLive runs site.yml twice and stop.yml against a real machine. Set:
//
//	CLOCK_ANSIBLE_LIVE_TARGET  host:port of the machine's SSH server (user root)
//	CLOCK_ANSIBLE_LIVE_STATE   state folder with ssh/known_hosts and images/clock-{api,web}.tar
//	CLOCK_ANSIBLE_LIVE_KEY     private key that logs in (served through an in-process agent)
//	CLOCK_ANSIBLE_LIVE_IMAGES  the two image tags inside the archives, "clock-api:x,clock-web:x"
//
// The runner image is built (or found) first. The second deploy must change nothing.
func TestDeployLive(t *testing.T) {
	target := os.Getenv("CLOCK_ANSIBLE_LIVE_TARGET")
	if target == "" {
		t.Skip("set CLOCK_ANSIBLE_LIVE_TARGET (and _STATE, _KEY, _IMAGES) to deploy to a real machine")
	}
	host, portStr, _ := strings.Cut(target, ":")
	port, err := strconv.Atoi(portStr)
	if err != nil {
		t.Fatalf("CLOCK_ANSIBLE_LIVE_TARGET=%q: want host:port", target)
	}
	images := strings.Split(os.Getenv("CLOCK_ANSIBLE_LIVE_IMAGES"), ",")
	if len(images) != 2 {
		t.Fatal("CLOCK_ANSIBLE_LIVE_IMAGES: want clock-api:<tag>,clock-web:<tag>")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()

	project := filepath.Join("..", "..", "deploy", "ansible")
	out := &stampWriter{start: time.Now()}
	image, err := EnsureRunnerImage(ctx, ImageOptions{
		Dockerfile: filepath.Join(project, "Dockerfile"), Progress: out, Output: out,
	})
	if err != nil {
		t.Fatal(err)
	}
	socket, stop, err := sshx.AgentConfig{ClientUID: -1}.StartFromFile(os.Getenv("CLOCK_ANSIBLE_LIVE_KEY"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stop() })

	r := Runner{
		Image: image, ProjectDir: project, StateDir: os.Getenv("CLOCK_ANSIBLE_LIVE_STATE"),
		AgentSocket: socket, Output: out, Progress: out,
	}
	tgt := Target{Host: host, Port: port}
	vars := Vars{APIImage: images[0], WebImage: images[1], APIEnv: map[string]string{"CLOCK_API_LOG_LEVEL": "debug"}}
	line, err := r.CommandLine(PlaybookDeploy, vars)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("command line: %s", line)

	for i, want := range []int{-1, 0} {
		began := time.Now()
		recap, err := r.Deploy(ctx, tgt, vars)
		t.Logf("deploy %d took %s: %s", i+1, time.Since(began).Round(time.Second), recap)
		if err != nil {
			t.Fatalf("deploy %d: %v", i+1, err)
		}
		if want == 0 && recap.Changed() != 0 {
			t.Errorf("deploy %d: changed=%d, want 0", i+1, recap.Changed())
		}
	}
	if os.Getenv("CLOCK_ANSIBLE_LIVE_NO_STOP") != "" {
		return
	}
	began := time.Now()
	recap, err := r.Stop(ctx, tgt)
	t.Logf("stop took %s: %s", time.Since(began).Round(time.Second), recap)
	if err != nil {
		t.Fatalf("stop: %v", err)
	}
}

// stampWriter prints each line to stdout with the time since start, to time the phases.
type stampWriter struct {
	mu    sync.Mutex
	start time.Time
	buf   bytes.Buffer
}

func (w *stampWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		line, err := w.buf.ReadString('\n')
		if err != nil {
			w.buf.WriteString(line)
			return len(p), nil
		}
		fmt.Printf("[%7.1fs] %s", time.Since(w.start).Seconds(), line)
	}
}
