package serve

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clock-app/clock/services/internal/envcfg"
	"github.com/clock-app/clock/services/internal/rawio"
)

// testConfig is Config at its defaults.
func testConfig() Config {
	var c Config
	if err := envcfg.Load("T", &c, func(string) string { return "" }); err != nil {
		panic(err)
	}
	return c
}

// startServe runs Serve with handler on a loopback listener (capped at maxConns when > 0)
// until the test ends, and returns the address.
func startServe(tb testing.TB, host string, maxConns int, handler http.Handler) string {
	tb.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		tb.Fatal(err)
	}
	if maxConns > 0 {
		ln = LimitListener(ln, maxConns)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, testConfig(), ln, handler, slog.New(slog.DiscardHandler)) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })

// rawStatus sends raw on a fresh connection and returns the answer's status code.
func rawStatus(tb testing.TB, addr, raw string) int {
	tb.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		tb.Fatalf("write: %v", err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		tb.Fatalf("read the answer: %v", err)
	}
	res.Body.Close()
	return res.StatusCode
}

func TestServeHeaderLimit(t *testing.T) {
	addr := startServe(t, "127.0.0.1", 0, okHandler)
	for _, tc := range []struct {
		name  string
		extra int // bytes of one extra header's value
		want  int
	}{
		{"small", 100, http.StatusOK},
		{"just under the limit", MaxHeaderBytes - 200, http.StatusOK},
		// net/http allows 4 KiB of slack past MaxHeaderBytes before it answers 431.
		{"over the limit", MaxHeaderBytes + 4096, http.StatusRequestHeaderFieldsTooLarge},
		{"far over", 1 << 20, http.StatusRequestHeaderFieldsTooLarge},
	} {
		raw := "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", tc.extra) + "\r\n\r\n"
		if got := rawStatus(t, addr, raw); got != tc.want {
			t.Errorf("%s (%d bytes): status %d, want %d", tc.name, len(raw), got, tc.want)
		}
	}
}

// dialHeld opens n connections to addr that each hold a slot: with idle, after one answered
// request (an idle keep-alive connection); without, in the middle of their headers.
func dialHeld(tb testing.TB, addr string, n int, idle bool) []net.Conn {
	tb.Helper()
	var held []net.Conn
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { c.Close() })
		if !idle {
			if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "); err != nil {
				tb.Fatal(err)
			}
			held = append(held, c)
			continue
		}
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			tb.Fatal(err)
		}
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			tb.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		held = append(held, c)
		// net/http reports the connection idle just after the answer is out, and the client
		// can read it first: without a pause the next connection may go idle before this one,
		// and the eviction order the tests check would be the scheduler's.
		time.Sleep(50 * time.Millisecond)
	}
	return held
}

// request sends one GET on a fresh connection and returns a channel for its outcome.
func request(tb testing.TB, addr string) <-chan error {
	tb.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		tb.Fatal(err)
	}
	answered := make(chan error, 1)
	go func() {
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil {
			res.Body.Close()
		}
		answered <- err
	}()
	return answered
}

// Two servers on one port: only with ReusePort, and then both are bound at once, which is
// what lets a release start beside the running one (DESIGN.md, "Releases").
func TestListenReusePort(t *testing.T) {
	ctx := t.Context()
	first, err := Listen(ctx, Config{Host: "127.0.0.1", ReusePort: true}, 0, StdIO)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	port := envcfg.Port(first.Addr().(*net.TCPAddr).Port)
	if ln, err := Listen(ctx, Config{Host: "127.0.0.1"}, port, StdIO); err == nil {
		ln.Close()
		t.Fatalf("a second listener without ReusePort bound port %d, want address in use", port)
	}
	second, err := Listen(ctx, Config{Host: "127.0.0.1", ReusePort: true}, port, RawIO)
	if err != nil {
		t.Fatalf("a second listener with ReusePort on port %d: %v", port, err)
	}
	second.Close()
}

func TestLimitListenerHoldsAtMostN(t *testing.T) {
	const n = 2
	addr := startServe(t, "127.0.0.1", n, okHandler)
	// n clients in the middle of their headers take every slot (for READ_HEADER_TIMEOUT, 5s).
	held := dialHeld(t, addr, n, false)
	// One more is connected by the kernel but not served while the slots are held.
	answered := request(t, addr)
	// A bounded wait for something that must not happen: an answer here means no cap.
	select {
	case err := <-answered:
		t.Fatalf("connection %d was served (err %v) while %d slots were held", n+1, err, n)
	case <-time.After(300 * time.Millisecond):
	}
	held[0].Close() // frees a slot
	select {
	case err := <-answered:
		if err != nil {
			t.Errorf("connection %d after a slot was freed: %v", n+1, err)
		}
	case <-time.After(4 * time.Second): // before READ_HEADER_TIMEOUT would free one anyway
		t.Fatalf("connection %d not served after a slot was freed", n+1)
	}
}

func TestLimitListenerEvictsIdleConnections(t *testing.T) {
	const n = 2
	addr := startServe(t, "127.0.0.1", n, okHandler)
	// An idle keep-alive flood takes every slot, for IDLE_TIMEOUT (60s) if nothing is done.
	held := dialHeld(t, addr, n, true)
	select {
	case err := <-request(t, addr):
		if err != nil {
			t.Errorf("new client while idle connections held every slot: %v, want an answer", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("new client not served while only idle connections held the slots")
	}
	// Exactly one idle connection made room, the one idle longest (the first dialled): the
	// other still works.
	var closed []int
	for i, c := range held {
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); errors.Is(err, io.EOF) {
			closed = append(closed, i)
		}
	}
	if len(closed) != 1 || closed[0] != 0 {
		t.Errorf("connections %v closed to make room for one client, want [0], the longest idle", closed)
	}
}

func TestLimitListenerCloseWakesAccept(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := LimitListener(ln, 1)
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	first, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	done := make(chan error, 1)
	go func() { _, err := l.Accept(); done <- err }() // waits for the slot
	l.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still waiting after Close")
	}
	// Closing a connection twice frees one slot, not two.
	first.Close()
	first.Close()
	if got := len(l.(*limitListener).sem); got != 0 {
		t.Errorf("%d slots taken after the only connection closed, want 0", got)
	}
}

func TestHealthcheckDialsTheConfiguredHost(t *testing.T) {
	// A server that listens on 127.0.0.2 only: the default loopback address does not reach it.
	addr := startServe(t, "127.0.0.2", 0, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
		}
	}))
	_, p, _ := net.SplitHostPort(addr)
	port, err := envcfg.ParsePort(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := Healthcheck(context.Background(), "127.0.0.2", port); err != nil {
		t.Errorf("Healthcheck(127.0.0.2): %v, want nil", err)
	}
	err = Healthcheck(context.Background(), "", port)
	var hf *HealthcheckFailed
	if !errors.As(err, &hf) || ExitCode(err) != 1 {
		t.Errorf("Healthcheck(\"\") of a server on 127.0.0.2 only: %v, want a HealthcheckFailed (exit 1)", err)
	}
}

func TestHealthcheckStatus(t *testing.T) {
	addr := startServe(t, "127.0.0.1", 0, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	_, p, _ := net.SplitHostPort(addr)
	port, _ := envcfg.ParsePort(p)
	err := Healthcheck(context.Background(), "0.0.0.0", port)
	if ExitCode(err) != 1 || err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("Healthcheck of a 503: %v, want a failure naming 503, exit 1", err)
	}
}

func TestDialHost(t *testing.T) {
	for in, want := range map[envcfg.Host]string{
		"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1", "127.0.0.2": "127.0.0.2",
		"10.1.2.3": "10.1.2.3", "::1": "::1", "clock-api": "clock-api",
	} {
		if got := dialHost(in); got != want {
			t.Errorf("dialHost(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestExitCode(t *testing.T) {
	cfgErr := &envcfg.Error{Key: "K", Value: "v", Reason: "r"}
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("listen: address in use"), 1},
		{cfgErr, 2},
		{fmt.Errorf("wrapped: %w", cfgErr), 2},
		{&UsageError{Msg: "unknown command"}, 2},
		// Docker reserves 2 for health checks: a bad configuration there is still 1.
		{&HealthcheckFailed{Err: cfgErr}, 1},
		{&HealthcheckFailed{Err: errors.New("refused")}, 1},
	} {
		if got := ExitCode(tc.err); got != tc.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

// TestMain runs Main in a child process for the signal tests: the child serves a handler
// that never finishes until the process ends, so only a second signal can end a drain early.
func TestMain(m *testing.M) {
	if os.Getenv("SERVE_TEST_CHILD") == "1" {
		Main("child", func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
			cfg := testConfig()
			cfg.ShutdownTimeout = 20 * time.Second
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			logger := slog.New(slog.NewJSONHandler(stdout, nil))
			block := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				logger.Info("in handler")
				select {}
			})
			return Serve(ctx, cfg, ln, block, logger)
		})
	}
	os.Exit(m.Run())
}

// child is the test binary running Main, with its log lines.
type child struct {
	cmd   *exec.Cmd
	lines chan string
	addr  string
}

func startChild(t *testing.T) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SERVE_TEST_CHILD=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	c := &child{cmd: cmd, lines: make(chan string, 100)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	line := c.waitFor(t, `"msg":"listening"`)
	_, rest, _ := strings.Cut(line, `"addr":"`)
	c.addr, _, _ = strings.Cut(rest, `"`)
	return c
}

func (c *child) waitFor(t *testing.T, s string) string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				t.Fatalf("child exited before logging %s", s)
			}
			if strings.Contains(line, s) {
				return line
			}
		case <-timeout:
			t.Fatalf("child did not log %s within 10s", s)
		}
	}
}

// exitCode waits (bounded) for the child to exit and returns its status.
func (c *child) exitCode(t *testing.T, within time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatalf("wait: %v", err)
		}
		return 0
	case <-time.After(within):
		t.Fatalf("child still running %v after the signal", within)
		return -1
	}
}

func TestMainFirstSignalDrains(t *testing.T) {
	c := startChild(t)
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got := c.exitCode(t, 10*time.Second); got != 0 {
		t.Errorf("exit code after SIGTERM with nothing in flight: %d, want 0", got)
	}
}

func TestMainSecondSignalStopsAtOnce(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			c := startChild(t)
			// A request that never finishes keeps the drain waiting for its 20 s.
			conn, err := net.Dial("tcp", c.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			c.waitFor(t, `"msg":"in handler"`)
			if err := c.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			c.waitFor(t, `"msg":"shutting down"`)
			if err := c.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if got := c.exitCode(t, 5*time.Second); got != 1 {
				t.Errorf("exit code after a second %v: %d, want 1", sig, got)
			}
		})
	}
}

func TestRemoteAddrIsTheConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := LimitListener(ln, 1)
	defer l.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	accepted, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer accepted.Close()
	if got, want := RemoteAddr(accepted), c.LocalAddr().String(); got != want {
		t.Errorf("RemoteAddr of an accepted connection = %q, want the client's %q", got, want)
	}
	// Any other connection: its own RemoteAddr, formatted, or nothing for none.
	if got, want := RemoteAddr(c), ln.Addr().String(); got != want {
		t.Errorf("RemoteAddr of a dialled connection = %q, want %q", got, want)
	}
	if got := RemoteAddr(noAddrConn{c}); got != "" {
		t.Errorf("RemoteAddr of a connection without an address = %q, want \"\"", got)
	}
}

type noAddrConn struct{ net.Conn }

func (noAddrConn) RemoteAddr() net.Addr { return nil }

// TestListenIO: a RawIO listener's connections read and write with raw system calls, a
// StdIO one's with net.Conn's own, and both carry bytes.
func TestListenIO(t *testing.T) {
	for _, tc := range []struct {
		mode IO
		raw  bool
	}{{StdIO, false}, {RawIO, true}} {
		ln, err := Listen(t.Context(), Config{Host: "127.0.0.1"}, 0, tc.mode)
		if err != nil {
			t.Fatal(err)
		}
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		_, raw := c.(*limitConn).Conn.Conn.(*rawio.Conn)
		if raw != tc.raw {
			t.Errorf("IO %d: accepted connection raw = %v, want %v", tc.mode, raw, tc.raw)
		}
		client.Write([]byte("ping"))
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
			t.Errorf("IO %d: read %q, %v; want ping", tc.mode, buf, err)
		}
		client.Close()
		c.Close()
		ln.Close()
	}
}
