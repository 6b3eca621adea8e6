// Command flood measures how much memory a hostile client can make a service hold: it opens
// many connections to a loopback address, each in one of the costly states below, holds them,
// and samples the server's VmRSS and VmHWM from /proc/<pid>/status meanwhile.
//
//	go run ./cmd/flood -addr 127.0.0.1:8080 -pid $(pidof clock-web) -mode header -n 2000 -hold 4s
//
// Modes: header (a request line and an unfinished header line of -size bytes), idle (one
// complete request, then an idle keep-alive connection), body (a POST announcing -size bytes
// of body, of which it sends half), slow (headers sent one byte at a time). It only talks to
// loopback, and both the count and the hold are bounded.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	maxConns = 20000
	maxHold  = 60 * time.Second
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "loopback host:port of the server")
	pid := flag.Int("pid", 0, "server's process id, for /proc/<pid>/status")
	mode := flag.String("mode", "header", "header, idle, body or slow")
	n := flag.Int("n", 1000, "connections to open (at most 20000)")
	size := flag.Int("size", 60000, "bytes of the unfinished header line (header) or body (body)")
	hold := flag.Duration("hold", 5*time.Second, "how long to hold the connections (at most 60s)")
	flag.Parse()
	if err := flood(*addr, *pid, *mode, *n, *size, *hold); err != nil {
		fmt.Fprintln(os.Stderr, "flood:", err)
		os.Exit(1)
	}
}

func flood(addr string, pid int, mode string, n, size int, hold time.Duration) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s is not a loopback address", host)
	}
	if n < 1 || n > maxConns || hold <= 0 || hold > maxHold {
		return fmt.Errorf("-n must be 1-%d and -hold at most %v", maxConns, maxHold)
	}
	before := status(pid)
	fmt.Printf("before: %s\n", before)

	var open, failed, answered atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				failed.Add(1)
				return
			}
			defer c.Close()
			open.Add(1)
			if err := send(c, mode, size, stop); err != nil {
				answered.Add(1) // the server answered or closed early: the connection is freed
				return
			}
			<-stop
		}()
	}
	peak := before
	deadline := time.Now().Add(hold)
	for time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond) // a sampling interval, not a readiness wait
		if s := status(pid); s.rss > peak.rss {
			peak = s
		}
	}
	final := status(pid)
	close(stop)
	wg.Wait()
	fmt.Printf("mode %s, %d connections (%d connected, %d refused, %d closed or answered early) over %v\n",
		mode, n, open.Load(), failed.Load(), answered.Load(), time.Since(start).Round(time.Millisecond))
	fmt.Printf("peak:   %s\nend:    %s\nafter:  %s\n", peak, final, status(pid))
	return nil
}

// send puts c into the mode's state; an error means the server closed or answered.
func send(c net.Conn, mode string, size int, stop chan struct{}) error {
	switch mode {
	case "header":
		_, err := io.WriteString(c, "GET /clock HTTP/1.1\r\nHost: x\r\nX-Fill: "+strings.Repeat("a", size))
		return err
	case "idle":
		if _, err := io.WriteString(c, "GET /clock HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return err
		}
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, res.Body)
		return res.Body.Close()
	case "body":
		_, err := io.WriteString(c, "POST /clock HTTP/1.1\r\nHost: x\r\nContent-Length: "+strconv.Itoa(size)+"\r\n\r\n"+strings.Repeat("b", size/2))
		return err
	case "slow":
		for _, b := range []byte("GET /clock HTTP/1.1\r\nHost: x\r\nX-Slow: ") {
			if _, err := c.Write([]byte{b}); err != nil {
				return err
			}
			select {
			case <-stop:
				return nil
			case <-time.After(50 * time.Millisecond):
			}
		}
		return nil
	}
	return fmt.Errorf("unknown mode %q", mode)
}

type procStatus struct{ rss, hwm int64 } // KiB

func (s procStatus) String() string {
	return fmt.Sprintf("VmRSS %.1f MiB, VmHWM %.1f MiB", float64(s.rss)/1024, float64(s.hwm)/1024)
}

func status(pid int) procStatus {
	var s procStatus
	if pid == 0 {
		return s
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return s
	}
	for line := range strings.Lines(string(b)) {
		k, v, _ := strings.Cut(line, ":")
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "VmRSS":
			s.rss = n
		case "VmHWM":
			s.hwm = n
		}
	}
	return s
}
