package deadline

import (
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// pair returns the two ends of a loopback TCP connection, the first one lazy; counted counts
// the deadlines it hands to the runtime.
func pair(t *testing.T) (c *Conn, peer net.Conn, counted *counting) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		a, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- a
	}()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	counted = &counting{Conn: d}
	c = Lazy(counted)
	t.Cleanup(func() { c.Close(); peer.Close() })
	return c, peer, counted
}

type counting struct {
	net.Conn
	reads, writes atomic.Int32
}

func (c *counting) SetReadDeadline(t time.Time) error {
	c.reads.Add(1)
	return c.Conn.SetReadDeadline(t)
}

func (c *counting) SetWriteDeadline(t time.Time) error {
	c.writes.Add(1)
	return c.Conn.SetWriteDeadline(t)
}

func TestLaterDeadlinesAreNotArmed(t *testing.T) {
	c, _, counted := pair(t)
	now := time.Now()
	for i := range 100 {
		later := now.Add(time.Hour + time.Duration(i)*time.Millisecond)
		if err := c.SetReadDeadline(later); err != nil {
			t.Fatal(err)
		}
		if err := c.SetWriteDeadline(later); err != nil {
			t.Fatal(err)
		}
		if err := c.SetReadDeadline(time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	if r, w := counted.reads.Load(), counted.writes.Load(); r != 1 || w != 1 {
		t.Errorf("100 later deadlines and 100 cleared ones armed %d read and %d write deadlines, want 1 and 1", r, w)
	}
	// An earlier one is armed at once.
	if err := c.SetReadDeadline(now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if r := counted.reads.Load(); r != 2 {
		t.Errorf("an earlier read deadline: %d armed in all, want 2", r)
	}
}

// TestReadOutlivesAnEarlierDeadline: the runtime holds 50 ms, the caller asked for more; the
// answer at 200 ms is read, not a timeout.
func TestReadOutlivesAnEarlierDeadline(t *testing.T) {
	for _, later := range []time.Time{time.Now().Add(10 * time.Second), {}} {
		c, peer, _ := pair(t)
		if err := c.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		if err := c.SetReadDeadline(later); err != nil {
			t.Fatal(err)
		}
		go func() {
			time.Sleep(200 * time.Millisecond)
			peer.Write([]byte("x"))
		}()
		var b [1]byte
		if n, err := c.Read(b[:]); n != 1 || err != nil {
			t.Fatalf("deadline %v: Read = %d, %v; want the byte sent at 200 ms", later, n, err)
		}
	}
}

// TestReadTimesOutAtTheCallersDeadline: not at the earlier one the runtime held, and with the
// error net.Conn gives.
func TestReadTimesOutAtTheCallersDeadline(t *testing.T) {
	c, _, _ := pair(t)
	start := time.Now()
	if err := c.SetReadDeadline(start.Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadDeadline(start.Add(300 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	_, err := c.Read(b[:])
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read: %v, want a deadline error", err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("Read: %v is not a net.Error timeout", err)
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("Read timed out after %v, before the 300 ms deadline", took)
	}
	// The spent deadline does not hold for the next one.
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := c.Read(b[:]); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("Read after a new deadline returned at once: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	c.SetReadDeadline(time.Now())
	if err := <-done; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Read: %v, want a deadline error", err)
	}
}

// TestPastDeadlineInterruptsRead is net/http's abort of its background read: a deadline in
// the past set while a Read waits under a later one ends that Read.
func TestPastDeadlineInterruptsRead(t *testing.T) {
	c, _, _ := pair(t)
	if err := c.SetReadDeadline(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		var b [1]byte
		_, err := c.Read(b[:])
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := c.SetReadDeadline(time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("Read: %v, want a deadline error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a deadline in the past did not end the Read")
	}
	// Cleared again, as net/http does after the abort: a Read waits for data.
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	go func() {
		var b [1]byte
		_, err := c.Read(b[:])
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Read with no deadline returned: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestWriteOutlivesAnEarlierDeadline: a write that fills the socket waits past the runtime's
// earlier deadline for a peer that starts reading at 300 ms, and writes everything.
func TestWriteOutlivesAnEarlierDeadline(t *testing.T) {
	c, peer, _ := pair(t)
	if err := c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := c.SetWriteDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 32<<20) // more than both sockets' buffers
	got := make(chan int64, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		n, _ := io.Copy(io.Discard, peer)
		got <- n
	}()
	n, err := c.Write(big)
	if n != len(big) || err != nil {
		t.Fatalf("Write = %d of %d, %v", n, len(big), err)
	}
	c.Close()
	if r := <-got; r != int64(len(big)) {
		t.Errorf("the peer read %d bytes, want %d", r, len(big))
	}
}

// TestWriteTimesOutAtTheCallersDeadline: a write that the runtime's earlier deadline cuts
// goes on until the caller's. The caller's is a second away: with 300 ms, a CI run beside it
// once passed it before the first byte was written (0 bytes, a deadline error).
func TestWriteTimesOutAtTheCallersDeadline(t *testing.T) {
	c, _, _ := pair(t)
	big := make([]byte, 32<<20) // more than both sockets' buffers; the peer reads nothing
	start := time.Now()
	c.SetWriteDeadline(start.Add(50 * time.Millisecond))
	c.SetWriteDeadline(start.Add(time.Second))
	n, err := c.Write(big)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write: %v, want a deadline error", err)
	}
	if n == 0 || n == len(big) {
		t.Errorf("Write wrote %d bytes, want some but not all", n)
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("Write timed out after %v, before the 1 s deadline", took)
	}
}
