//go:build vmtest

package vm_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Port scan bounds: the scan talks only to the test VM, holds at most scanWorkers
// connections at a time and waits scanTimeout for each. A firewall that drops (not rejects)
// makes every closed port cost the full timeout, so the scan takes about
// 65535 / scanWorkers * scanTimeout; an open port's SYN-ACK comes back within milliseconds
// even under TCG, and the two ports that must answer (22, 80) show the timeout is enough.
const (
	scanWorkers = 2000
	scanTimeout = 1500 * time.Millisecond
	udpTimeout  = 2 * time.Second
)

// tcpScan is the outcome of a connect scan: open ports, and how many were refused (RST)
// or gave no answer in time (dropped).
type tcpScan struct {
	Open              []int
	Refused, Filtered int
	Took              time.Duration
}

// scanTCP connects to every TCP port 1-65535 of host.
func scanTCP(ctx context.Context, host string) tcpScan {
	start := time.Now()
	ports := make(chan int)
	var mu sync.Mutex
	var s tcpScan
	var wg sync.WaitGroup
	for range scanWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{Timeout: scanTimeout}
			for p := range ports {
				c, err := d.DialContext(ctx, "tcp4", net.JoinHostPort(host, strconv.Itoa(p)))
				mu.Lock()
				switch {
				case err == nil:
					s.Open = append(s.Open, p)
					c.Close()
				case errors.Is(err, syscall.ECONNREFUSED):
					s.Refused++
				default:
					s.Filtered++
				}
				mu.Unlock()
			}
		}()
	}
	for p := 1; p <= 65535 && ctx.Err() == nil; p++ {
		ports <- p
	}
	close(ports)
	wg.Wait()
	slices.Sort(s.Open)
	s.Took = time.Since(start)
	return s
}

// udpProbes are the common UDP services with a request each understands, so a listener
// that only answers well-formed requests still shows.
var udpProbes = map[int][]byte{
	53:   dnsQuery(false),
	67:   []byte{1, 1, 6, 0},
	68:   []byte{2, 1, 6, 0},
	111:  rpcNullCall(),
	123:  append([]byte{0x1b}, make([]byte, 47)...), // NTP v3 client request
	137:  nbnsStatusQuery(),
	138:  []byte{0x11, 0x02, 0, 1},
	161:  snmpGetSysDescr,
	500:  ikeSAInit(),
	1900: []byte("M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n"),
	4500: append([]byte{0, 0, 0, 0}, ikeSAInit()...), // non-ESP marker, then IKE
	5353: dnsQuery(true),
	5355: dnsQuery(false), // LLMNR speaks the DNS format
}

// probeUDP sends each probe twice (UDP may drop one) on a connected socket and reports per
// port "open" (an answer), "closed" (ICMP port unreachable) or "no answer".
func probeUDP(ctx context.Context, host string) map[int]string {
	res := map[int]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for port, probe := range udpProbes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			state := "no answer"
			var d net.Dialer
			c, err := d.DialContext(ctx, "udp4", net.JoinHostPort(host, strconv.Itoa(port)))
			if err != nil {
				state = "error: " + err.Error()
			} else {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(udpTimeout))
				buf := make([]byte, 2048)
				for range 2 {
					_, _ = c.Write(probe)
				}
				n, err := c.Read(buf)
				switch {
				case err == nil && n > 0:
					state = "open"
				case errors.Is(err, syscall.ECONNREFUSED):
					state = "closed"
				}
			}
			mu.Lock()
			res[port] = state
			mu.Unlock()
		}()
	}
	wg.Wait()
	return res
}

// dnsQuery asks for localhost's A record; for mDNS with the unicast-response bit, so a
// responder answers our port, not the multicast group.
func dnsQuery(mdns bool) []byte {
	q := []byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}
	if mdns {
		q[2] = 0 // mDNS queries carry no RD
	}
	q = append(q, 9)
	q = append(q, "localhost"...)
	q = append(q, 0, 0, 1) // type A
	if mdns {
		return append(q, 0x80, 1) // class IN, unicast response wanted
	}
	return append(q, 0, 1)
}

func rpcNullCall() []byte {
	b := make([]byte, 40)
	_, _ = rand.Read(b[:4])                    // xid
	binary.BigEndian.PutUint32(b[8:], 2)       // RPC version
	binary.BigEndian.PutUint32(b[12:], 100000) // portmapper
	binary.BigEndian.PutUint32(b[16:], 2)      // its version 2; procedure 0 = NULL
	return b                                   // message type CALL (0), AUTH_NULL cred and verifier
}

func nbnsStatusQuery() []byte {
	q := []byte{0x43, 0x21, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 32}
	q = append(q, "CKAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"...) // "*" in NetBIOS first-level encoding
	return append(q, 0, 0, 0x21, 0, 1)                   // NBSTAT, IN
}

// snmpGetSysDescr is an SNMPv1 GetRequest for sysDescr.0 with community "public".
var snmpGetSysDescr = []byte{0x30, 0x26, 0x02, 0x01, 0x00, 0x04, 0x06, 'p', 'u', 'b', 'l', 'i', 'c',
	0xa0, 0x19, 0x02, 0x01, 0x01, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00,
	0x30, 0x0e, 0x30, 0x0c, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x02, 0x01, 0x01, 0x01, 0x00, 0x05, 0x00}

// ikeSAInit is a bare IKEv2 IKE_SA_INIT header: enough for a responder to answer with an
// error notification.
func ikeSAInit() []byte {
	b := make([]byte, 28)
	_, _ = rand.Read(b[:8]) // initiator SPI
	b[17] = 0x20            // version 2.0
	b[18] = 34              // IKE_SA_INIT
	b[19] = 0x08            // initiator
	binary.BigEndian.PutUint32(b[24:], 28)
	return b
}
