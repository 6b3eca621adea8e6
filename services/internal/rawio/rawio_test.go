//go:build linux

package rawio

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pair is a loopback TCP connection: the client end wrapped, and the server's end as it is.
func pair(t testing.TB) (wrapped net.Conn, peer net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer = <-accepted
	wrapped = Wrap(c)
	if _, ok := wrapped.(*Conn); !ok {
		t.Fatalf("Wrap of a TCP connection = %T, want *Conn", wrapped)
	}
	t.Cleanup(func() { wrapped.Close(); peer.Close() })
	return wrapped, peer
}

// TestBothWays sends 8 MiB each way at once through one wrapped connection: far more than the
// socket buffers hold, so writes stop short and wait (EAGAIN) and reads find nothing at
// times, while the other direction goes on.
func TestBothWays(t *testing.T) {
	c, peer := pair(t)
	out, in := make([]byte, 8<<20), make([]byte, 8<<20)
	rand.Read(out)
	rand.Read(in)
	var wg sync.WaitGroup
	var got, peerGot []byte
	var readErr, peerErr error
	wg.Add(3)
	go func() { // the wrapped end writes
		defer wg.Done()
		if n, err := c.Write(out); n != len(out) || err != nil {
			t.Errorf("Write of %d bytes = %d, %v; want all of them", len(out), n, err)
		}
	}()
	go func() { // the wrapped end reads, in small pieces
		defer wg.Done()
		var b bytes.Buffer
		buf := make([]byte, 1500)
		for b.Len() < len(in) {
			n, err := c.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				readErr = err
				break
			}
		}
		got = b.Bytes()
	}()
	go func() { // the peer writes its 8 MiB and reads ours
		defer wg.Done()
		go peer.Write(in)
		peerGot = make([]byte, len(out))
		_, peerErr = io.ReadFull(peer, peerGot)
	}()
	wg.Wait()
	if readErr != nil || peerErr != nil {
		t.Fatalf("read errors: wrapped %v, peer %v", readErr, peerErr)
	}
	if !bytes.Equal(got, in) || !bytes.Equal(peerGot, out) {
		t.Errorf("bytes differ: wrapped read %d of %d right, peer %d of %d", prefix(got, in), len(in), prefix(peerGot, out), len(out))
	}
}

func prefix(a, b []byte) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// TestEOFAndZeroLength: a closed peer is io.EOF once its bytes are read, and a read or write
// of nothing is (0, nil) without a system call to wait on.
func TestEOFAndZeroLength(t *testing.T) {
	c, peer := pair(t)
	if n, err := c.Read(nil); n != 0 || err != nil {
		t.Errorf("Read(nil) = %d, %v; want 0, nil", n, err)
	}
	if n, err := c.Write(nil); n != 0 || err != nil {
		t.Errorf("Write(nil) = %d, %v; want 0, nil", n, err)
	}
	peer.Write([]byte("bye"))
	peer.Close()
	b, err := io.ReadAll(c)
	if string(b) != "bye" || err != nil {
		t.Errorf("ReadAll after the peer closed = %q, %v; want \"bye\", nil (io.EOF at the end)", b, err)
	}
	if n, err := c.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Errorf("Read after EOF = %d, %v; want 0, io.EOF", n, err)
	}
}

// TestWriteToResetPeer: writing to a peer that reset the connection fails as net.Conn's
// Write does, with the system call's error.
func TestWriteToResetPeer(t *testing.T) {
	c, peer := pair(t)
	peer.(*net.TCPConn).SetLinger(0) // close with a reset
	peer.Close()
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = c.Write(make([]byte, 64<<10))
		time.Sleep(time.Millisecond)
	}
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "write" || !(errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)) {
		t.Errorf("Write to a reset peer = %v, want a write *net.OpError with ECONNRESET or EPIPE", err)
	}
}

// TestDeadlines: a read with nothing to read and a write into full buffers end at their
// deadlines with net.Conn's timeout error; a later deadline lets them go on.
func TestDeadlines(t *testing.T) {
	c, peer := pair(t)
	start := time.Now()
	c.SetReadDeadline(start.Add(50 * time.Millisecond))
	n, err := c.Read(make([]byte, 8))
	if waited := time.Since(start); n != 0 || !isTimeout(err, "read") || waited < 50*time.Millisecond {
		t.Errorf("Read past its deadline = %d, %v after %s; want a read timeout (os.ErrDeadlineExceeded) after 50ms", n, err, waited)
	}
	c.SetReadDeadline(time.Time{})
	peer.Write([]byte("x"))
	if n, err := c.Read(make([]byte, 8)); n != 1 || err != nil {
		t.Errorf("Read after the deadline was lifted = %d, %v; want 1, nil", n, err)
	}

	// The peer reads nothing: the socket buffers fill and the write waits for its deadline.
	c.SetWriteDeadline(time.Now().Add(time.Second))
	n, err = c.Write(make([]byte, 64<<20))
	if !isTimeout(err, "write") || n == 0 || n == 64<<20 {
		t.Errorf("Write into full buffers = %d, %v; want part of it written, then a write timeout", n, err)
	}
}

func isTimeout(err error, op string) bool {
	var o *net.OpError
	return errors.As(err, &o) && o.Op == op && o.Timeout() && errors.Is(err, os.ErrDeadlineExceeded)
}

// TestCloseEndsAWaitingRead: Close from another goroutine ends a read that waits, with
// net.ErrClosed, as it does on a net.Conn.
func TestCloseEndsAWaitingRead(t *testing.T) {
	c, _ := pair(t)
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 8))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	c.Close()
	select {
	case err := <-done:
		var o *net.OpError
		if !errors.Is(err, net.ErrClosed) || !errors.As(err, &o) || o.Op != "read" {
			t.Errorf("Read ended by Close = %v, want a read *net.OpError with net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still waits 5s after Close")
	}
}

// TestWrapLeavesOthers: a connection without a socket, and a socket in blocking mode (where
// a raw call would stop every goroutine of the thread's P), are returned as they are.
func TestWrapLeavesOthers(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if w := Wrap(a); w != a {
		t.Errorf("Wrap(net.Pipe end) = %T, want it as it was", w)
	}
	c, _ := pair(t)
	tc := c.(*Conn).Conn.(*net.TCPConn)
	rc, _ := tc.SyscallConn()
	if err := rc.Control(func(fd uintptr) { syscall.SetNonblock(int(fd), false) }); err != nil {
		t.Fatal(err)
	}
	if w := Wrap(tc); w != net.Conn(tc) {
		t.Errorf("Wrap of a blocking socket = %T, want it as it was", w)
	}
}

// TestNoAllocations: a read and a write allocate nothing; a closure or method value made
// per call would be two allocations a request on the proxy's path.
func TestNoAllocations(t *testing.T) {
	c, peer := pair(t)
	msg, buf := []byte("GET /clock HTTP/1.1\r\n\r\n"), make([]byte, 64)
	go io.Copy(peer, peer) // echo
	if n := testing.AllocsPerRun(200, func() {
		c.Write(msg)
		io.ReadFull(c, buf[:len(msg)])
	}); n != 0 {
		t.Errorf("a write and a read allocate %.1f times, want 0", n)
	}
}

// TestSendOnRead: a request handed to SendOnRead goes out with the next Read, in order with
// what Write sent before it, and the Read returns the answer; a thousand exchanges in a row
// on one connection, as the proxy makes them, allocate nothing.
func TestSendOnRead(t *testing.T) {
	c, peer := pair(t)
	rc := c.(*Conn)
	go io.Copy(peer, peer) // echo
	c.Write([]byte("first "))
	rc.SendOnRead([]byte("second"))
	got := make([]byte, 12)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "first second" {
		t.Fatalf("ReadFull after Write and SendOnRead = %q, %v; want \"first second\"", got, err)
	}
	msg, buf := []byte("GET /clock HTTP/1.1\r\n\r\n"), make([]byte, 64)
	if n := testing.AllocsPerRun(1000, func() {
		rc.SendOnRead(msg)
		if _, err := io.ReadFull(c, buf[:len(msg)]); err != nil || !bytes.Equal(buf[:len(msg)], msg) {
			t.Fatalf("exchange = %q, %v; want the request echoed", buf[:len(msg)], err)
		}
	}); n != 0 {
		t.Errorf("an exchange with SendOnRead allocates %.1f times, want 0", n)
	}
}

// TestSendOnReadLarge: a request the socket cannot take at once (8 MiB) is sent whole, the
// rest the ordinary way, before the Read waits for the answer.
func TestSendOnReadLarge(t *testing.T) {
	c, peer := pair(t)
	req := make([]byte, 8<<20)
	rand.Read(req)
	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, len(req))
		io.ReadFull(peer, b)
		got <- b
		peer.Write([]byte("done"))
	}()
	c.(*Conn).SendOnRead(req)
	answer := make([]byte, 4)
	if _, err := io.ReadFull(c, answer); err != nil || string(answer) != "done" {
		t.Fatalf("ReadFull after an 8 MiB SendOnRead = %q, %v; want \"done\"", answer, err)
	}
	if b := <-got; !bytes.Equal(b, req) {
		t.Errorf("the peer read %d of %d bytes right", prefix(b, req), len(req))
	}
}

// TestSendOnReadResetPeer: a request on a connection the peer reset fails in the Read as
// Write fails: a write *net.OpError with ECONNRESET or EPIPE, which the proxy retries (a
// read one, should the reset come after the send, is retried the same).
func TestSendOnReadResetPeer(t *testing.T) {
	c, peer := pair(t)
	peer.(*net.TCPConn).SetLinger(0)
	peer.Close()
	time.Sleep(20 * time.Millisecond) // the reset is in
	c.(*Conn).SendOnRead([]byte("GET /clock HTTP/1.1\r\n\r\n"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 64))
	var op *net.OpError
	if !errors.As(err, &op) || (op.Op != "write" && op.Op != "read") || !(errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)) {
		t.Errorf("Read after SendOnRead to a reset peer = %v, want a write (or read) *net.OpError with ECONNRESET or EPIPE", err)
	}
}

// TestSendOnReadClosedPeer: a peer that closed its socket answers the request with a reset,
// which ends the wait at once.
func TestSendOnReadClosedPeer(t *testing.T) {
	c, peer := pair(t)
	peer.Close()
	time.Sleep(20 * time.Millisecond) // the FIN is in, before the Read begins
	c.(*Conn).SendOnRead([]byte("GET /clock HTTP/1.1\r\n\r\n"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 64))
	if err == nil || isTimeout(err, "read") {
		t.Errorf("Read after SendOnRead to a closed peer = %v, want it to end before its deadline with an error", err)
	}
}

// TestSendOnReadMissesAnEarlierFIN is why the proxy sends this way only on a connection that
// answered within the last 10 ms: a FIN that came while the connection was idle is not
// seen by the wait, so a peer that half-closed and stays silent (as one whose network is
// gone) holds the Read until its deadline; Write and Read see the end at once.
func TestSendOnReadMissesAnEarlierFIN(t *testing.T) {
	c, peer := pair(t)
	peer.(*net.TCPConn).CloseWrite()
	time.Sleep(20 * time.Millisecond) // the FIN is in
	req := []byte("GET /clock HTTP/1.1\r\n\r\n")
	c.(*Conn).SendOnRead(req)
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := c.Read(make([]byte, 64)); !isTimeout(err, "read") {
		t.Errorf("Read after SendOnRead to a half-closed silent peer = %v, want a read timeout", err)
	}

	c, peer = pair(t)
	peer.(*net.TCPConn).CloseWrite()
	time.Sleep(20 * time.Millisecond)
	c.Write(req)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 64)); err != io.EOF {
		t.Errorf("Read after Write to a half-closed silent peer = %v, want io.EOF at once", err)
	}
}

// TestSendOnReadDeadlinePassed: a Read whose deadline has passed before it began sends
// nothing; the request goes out with the next Read.
func TestSendOnReadDeadlinePassed(t *testing.T) {
	c, peer := pair(t)
	go io.Copy(peer, peer)
	c.SetReadDeadline(time.Now().Add(-time.Second))
	c.(*Conn).SendOnRead([]byte("ping"))
	if _, err := c.Read(make([]byte, 4)); !isTimeout(err, "read") {
		t.Fatalf("Read past its deadline = %v, want a read timeout", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 4)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "ping" {
		t.Errorf("the next Read = %q, %v; want the request sent and echoed", b, err)
	}
}

func BenchmarkRoundTrip(b *testing.B) {
	for _, tc := range []struct {
		name string
		wrap func(net.Conn) net.Conn
	}{{"net", func(c net.Conn) net.Conn { return c }}, {"raw", Wrap}} {
		b.Run(tc.name, func(b *testing.B) {
			ln, _ := net.Listen("tcp", "127.0.0.1:0")
			defer ln.Close()
			go func() {
				p, _ := ln.Accept()
				io.Copy(p, p)
			}()
			c0, _ := net.Dial("tcp", ln.Addr().String())
			c := tc.wrap(c0)
			defer c.Close()
			msg, buf := make([]byte, 128), make([]byte, 128)
			b.ReportAllocs()
			for b.Loop() {
				c.Write(msg)
				io.ReadFull(c, buf)
			}
		})
	}
	b.Run("sendonread", func(b *testing.B) {
		c, peer := pair(b)
		go io.Copy(peer, peer)
		rc := c.(*Conn)
		msg, buf := make([]byte, 128), make([]byte, 128)
		b.ReportAllocs()
		for b.Loop() {
			rc.SendOnRead(msg)
			io.ReadFull(c, buf)
		}
	})
}
