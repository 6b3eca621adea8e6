//go:build !linux

package rawio

import "net"

// Wrap returns c: the raw calls are Linux's.
func Wrap(c net.Conn) net.Conn { return c }
