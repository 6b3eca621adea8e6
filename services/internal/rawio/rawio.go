//go:build linux

// Package rawio reads and writes a connected socket with raw system calls, which the runtime
// does not book as system calls.
//
// A read or write through net.Conn enters the runtime's system-call state and leaves it,
// and the entry wakes the runtime's monitor thread (sysmon) when it sleeps, as it does
// whenever every P of the process is idle. A proxy on one CPU is idle each time it waits for
// its upstream, so every request woke sysmon, which then polled every 20 us until it found
// the process idle again and slept. clock-web under wrk -c32 made 0.090 futex and 0.135
// nanosleep calls and 0.36 context switches a request with Go's calls, 0.011, 0.033 and
// 0.16 with raw ones, and its CPU a request was 0.937 of Go's over 8 alternating pairs
// (docs/MEASUREMENTS.md). The runtime books a system call so that it can hand the P to
// another thread while the call blocks; a read or write of a non-blocking socket never
// blocks (EAGAIN instead), so there is nothing to hand over.
//
// Waiting for the socket is still the runtime's network poller's (syscall.RawConn), with the
// connection's deadlines and Close as they are, and the errors are the ones net.Conn returns.
//
// The calls are recvfrom and sendto (with MSG_NOSIGNAL: EPIPE, not a SIGPIPE for the runtime
// to catch) rather than read and write. On a connected socket they do the same, without the
// file layer's part (fdget_pos, vfs_read and vfs_write, the iterator): a loopback write and
// read of 128 bytes took 8.8 us against 9.1 us (docs/MEASUREMENTS.md).
//
// WrapClient also saves the client of a request-response protocol a read per exchange: see
// there.
package rawio

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// Conn is a net.Conn whose Read and Write are raw system calls on its socket. Everything else
// is the wrapped connection's.
type Conn struct {
	net.Conn
	rc syscall.RawConn
	r  op // the one read under way
	w  op // the one write under way
	// The callbacks handed to rc, made once: a method value made per call would be an
	// allocation per read and per write.
	readFn, writeFn, sendFn, closeFn func(fd uintptr) bool

	// WrapClient's: a write held until the next Read sends it.
	hold     bool
	held     []byte      // what Write took and nothing has sent yet; under w.mu
	reading  atomic.Bool // a Read is under way: a Write then goes out at once
	first    bool        // the Read's first call of send; under r.mu
	released bool        // send sent everything and released w.mu; under r.mu
	// reads counts read system calls, for the tests; under r.mu.
	reads int
}

// maxHeld bounds what WrapClient holds: a larger write goes out at once.
const maxHeld = 4 << 10

// op is one direction's call in progress: the buffer, how much of it is done, the error.
type op struct {
	mu  sync.Mutex // one read (or one write) at a time, as net.Conn allows several callers
	buf []byte
	n   int
	err syscall.Errno
}

// Wrap returns c reading and writing with raw system calls, or c itself when it has no
// socket to hand (syscall.Conn) or its socket is in blocking mode, where a raw call would
// hold up the whole process instead of one goroutine.
func Wrap(c net.Conn) net.Conn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	nonblocking := false
	if rc.Control(func(fd uintptr) {
		fl, _, e := syscall.RawSyscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
		nonblocking = e == 0 && fl&syscall.O_NONBLOCK != 0
	}) != nil || !nonblocking {
		return c
	}
	rw := &Conn{Conn: c, rc: rc}
	rw.readFn, rw.writeFn, rw.sendFn = rw.read, rw.write, rw.send
	rw.closeFn = func(fd uintptr) bool { writeSome(fd, &rw.w); return true }
	return rw
}

// WrapClient is Wrap for the client end of a request-response protocol, such as clock-web's
// connections to the API. Go's Read tries the socket before it waits, and right after a
// request that try finds nothing: the peer cannot have answered what it has not been sent.
// So Write holds what it is given (up to 4 KiB, copied), and the next Read sends it once the
// runtime is ready to report the answer, then waits without that try: one read system call
// an exchange instead of two. A Write while a Read waits, one over 4 KiB, and Close send
// what is held at once, in order. An error of the held write is the next Read's: a write
// *net.OpError (EPIPE, ECONNRESET), as Write would have returned it. Reads and writes may
// still come from two goroutines, but a Read first waits for a Write under way to end: it is
// not for streams that write and read large amounts at once.
//
// The try is skipped only because a peer of such a protocol sends nothing unasked. A peer
// that closed the connection (FIN) just before the request was sent answers that request with
// a reset, which ends the wait at once; an answer left unread from an earlier request would
// wait for the next one, so the caller must read each answer whole, as an HTTP client does.
func WrapClient(c net.Conn) net.Conn {
	rw, ok := Wrap(c).(*Conn)
	if !ok {
		return c
	}
	rw.hold = true
	return rw
}

// read is one try at c.r: false to wait until the socket is readable.
func (c *Conn) read(fd uintptr) bool {
	for {
		c.reads++
		n, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&c.r.buf[0])), uintptr(len(c.r.buf)), 0, 0, 0)
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		c.r.n, c.r.err = int(n), e
		return true
	}
}

// write writes what is left of c.w: false to wait until the socket is writable.
func (c *Conn) write(fd uintptr) bool {
	return writeSome(fd, &c.w)
}

// writeSome writes what is left of o.buf: false when the socket takes no more (EAGAIN).
func writeSome(fd uintptr, o *op) bool {
	for o.n < len(o.buf) {
		rest := o.buf[o.n:]
		n, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&rest[0])), uintptr(len(rest)), syscall.MSG_NOSIGNAL, 0, 0)
		switch e {
		case 0:
			o.n += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			o.err = e
			return true
		}
	}
	return true
}

// send is Read's callback while a write is held (WrapClient): its first call sends what is
// held and, when all of it went, waits without trying to read; later calls read. It releases
// c.w.mu once the held bytes are sent; otherwise (part of them, or an error) it returns at
// once and Read finishes the write.
func (c *Conn) send(fd uintptr) bool {
	if !c.first {
		return c.read(fd)
	}
	c.first = false
	if !writeSome(fd, &c.w) || c.w.err != 0 {
		return true
	}
	c.held, c.w.buf, c.released = c.held[:0], nil, true
	c.w.mu.Unlock()
	return false
}

func (c *Conn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	c.r.buf, c.r.n, c.r.err = b, 0, 0
	defer func() { c.r.buf = nil }()
	if c.hold {
		defer c.reading.Store(false)
		done, err := c.sendHeld()
		if err != nil {
			return 0, err
		}
		if done {
			return c.readResult(nil)
		}
	}
	return c.readResult(c.rc.Read(c.readFn))
}

// readResult is what Read returns after the runtime's call ended with err and c.r.
func (c *Conn) readResult(err error) (int, error) {
	n, errno := c.r.n, c.r.err
	switch {
	case err != nil: // a deadline, or Close
		return 0, c.opError("read", err)
	case errno != 0:
		return 0, c.opError("read", os.NewSyscallError("read", errno))
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// sendHeld begins a Read of a WrapClient connection. It marks the Read under way, so that a
// Write meanwhile goes out at once, and sends what is held inside the runtime's wait for the
// answer (send). done: the answer was read into c.r; err is Read's error, a write's
// included. c.r.mu is held.
func (c *Conn) sendHeld() (done bool, err error) {
	c.w.mu.Lock() // a Write under way finishes first: the order of the bytes is kept
	c.reading.Store(true)
	if len(c.held) == 0 {
		c.w.mu.Unlock()
		return false, nil
	}
	c.w.buf, c.w.n, c.w.err, c.first, c.released = c.held, 0, 0, true, false
	err = c.rc.Read(c.sendFn)
	if c.released { // sent whole, then read or failed waiting
		if err != nil {
			return true, c.opError("read", err)
		}
		return true, nil
	}
	defer c.w.mu.Unlock()
	sent, errno := c.w.n, c.w.err
	c.w.buf = nil
	c.held = c.held[:copy(c.held, c.held[sent:])]
	switch {
	case errno != 0:
		c.held = c.held[:0]
		return true, c.writeError(errno)
	case err != nil: // the wait failed before the first call: everything stays held
		return true, c.opError("read", err)
	}
	// The socket took part of it: the rest the ordinary way, then the ordinary read.
	_, err = c.writeAll(c.held)
	c.held = c.held[:0]
	if err != nil {
		return true, err
	}
	return false, nil
}

func (c *Conn) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	if c.hold {
		if !c.reading.Load() && len(c.held)+len(b) <= maxHeld {
			c.held = append(c.held, b...)
			return len(b), nil
		}
		if len(c.held) > 0 {
			_, err := c.writeAll(c.held)
			c.held = c.held[:0]
			if err != nil {
				return 0, err
			}
		}
	}
	return c.writeAll(b)
}

// writeAll writes b the ordinary way: try, then wait until the socket is writable. c.w.mu is
// held.
func (c *Conn) writeAll(b []byte) (int, error) {
	c.w.buf, c.w.n, c.w.err = b, 0, 0
	err := c.rc.Write(c.writeFn)
	n, errno := c.w.n, c.w.err
	c.w.buf = nil
	switch {
	case err != nil:
		return n, c.opError("write", err)
	case errno != 0:
		return n, c.writeError(errno)
	}
	return n, nil
}

func (c *Conn) writeError(errno syscall.Errno) error {
	return c.opError("write", os.NewSyscallError("write", errno))
}

// Close sends what a WrapClient connection holds, as far as the socket takes it at once (a
// TLS close_notify, say), and closes the connection.
func (c *Conn) Close() error {
	if c.hold {
		c.w.mu.Lock()
		if len(c.held) > 0 {
			c.w.buf, c.w.n = c.held, 0
			c.rc.Write(c.closeFn)
			c.w.buf, c.held = nil, c.held[:0]
		}
		c.w.mu.Unlock()
	}
	return c.Conn.Close()
}

// opError is the error net.Conn's Read or Write returns: err is the system call's, or the
// poller's (a deadline, or Close), which RawConn returns as a "raw-read" or "raw-write" one.
func (c *Conn) opError(op string, err error) error {
	var raw *net.OpError
	if errors.As(err, &raw) {
		err = raw.Err
	}
	return &net.OpError{Op: op, Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// CloseWrite half-closes the connection, when the wrapped one can.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
