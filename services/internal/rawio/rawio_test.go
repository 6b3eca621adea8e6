//go:build linux

package rawio

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pair is a loopback TCP connection: the client end wrapped, and the server's end as it is.
func pair(t *testing.T) (wrapped net.Conn, peer net.Conn) {
	return pairWith(t, Wrap)
}

// pairWith is pair with the client end wrapped by wrap (Wrap or WrapClient).
func pairWith(t *testing.T, wrap func(net.Conn) net.Conn) (wrapped net.Conn, peer net.Conn) {
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
	wrapped = wrap(c)
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

// TestNoAllocations: a read and a write allocate nothing, with Wrap and WrapClient; a
// closure or method value made per call would be two allocations a request on the proxy's
// path.
func TestNoAllocations(t *testing.T) {
	for name, wrap := range map[string]func(net.Conn) net.Conn{"Wrap": Wrap, "WrapClient": WrapClient} {
		c, peer := pairWith(t, wrap)
		msg, buf := []byte("GET /clock HTTP/1.1\r\n\r\n"), make([]byte, 64)
		go io.Copy(peer, peer) // echo
		if n := testing.AllocsPerRun(200, func() {
			c.Write(msg)
			io.ReadFull(c, buf[:len(msg)])
		}); n != 0 {
			t.Errorf("%s: a write and a read allocate %.1f times, want 0", name, n)
		}
	}
}

// answerAfter has the peer read one request of len(want) bytes, check it, wait d and answer.
func answerAfter(t *testing.T, peer net.Conn, want string, d time.Duration, answer string) {
	t.Helper()
	go func() {
		got := make([]byte, len(want))
		if _, err := io.ReadFull(peer, got); err != nil || string(got) != want {
			t.Errorf("the peer read %q, %v; want %q", got, err, want)
			return
		}
		time.Sleep(d)
		peer.Write([]byte(answer))
	}()
}

// TestClientReadsOnce: WrapClient holds a request until the Read for its answer, and that
// Read makes one read system call where Wrap's makes two: the try before the wait, which finds
// nothing while the peer has not answered, is skipped.
func TestClientReadsOnce(t *testing.T) {
	for _, tc := range []struct {
		name  string
		wrap  func(net.Conn) net.Conn
		reads int
	}{{"Wrap", Wrap, 2}, {"WrapClient", WrapClient, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			c, peer := pairWith(t, tc.wrap)
			if n, err := c.Write([]byte("ask")); n != 3 || err != nil {
				t.Fatalf("Write = %d, %v; want 3, nil", n, err)
			}
			answerAfter(t, peer, "ask", 20*time.Millisecond, "answer")
			buf := make([]byte, 64)
			n, err := c.Read(buf)
			if string(buf[:n]) != "answer" || err != nil {
				t.Fatalf("Read = %q, %v; want \"answer\"", buf[:n], err)
			}
			if got := c.(*Conn).reads; got != tc.reads {
				t.Errorf("read system calls for an answer 20ms away = %d, want %d", got, tc.reads)
			}
		})
	}
}

// TestClientHoldsUntilRead: the peer gets nothing of a held write until the Read.
func TestClientHoldsUntilRead(t *testing.T) {
	c, peer := pairWith(t, WrapClient)
	c.Write([]byte("ask"))
	peer.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, err := peer.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the peer read %d bytes, %v before the Read; want nothing (a timeout)", n, err)
	}
	peer.SetReadDeadline(time.Time{})
	answerAfter(t, peer, "ask", 0, "ok")
	if b, err := io.ReadAll(io.LimitReader(c, 2)); string(b) != "ok" || err != nil {
		t.Errorf("Read = %q, %v; want \"ok\"", b, err)
	}
}

// TestClientPeerClosed: a peer that closed the idle connection before the request went
// answers it with a reset, so the Read ends at once with an error that an HTTP client
// retries on another connection (ECONNRESET, EPIPE or EOF), not at its deadline.
func TestClientPeerClosed(t *testing.T) {
	c, peer := pairWith(t, WrapClient)
	peer.Close()
	time.Sleep(50 * time.Millisecond) // the FIN arrives, and the poller reports it
	c.Write([]byte("GET /clock HTTP/1.1\r\n\r\n"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, err := c.Read(make([]byte, 64))
	if waited := time.Since(start); waited > time.Second || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read after the peer closed = %v after %s; want an error at once, not the deadline", err, waited)
	}
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) && err != io.EOF {
		t.Errorf("Read after the peer closed = %v; want ECONNRESET, EPIPE or io.EOF", err)
	}
}

// TestClientOrder: a write over 4 KiB goes at once, after what is held; so does Close.
func TestClientOrder(t *testing.T) {
	c, peer := pairWith(t, WrapClient)
	big := bytes.Repeat([]byte("b"), 64<<10)
	c.Write([]byte("small"))
	if n, err := c.Write(big); n != len(big) || err != nil {
		t.Fatalf("Write of 64 KiB = %d, %v", n, err)
	}
	c.Write([]byte("bye"))
	c.Close()
	got, err := io.ReadAll(peer)
	if want := "small" + string(big) + "bye"; string(got) != want || err != nil {
		t.Errorf("the peer got %d bytes (%q...), %v; want %d: the held write, the big one, then what Close sent", len(got), got[:min(len(got), 8)], err, len(want))
	}
}

// TestClientWriteWhileReading: a Write while a Read waits goes out at once, so a peer that
// answers only then is answered.
func TestClientWriteWhileReading(t *testing.T) {
	c, peer := pairWith(t, WrapClient)
	got := make(chan string, 1)
	go func() {
		b := make([]byte, 8)
		n, err := c.Read(b)
		if err != nil {
			t.Error(err)
		}
		got <- string(b[:n])
	}()
	time.Sleep(20 * time.Millisecond)
	answerAfter(t, peer, "ask", 0, "answer")
	c.Write([]byte("ask"))
	select {
	case s := <-got:
		if s != "answer" {
			t.Errorf("Read = %q, want \"answer\"", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the write made while a Read waited was held: no answer in 5s")
	}
}

// TestClientFullSocket: a held write that the socket takes only in part (its buffers are
// full) is finished the ordinary way, then the answer is read.
func TestClientFullSocket(t *testing.T) {
	c, peer := pairWith(t, WrapClient)
	c.SetWriteDeadline(time.Now().Add(time.Second))
	n, err := c.Write(make([]byte, 64<<20))
	if !isTimeout(err, "write") {
		t.Fatalf("Write of 64 MiB to a peer that reads nothing = %d, %v; want a timeout", n, err)
	}
	c.SetWriteDeadline(time.Time{})
	c.Write([]byte("ask"))
	go func() {
		time.Sleep(50 * time.Millisecond) // the Read finds the socket full
		if _, err := io.ReadFull(peer, make([]byte, n)); err != nil {
			t.Error(err)
			return
		}
		answerAfter(t, peer, "ask", 0, "ok")
	}()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, 8)
	if m, err := c.Read(b); string(b[:m]) != "ok" || err != nil {
		t.Errorf("Read = %q, %v; want \"ok\"", b[:m], err)
	}
}

// TestClientDeadlineKeepsHeld: a Read whose deadline has passed sends nothing and ends with a
// read timeout; the next Read sends the held request once.
func TestClientDeadlineKeepsHeld(t *testing.T) {
	c, peer := pairWith(t, WrapClient)
	c.Write([]byte("ask"))
	c.SetReadDeadline(time.Now().Add(-time.Second))
	if _, err := c.Read(make([]byte, 8)); !isTimeout(err, "read") {
		t.Fatalf("Read past its deadline = %v, want a read timeout", err)
	}
	c.SetReadDeadline(time.Time{})
	answerAfter(t, peer, "ask", 0, "ok")
	b := make([]byte, 8)
	if n, err := c.Read(b); string(b[:n]) != "ok" || err != nil {
		t.Errorf("Read = %q, %v; want \"ok\"", b[:n], err)
	}
	peer.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, _ := peer.Read(make([]byte, 8)); n != 0 {
		t.Errorf("the peer got %d more bytes: the held request was sent twice", n)
	}
}

func BenchmarkRoundTrip(b *testing.B) {
	for _, tc := range []struct {
		name string
		wrap func(net.Conn) net.Conn
	}{{"net", func(c net.Conn) net.Conn { return c }}, {"raw", Wrap}, {"client", WrapClient}} {
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
}

// TestClientUnderTLS: TLS over WrapClient, as an https API_URL has it: the handshake's
// writes are held until its reads, TLS 1.3's session tickets come unasked after it, and two
// requests on the connection are answered.
func TestClientUnderTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path)
	}))
	defer srv.Close()
	raw, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := tls.Client(WrapClient(raw), &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for _, path := range []string{"/one", "/two"} {
		if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: api\r\n\r\n"); err != nil {
			t.Fatalf("writing GET %s: %v", path, err)
		}
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("GET %s over TLS: %v", path, err)
		}
		body, err := io.ReadAll(res.Body)
		if string(body) != path || err != nil {
			t.Errorf("GET %s over TLS answered %q, %v", path, body, err)
		}
	}
}
