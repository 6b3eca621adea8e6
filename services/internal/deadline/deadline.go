// Package deadline gives a connection lazy deadlines: a deadline is handed to the runtime
// only when the one it holds would fire too late, so that a server which sets three
// deadlines a request (fasthttp: idle, read, write) and a proxy which sets one an exchange pay
// for a few of them a second instead.
//
// nginx keeps its timers the same way (NGX_TIMER_LAZY_DELAY: a timer that moves by less than
// 300 ms is left as it is). Here the runtime's deadline may be earlier than the one asked
// for, never later: a read or write it cuts before the deadline asked for is re-armed and
// resumed, so the caller sees a timeout exactly when its own deadline has passed.
package deadline

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// Conn is a net.Conn with lazy deadlines (Lazy). It is safe for the concurrent use net.Conn
// allows: one reader, one writer and any deadline setter at once.
type Conn struct {
	net.Conn
	mu          sync.Mutex // held while a deadline is decided and handed to the runtime
	read, write deadline
}

// deadline is one direction's: what the caller asked for and what the runtime holds (the
// zero time is no deadline, in both), and whether the runtime's has passed (spent).
type deadline struct {
	want, armed time.Time
	spent       bool
}

// Lazy wraps c; a *Conn is returned as it is.
func Lazy(c net.Conn) *Conn {
	if lc, ok := c.(*Conn); ok {
		return lc
	}
	return &Conn{Conn: c}
}

// holds reports whether the runtime's deadline can stay for t (zero: never): it is t's
// already, or it fires no later than t and has not been seen to pass (spent). One that fires
// earlier than t is resumed (resume).
func (d *deadline) holds(t time.Time) bool {
	switch {
	case d.spent:
		return false
	case d.armed.IsZero():
		return t.IsZero()
	default:
		return t.IsZero() || !d.armed.After(t)
	}
}

func (c *Conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.set(&c.read, t, c.Conn.SetReadDeadline)
}

func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.set(&c.write, t, c.Conn.SetWriteDeadline)
}

func (c *Conn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.set(&c.read, t, c.Conn.SetReadDeadline); err != nil {
		return err
	}
	return c.set(&c.write, t, c.Conn.SetWriteDeadline)
}

// set records t and arms it unless the runtime's deadline already fires first. c.mu is held.
func (c *Conn) set(d *deadline, t time.Time, arm func(time.Time) error) error {
	d.want = t
	if d.holds(t) {
		return nil
	}
	if err := arm(t); err != nil {
		return err
	}
	d.armed, d.spent = t, false
	return nil
}

// resume reports whether an operation that failed with err was cut by a deadline earlier than
// the one asked for, and if so arms the one asked for, so the operation can go on.
func (c *Conn) resume(d *deadline, err error, arm func(time.Time) error) bool {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// The runtime's deadline is the caller's, or earlier: only an earlier one can have
	// passed with the caller's still to come.
	if !d.want.IsZero() && (d.armed.Equal(d.want) || !time.Now().Before(d.want)) {
		// The caller's own deadline has passed, and with it the runtime's, which is never
		// later: the next deadline set has to be armed.
		d.spent = true
		return false
	}
	if arm(d.want) != nil {
		return false
	}
	d.armed, d.spent = d.want, false
	return true
}

func (c *Conn) Read(b []byte) (int, error) {
	for {
		n, err := c.Conn.Read(b)
		if n > 0 || err == nil || !c.resume(&c.read, err, c.Conn.SetReadDeadline) {
			return n, err
		}
	}
}

func (c *Conn) Write(b []byte) (int, error) {
	n := 0
	for {
		m, err := c.Conn.Write(b[n:])
		n += m
		if err == nil || !c.resume(&c.write, err, c.Conn.SetWriteDeadline) {
			return n, err
		}
	}
}
