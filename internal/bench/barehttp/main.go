// Command barehttp is the yardstick of `mage bench`: the least a Go server
// can do to answer /clock, with net/http, the default mux and nothing else.
// clock-api is measured against it.
//
// Usage:
//
//	barehttp [-addr 127.0.0.1:8000] [-listen-fd N]
//
// With -listen-fd the server accepts on an inherited listening socket (the
// bench passes one bound to port 0, so there is no race for a free port).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "barehttp: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("barehttp", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8000", "listen address")
	fd := fs.Int("listen-fd", -1, "accept on this inherited listening socket instead of -addr")
	if err := fs.Parse(args); err != nil {
		return err
	}

	var ln net.Listener
	var err error
	if *fd >= 0 {
		f := os.NewFile(uintptr(*fd), "listener")
		ln, err = net.FileListener(f)
		f.Close() // FileListener holds its own duplicate.
	} else {
		ln, err = net.Listen("tcp", *addr)
	}
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /clock", handleClock)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok")
	})
	// The same timeouts as the services, so the comparison is like for like.
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
	fmt.Fprintf(stdout, "barehttp: listening on %s\n", ln.Addr())

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// handleClock writes the Unix time like Python's print(time.time()) without
// the newline: the shortest decimal that round-trips, ".0" when integral.
func handleClock(w http.ResponseWriter, _ *http.Request) {
	b := strconv.AppendFloat(make([]byte, 0, 32), float64(time.Now().UnixNano())/1e9, 'f', -1, 64)
	if !containsDot(b) {
		b = append(b, '.', '0')
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.Write(b)
}

func containsDot(b []byte) bool {
	for _, c := range b {
		if c == '.' {
			return true
		}
	}
	return false
}
