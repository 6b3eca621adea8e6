package main

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// bufferedLog batches log lines: one write(2) per request on stdout (a pipe
// to the container runtime in production) cost about as much as the rest of
// the access log. Lines reach the underlying writer when the buffer fills,
// at every flush interval, and at shutdown; a process killed with SIGKILL
// loses at most one interval of log.
type bufferedLog struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func newBufferedLog(w io.Writer, size int) *bufferedLog {
	return &bufferedLog{w: bufio.NewWriterSize(w, size)}
}

// Write buffers p; slog hands over one complete line per call, and lines
// never straddle a flush.
func (b *bufferedLog) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(p) > b.w.Available() && b.w.Buffered() > 0 {
		if err := b.w.Flush(); err != nil {
			return 0, err
		}
	}
	return b.w.Write(p)
}

// Flush writes out everything buffered.
func (b *bufferedLog) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.w.Flush()
}

// flushEvery flushes every interval until the returned stop function is
// called; stop flushes one last time.
func (b *bufferedLog) flushEvery(interval time.Duration) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				_ = b.Flush()
			case <-done:
				return
			}
		}
	}()
	return func() {
		close(done)
		<-finished
		_ = b.Flush()
	}
}
