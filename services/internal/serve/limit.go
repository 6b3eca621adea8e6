package serve

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clock-app/clock/services/internal/deadline"
	"github.com/clock-app/clock/services/internal/rawio"
)

// What a lingering close (Linger) reads of a client's input before the socket is closed, at
// most: the bound on what one refused request can make the server read and wait for.
// net/http waits 500 ms for the same reason (its rstAvoidanceDelay); nginx reads for up to
// 30 s (lingering_time).
const (
	lingerTime  = time.Second
	lingerBytes = 1 << 20
)

// LimitListener returns a listener that holds at most n accepted connections open at once:
// Accept waits for a slot before it returns the next connection from ln, so the ones beyond
// n+1 stay in the kernel's accept queue instead of in the process's memory. A slot is freed when
// its connection is closed (by the server's timeouts, the client, or the drain).
//
// When every slot is taken and one of them is an idle keep-alive connection, Accept closes
// the longest idle one to make room (the server reports idle connections through
// IdleHook): an idle keep-alive flood then cannot lock out a new client for
// IDLE_TIMEOUT. A client whose idle connection is closed just as it reuses it sees what any
// server's idle close looks like, and retries. Slow clients still sending their headers are
// not evicted; READ_HEADER_TIMEOUT ends their hold.
//
// golang.org/x/net/netutil has the plain cap; this one adds the eviction and keeps clock-web
// free of dependencies.
func LimitListener(ln net.Listener, n int) net.Listener {
	return newLimitListener(ln, n, StdIO)
}

func newLimitListener(ln net.Listener, n int, mode IO) *limitListener {
	return &limitListener{Listener: ln, io: mode, sem: make(chan struct{}, n), done: make(chan struct{}),
		conns: map[*limitConn]struct{}{}}
}

// IO is how a listener's connections read and write.
type IO int

const (
	// StdIO is net.Conn's own reads and writes.
	StdIO IO = iota
	// RawIO is raw system calls (package rawio), which do not wake the runtime's monitor
	// thread each time the server has been idle: for a server that waits on an upstream on the
	// same CPU, as clock-web does (rawio's doc has the figures). clock-api, which never waits,
	// measured no gain.
	RawIO
)

type limitListener struct {
	net.Listener
	io        IO
	sem       chan struct{}
	done      chan struct{} // closed by Close: a waiting Accept returns
	closeOnce sync.Once

	// idleOrder numbers the moments connections go idle, so that the smallest number marks
	// the longest idle one. A counter, not the clock: the hook runs twice a request.
	idleOrder atomic.Uint64

	mu    sync.Mutex
	conns map[*limitConn]struct{} // the open connections; changed per connection, not per request
}

func (l *limitListener) Accept() (net.Conn, error) {
	// The connection is taken first, so that an idle one is evicted only for a client that is
	// really waiting; at most this one connection is held beyond the cap.
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	select {
	case l.sem <- struct{}{}:
	default:
		l.evictIdle()
		select {
		case l.sem <- struct{}{}:
		case <-l.done:
			c.Close()
			return nil, net.ErrClosed
		}
	}
	rc := c
	if l.io == RawIO {
		rc = rawio.Wrap(c)
	}
	lc := &limitConn{Conn: deadline.Lazy(rc), l: l, remote: addrString(c.RemoteAddr())}
	l.mu.Lock()
	l.conns[lc] = struct{}{}
	l.mu.Unlock()
	return lc, nil
}

// evictIdle closes the connection that has been idle longest, if any. It claims the
// connection first, so that one which has just become busy is passed over.
func (l *limitListener) evictIdle() {
	for {
		l.mu.Lock()
		var oldest *limitConn
		var since uint64
		for c := range l.conns {
			if n := c.idleSince.Load(); n != 0 && (oldest == nil || n < since) {
				oldest, since = c, n
			}
		}
		l.mu.Unlock()
		if oldest == nil {
			return
		}
		if oldest.idleSince.CompareAndSwap(since, 0) {
			_ = oldest.Close()
			return
		}
	}
}

// IdleHook returns what a server calls when a connection accepted from ln goes idle between
// two requests (idle true) or becomes busy or closed (false), so that the cap can evict the
// longest idle one; nil when ln has no cap. Serve installs it itself; a server of another
// kind (clock-web's fasthttp) wires it to its own connection-state callback.
func IdleHook(ln net.Listener) func(c net.Conn, idle bool) {
	if l, ok := ln.(*limitListener); ok {
		return l.setIdle
	}
	return nil
}

func (l *limitListener) setIdle(c net.Conn, idle bool) {
	lc, ok := c.(*limitConn)
	if !ok {
		return
	}
	if idle {
		lc.idleSince.Store(l.idleOrder.Add(1))
	} else {
		lc.idleSince.Store(0)
	}
}

func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

// limitConn is a connection that holds a slot of its listener until it is closed. Its
// deadlines are lazy (package deadline): fasthttp sets three a request, net/http more. Its
// reads and writes are raw system calls when its listener's IO is RawIO.
type limitConn struct {
	*deadline.Conn
	l         *limitListener
	remote    string        // RemoteAddr().String(), for the access log's every line
	idleSince atomic.Uint64 // l.idleOrder when it went idle; 0 while busy
	linger    atomic.Bool   // Close drains the client's input first (Linger)
	once      sync.Once
}

// RemoteAddr is c.RemoteAddr().String(), formatted once per connection for one accepted from a
// LimitListener: an access log writes it on every request.
func RemoteAddr(c net.Conn) string {
	if lc, ok := c.(*limitConn); ok {
		return lc.remote
	}
	return addrString(c.RemoteAddr())
}

// addrString is a.String(), or "" for no address: a connection the kernel reported none for
// must not take the server down.
func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// Linger makes the next Close of c, a connection accepted from a LimitListener, a lingering
// close: it half-closes c, so the client gets the answer and then the end of the stream, and
// reads and discards what the client still sends (at most lingerBytes, for at most
// lingerTime) before closing it. A server calls it before an answer that refuses a request it
// has not read whole (431, 413): closing a socket with unread input makes the kernel send a
// reset, and a client still writing its request then sees "connection reset" instead of the
// answer. Any other connection is left alone.
func Linger(c net.Conn) {
	if lc, ok := c.(*limitConn); ok {
		lc.linger.Store(true)
	}
}

func (c *limitConn) Close() error {
	if c.linger.CompareAndSwap(true, false) {
		if cw, ok := c.Conn.Conn.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil &&
			c.SetReadDeadline(time.Now().Add(lingerTime)) == nil {
			_, _ = io.CopyN(io.Discard, c.Conn, lingerBytes)
		}
	}
	err := c.Conn.Close()
	c.once.Do(func() {
		c.idleSince.Store(0)
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
		<-c.l.sem
	})
	return err
}

// CloseWrite lets the server half-close a connection before an error answer such as 431, as
// it does on a bare *net.TCPConn, so the client reads the answer instead of a reset.
func (c *limitConn) CloseWrite() error {
	if cw, ok := c.Conn.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
