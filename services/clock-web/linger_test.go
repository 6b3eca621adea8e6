package main

import (
	"bufio"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Requests refused before they were read whole, each sent in 4 KiB writes as net/http's
// client sends them, so that the answer comes while the client is still writing. The server
// closes after the answer; the client must read that answer, not a reset (what closing a
// socket with unread input sends), every time: the server lingers (serve.Linger).
func TestRefusedRequestGetsItsAnswerNotReset(t *testing.T) {
	body := strings.Repeat("b", 200<<10)
	for _, tc := range []struct {
		name string
		raw  string
		want int
	}{
		{"headers over the limit", "GET / HTTP/1.1\r\nHost: clock\r\nCookie: c=" + strings.Repeat("x", 100<<10) + "\r\n\r\n",
			http.StatusRequestHeaderFieldsTooLarge},
		{"body over the limit", "POST /clock HTTP/1.1\r\nHost: clock\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body,
			http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			web, _ := newTestHandler(t, "http://127.0.0.1:1", nil)
			live := web.listen(t)
			for i := range 20 {
				c, err := net.Dial("tcp", live.Addr)
				if err != nil {
					t.Fatal(err)
				}
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				for b := []byte(tc.raw); len(b) > 0; {
					n := min(len(b), 4<<10)
					if _, err := c.Write(b[:n]); err != nil {
						c.Close()
						t.Fatalf("attempt %d: writing the request, %d bytes left: %v", i+1, len(b), err)
					}
					b = b[n:]
				}
				res, err := http.ReadResponse(bufio.NewReader(c), nil)
				c.Close()
				if err != nil {
					t.Fatalf("attempt %d: reading the answer: %v, want a %d", i+1, err, tc.want)
				}
				if res.StatusCode != tc.want {
					t.Fatalf("attempt %d: status %d, want %d", i+1, res.StatusCode, tc.want)
				}
			}
		})
	}
}
