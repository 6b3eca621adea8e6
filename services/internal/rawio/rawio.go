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
// SendOnRead also saves the client of a request-response protocol a read an exchange: see
// there.
//
// The calls are recvfrom and sendto (with MSG_NOSIGNAL: EPIPE, not a SIGPIPE for the runtime
// to catch) rather than read and write. On a connected socket they do the same, without the
// file layer's part (fdget_pos, vfs_read and vfs_write, the iterator): a loopback write and
// read of 128 bytes took 8.8 us against 9.1 us (docs/MEASUREMENTS.md).
package rawio

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
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
	readFn, writeFn, askFn func(fd uintptr) bool

	// SendOnRead's request, under r.mu: what is left to send (ask), and the error sending it
	// met (askErr).
	ask    []byte
	askErr syscall.Errno
}

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
	rw.readFn, rw.writeFn, rw.askFn = rw.read, rw.write, rw.sendThenWait
	return rw
}

// read is one try at c.r: false to wait until the socket is readable.
func (c *Conn) read(fd uintptr) bool {
	for {
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
	for c.w.n < len(c.w.buf) {
		rest := c.w.buf[c.w.n:]
		n, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&rest[0])), uintptr(len(rest)), syscall.MSG_NOSIGNAL, 0, 0)
		switch e {
		case 0:
			c.w.n += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.w.err = e
			return true
		}
	}
	return true
}

// SendOnRead hands the request b to the next Read, which sends it from inside the runtime's
// wait for the answer and then waits for the answer without first trying to read it.
//
// Go's Read tries the socket before it waits, and right after a request that try finds
// nothing: the peer cannot have answered yet. Sent this way an exchange costs one read system
// call instead of two; on a host where a system call costs a microsecond that is 4% of
// clock-web's hop to the API (docs/MEASUREMENTS.md).
//
// The try is also how a client learns at once that the peer closed the connection while it
// was idle (FIN): that edge came before the wait began, so the wait does not see it. Most
// peers answer a request on a connection they closed with a reset, which ends the wait, but
// one whose network is gone (a stopped container) answers nothing, and the wait lasts until
// the deadline. So use it only on a connection that has not been idle long enough for its
// peer to have closed it and gone (clock-web: within 10 ms of its last answer, see
// proxy.go), and write the ordinary way otherwise.
//
// b is not copied and must not change until the Read returns. Call it with no Read or Write
// under way, and read the answer whole before the next request, as an HTTP client does. An
// error sending b is the Read's: a write *net.OpError, as Write would have returned it.
func (c *Conn) SendOnRead(b []byte) {
	c.r.mu.Lock()
	c.ask = b
	c.r.mu.Unlock()
}

// sendThenWait is Read's callback while a request is to be sent (SendOnRead): its first call
// sends it and returns false, to wait for the answer, when the socket took all of it (true
// otherwise, with what is left in c.ask or the error in c.askErr, for Read to finish the
// write); later calls read.
func (c *Conn) sendThenWait(fd uintptr) bool {
	if c.ask == nil {
		return c.read(fd)
	}
	for {
		n, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&c.ask[0])), uintptr(len(c.ask)), syscall.MSG_NOSIGNAL, 0, 0)
		switch {
		case e == syscall.EINTR:
			continue
		case e == syscall.EAGAIN:
			return true
		case e != 0:
			c.ask, c.askErr = nil, e
			return true
		case int(n) < len(c.ask):
			c.ask = c.ask[n:]
			return true
		}
		c.ask = nil
		return false
	}
}

func (c *Conn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	c.r.buf, c.r.n, c.r.err = b, 0, 0
	fn := c.readFn
	if c.ask != nil {
		// A deadline or Close before its first call leaves the request to send, for a Read
		// that deadline.Lazy resumes.
		fn = c.askFn
	}
	err := c.rc.Read(fn)
	// The callback ended the call with a request left: the socket took part of it (the rest
	// is in c.ask), or the send failed.
	if err == nil && (c.ask != nil || c.askErr != 0) {
		if err = c.finishAsk(); err != nil {
			c.r.buf = nil
			return 0, err
		}
		err = c.rc.Read(c.readFn)
	}
	n, errno := c.r.n, c.r.err
	c.r.buf = nil
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

func (c *Conn) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	c.w.buf, c.w.n, c.w.err = b, 0, 0
	err := c.rc.Write(c.writeFn)
	n, errno := c.w.n, c.w.err
	c.w.buf = nil
	switch {
	case err != nil:
		return n, c.opError("write", err)
	case errno != 0:
		return n, c.opError("write", os.NewSyscallError("write", errno))
	}
	return n, nil
}

// finishAsk ends a request SendOnRead's first call could not send whole: it returns the
// error the send met, or writes the rest the ordinary way. c.r.mu is held.
func (c *Conn) finishAsk() error {
	if e := c.askErr; e != 0 {
		c.askErr = 0
		return c.opError("write", os.NewSyscallError("write", e))
	}
	rest := c.ask
	c.ask = nil
	_, err := c.Write(rest)
	return err
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
