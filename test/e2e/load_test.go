package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hostileLoad is a bounded attack on one HTTP server by many connections that
// each cost the server memory while giving it nothing to answer.
type hostileLoad struct {
	// addr is the server's host:port on loopback.
	addr string
	// slowConns connections each trickle an unfinished request whose one
	// header line grows by chunk bytes every step up to headerLine bytes, then
	// by one byte a step, never ending the line. A connection the server
	// closes or answers is dialled again.
	slowConns, headerLine, chunk int
	step                         time.Duration
	// idleConns connections each send one complete GET /clock, read the
	// answer and then sit idle on the kept-alive connection; one the server
	// closes is dialled again.
	idleConns int
	// duration bounds the whole attack.
	duration time.Duration
}

// loadStats counts what the attack saw.
type loadStats struct {
	slowDials, slowDialErrors, slowAnswered, slowClosed             atomic.Int64
	idleDials, idleDialErrors, idleAnswered, idleFailed, idleClosed atomic.Int64
	bytesSent                                                       atomic.Int64
}

func (s *loadStats) String() string {
	return fmt.Sprintf("slow-header connections: %d dialled (%d dial errors), %d answered by the server, %d closed by it, %d bytes sent; "+
		"idle keep-alive connections: %d dialled (%d dial errors), %d got a 200, %d got no 200, %d closed by the server while idle",
		s.slowDials.Load(), s.slowDialErrors.Load(), s.slowAnswered.Load(), s.slowClosed.Load(), s.bytesSent.Load(),
		s.idleDials.Load(), s.idleDialErrors.Load(), s.idleAnswered.Load(), s.idleFailed.Load(), s.idleClosed.Load())
}

// runningLoad is an attack under way.
type runningLoad struct {
	stats  loadStats
	wg     sync.WaitGroup
	cancel context.CancelFunc
	done   <-chan struct{}
}

// start begins the attack; it ends by itself after l.duration, or when the
// test ends, whichever comes first.
func (l hostileLoad) start(t *testing.T) *runningLoad {
	t.Helper()
	if l.chunk <= 0 || l.step <= 0 || l.duration <= 0 || l.headerLine < l.chunk {
		t.Fatalf("hostileLoad %+v: chunk, step and duration must be positive and headerLine at least chunk", l)
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.duration)
	r := &runningLoad{cancel: cancel, done: ctx.Done()}
	// Each connection lasts at least one step, so this bounds the dials a
	// worker makes even against a server that closes every connection at once.
	maxDials := int(l.duration/l.step) + 1
	for range l.slowConns {
		r.wg.Go(func() {
			for i := 0; i < maxDials && ctx.Err() == nil; i++ {
				l.slowConn(ctx, &r.stats)
			}
		})
	}
	for range l.idleConns {
		r.wg.Go(func() {
			for i := 0; i < maxDials && ctx.Err() == nil; i++ {
				l.idleConn(ctx, &r.stats)
			}
		})
	}
	t.Cleanup(func() { r.stop() })
	return r
}

// stop ends the attack (if it still runs) and waits until every connection is closed.
func (r *runningLoad) stop() *loadStats {
	r.cancel()
	r.wg.Wait()
	return &r.stats
}

// dialer bounds a dial: the kernel completes a loopback handshake at once,
// unless the listen queue is full.
var dialer = net.Dialer{Timeout: 2 * time.Second}

// slowConn runs one slow-header connection until the server closes or
// answers it, or ctx ends.
func (l hostileLoad) slowConn(ctx context.Context, st *loadStats) {
	conn, err := dialer.DialContext(ctx, "tcp", l.addr)
	if err != nil {
		st.slowDialErrors.Add(1)
		pause(ctx, l.step)
		return
	}
	st.slowDials.Add(1)
	defer conn.Close()
	stopUnblock := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stopUnblock()

	head := "GET /clock HTTP/1.1\r\nHost: clock\r\nX-Padding: "
	if err := write(conn, head, st); err != nil {
		st.slowClosed.Add(1)
		return
	}
	pad := strings.Repeat("a", l.chunk)
	var buf [1]byte
	for sent := 0; ctx.Err() == nil; {
		next := pad
		if sent >= l.headerLine {
			next = pad[:1]
		}
		if err := write(conn, next, st); err != nil {
			if ctx.Err() == nil {
				st.slowClosed.Add(1)
				pause(ctx, l.step)
			}
			return
		}
		sent += len(next)
		// Waiting for an answer paces the trickle and sees the server give up.
		conn.SetReadDeadline(time.Now().Add(l.step))
		_, err := conn.Read(buf[:])
		if isTimeout(err) {
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			st.slowAnswered.Add(1)
		} else {
			st.slowClosed.Add(1)
		}
		pause(ctx, l.step)
		return
	}
}

// idleConn runs one idle keep-alive connection until the server closes it or ctx ends.
func (l hostileLoad) idleConn(ctx context.Context, st *loadStats) {
	conn, err := dialer.DialContext(ctx, "tcp", l.addr)
	if err != nil {
		st.idleDialErrors.Add(1)
		pause(ctx, l.step)
		return
	}
	st.idleDials.Add(1)
	defer conn.Close()
	stopUnblock := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stopUnblock()

	if err := write(conn, "GET /clock HTTP/1.1\r\nHost: clock\r\n\r\n", st); err != nil {
		st.idleFailed.Add(1)
		pause(ctx, l.step)
		return
	}
	br := bufio.NewReader(conn)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err == nil {
		_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<10))
		resp.Body.Close()
	}
	switch {
	case ctx.Err() != nil:
		return
	case err != nil || resp.StatusCode != http.StatusOK:
		st.idleFailed.Add(1)
		pause(ctx, l.step)
		return
	}
	st.idleAnswered.Add(1)
	// Idle until the attack ends; a read that returns before that is the
	// server closing the connection.
	conn.SetReadDeadline(time.Time{})
	if _, _ = br.ReadByte(); ctx.Err() == nil {
		st.idleClosed.Add(1)
		pause(ctx, l.step)
	}
}

func write(conn net.Conn, s string, st *loadStats) error {
	conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	n, err := io.WriteString(conn, s)
	st.bytesSent.Add(int64(n))
	return err
}

func isTimeout(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded)
}

// pause waits d or until ctx ends: it spaces out a worker's redials, so that
// a server that refuses or drops connections is not hammered in a tight loop.
func pause(ctx context.Context, d time.Duration) {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
	case <-tm.C:
	}
}

// pollStats is what a normal client saw while it polled /clock.
type pollStats struct {
	ok, failed int
	// latencies are the requests' times, answered or not, in order.
	latencies []time.Duration
	// errs are the first few failures, for the test's message.
	errs []string
}

// clockPoller is a normal client: a browser tab that asks for /clock every
// interval over one kept-alive connection, each answer due within timeout.
type clockPoller struct {
	url      string
	interval time.Duration
	timeout  time.Duration
	client   *http.Client
}

func newClockPoller(baseURL string, interval, timeout time.Duration) *clockPoller {
	return &clockPoller{
		url:      baseURL + "/clock",
		interval: interval,
		timeout:  timeout,
		client: &http.Client{
			Timeout:   timeout,
			Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1, IdleConnTimeout: time.Minute},
		},
	}
}

// once asks for /clock one time and returns why the answer is not a clock, or "".
func (p *clockPoller) once(ctx context.Context) (time.Duration, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return 0, err.Error()
	}
	began := time.Now()
	resp, err := p.client.Do(req)
	if err != nil {
		return time.Since(began), err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	took := time.Since(began)
	switch {
	case err != nil:
		return took, "read body: " + err.Error()
	case resp.StatusCode != http.StatusOK:
		return took, fmt.Sprintf("status %d, body %q", resp.StatusCode, b)
	}
	if _, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64); err != nil {
		return took, fmt.Sprintf("body %q is not a clock", b)
	}
	return took, ""
}

// pollUntil polls until done is closed, at most limit times.
func (p *clockPoller) pollUntil(t *testing.T, done <-chan struct{}, limit int) pollStats {
	t.Helper()
	var ps pollStats
	tick := time.NewTicker(p.interval)
	defer tick.Stop()
	for range limit {
		took, why := p.once(t.Context())
		ps.latencies = append(ps.latencies, took)
		if why == "" {
			ps.ok++
		} else {
			ps.failed++
			if len(ps.errs) < 5 {
				ps.errs = append(ps.errs, fmt.Sprintf("after %v: %s", took.Round(time.Millisecond), why))
			}
		}
		select {
		case <-done:
			return ps
		case <-t.Context().Done():
			return ps
		case <-tick.C:
		}
	}
	return ps
}

// latency is the median and the largest of the requests' times.
func (ps pollStats) latency() (median, slowest time.Duration) {
	if len(ps.latencies) == 0 {
		return 0, 0
	}
	sorted := slices.Sorted(slices.Values(ps.latencies))
	return sorted[len(sorted)/2], sorted[len(sorted)-1]
}
