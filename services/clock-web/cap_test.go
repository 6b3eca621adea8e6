package main

import (
	"bufio"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clock-app/clock/services/internal/serve"
)

// More clients than serve.MaxConns, each opening a connection, asking once and letting the
// server close it: the listener's cap is always full, and every slot a closed connection
// frees is taken at once by a waiting client. Each must be served or wait in the kernel's
// accept queue; none may be answered 503 because the goroutine that closed the last
// connection on its slot has not finished yet (what the e2e flood test once saw).
func TestFullCapNeverAnswers503(t *testing.T) {
	web, _ := newTestHandler(t, "http://127.0.0.1:1", nil)
	live := web.listen(t)
	clients := serve.MaxConns + serve.MaxConns/4
	stop := time.Now().Add(3 * time.Second)
	var answered, refused, failed atomic.Int64
	var first atomic.Value
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for time.Now().Before(stop) {
				c, err := net.DialTimeout("tcp", live.Addr, 5*time.Second)
				if err != nil {
					failed.Add(1)
					first.CompareAndSwap(nil, err.Error())
					continue
				}
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				_, err = c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: clock\r\nConnection: close\r\n\r\n"))
				var res *http.Response
				if err == nil {
					res, err = http.ReadResponse(bufio.NewReader(c), nil)
				}
				c.Close()
				switch {
				case err != nil:
					failed.Add(1)
					first.CompareAndSwap(nil, err.Error())
				case res.StatusCode == http.StatusServiceUnavailable:
					refused.Add(1)
				default:
					answered.Add(1)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d clients for %d slots: %d answered, %d answered 503, %d failed (first: %v)",
		clients, serve.MaxConns, answered.Load(), refused.Load(), failed.Load(), first.Load())
	if refused.Load() > 0 {
		t.Errorf("%d requests answered 503 at the connection cap, want none", refused.Load())
	}
}
