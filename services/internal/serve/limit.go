package serve

import (
	"net"
	"sync"
	"time"
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
	return &limitListener{Listener: ln, sem: make(chan struct{}, n), done: make(chan struct{}),
		idle: map[net.Conn]time.Time{}}
}

type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{} // closed by Close: a waiting Accept returns
	closeOnce sync.Once

	mu   sync.Mutex
	idle map[net.Conn]time.Time // idle keep-alive connections, by when they went idle
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
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

// evictIdle closes the connection that has been idle longest, if any.
func (l *limitListener) evictIdle() {
	l.mu.Lock()
	var oldest net.Conn
	var since time.Time
	for c, t := range l.idle {
		if oldest == nil || t.Before(since) {
			oldest, since = c, t
		}
	}
	delete(l.idle, oldest)
	l.mu.Unlock()
	if oldest != nil {
		_ = oldest.Close()
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
	l.mu.Lock()
	defer l.mu.Unlock()
	if idle {
		l.idle[c] = time.Now()
	} else {
		delete(l.idle, c)
	}
}

func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite lets the server half-close a connection before an error answer such as 431, as
// it does on a bare *net.TCPConn, so the client reads the answer instead of a reset.
func (c *limitConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
