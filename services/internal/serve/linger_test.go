package serve

import (
	"io"
	"net"
	"testing"
	"time"
)

// acceptOne returns a connection accepted through a LimitListener and the client's end.
func acceptOne(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := LimitListener(ln, 1)
	t.Cleanup(func() { l.Close() })
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err = l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return server, client
}

// A client that never stops sending holds a lingering close for at most lingerTime when it
// trickles, and lingerBytes when it floods; either way it reads the server's answer.
func TestLingerIsBounded(t *testing.T) {
	for _, tc := range []struct {
		name  string
		chunk int
		pause time.Duration
	}{{"trickle", 1, 10 * time.Millisecond}, {"flood", 64 << 10, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			server, client := acceptOne(t)
			go func() {
				chunk := make([]byte, tc.chunk)
				for {
					if _, err := client.Write(chunk); err != nil {
						return
					}
					time.Sleep(tc.pause)
				}
			}()
			if _, err := server.Write([]byte("refused\n")); err != nil {
				t.Fatal(err)
			}
			Linger(server)
			start := time.Now()
			server.Close()
			d := time.Since(start)
			t.Logf("lingering close took %s", d)
			if d > lingerTime+2*time.Second {
				t.Errorf("lingering close took %s, want at most about %s", d, lingerTime)
			}
			_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 64)
			n, _ := io.ReadFull(client, buf[:len("refused\n")])
			if got := string(buf[:n]); got != "refused\n" {
				t.Errorf("client read %q, want the answer", got)
			}
		})
	}
}

// A client that reads the answer and closes ends the lingering close at once; a connection
// without Linger closes without reading anything.
func TestLingerEndsWhenTheClientCloses(t *testing.T) {
	server, client := acceptOne(t)
	if _, err := client.Write([]byte("rest of a request")); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.ReadAll(client) // until the server's half-close
		client.Close()
	}()
	Linger(server)
	start := time.Now()
	server.Close()
	if d := time.Since(start); d > lingerTime/2 {
		t.Errorf("lingering close took %s after the client closed, want it to end with the client", d)
	}

	plain, _ := acceptOne(t)
	start = time.Now()
	plain.Close()
	if d := time.Since(start); d > lingerTime/2 {
		t.Errorf("a close without Linger took %s", d)
	}
}
