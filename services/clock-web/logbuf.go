package main

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// logFlushInterval bounds how late a log line can appear. Short enough for a person (or a
// test) watching the logs, long enough to batch a busy second's access log into a handful of
// writes.
const logFlushInterval = 100 * time.Millisecond

// batchWriter buffers log output and writes it at most logFlushInterval after the first
// unwritten line, or when 32 KiB are pending. An access-log line per request otherwise costs
// a write system call per request (into a pipe to the container runtime, in production),
// which profiles showed to be a large share of the time spent on a static page.
type batchWriter struct {
	mu      sync.Mutex
	buf     *bufio.Writer
	timer   *time.Timer
	pending bool
	err     error // first write error, so a failing stdout is not retried on every line
}

func newBatchWriter(w io.Writer) *batchWriter {
	b := &batchWriter{buf: bufio.NewWriterSize(w, 32<<10)}
	b.timer = time.AfterFunc(time.Hour, func() { _ = b.Flush() })
	b.timer.Stop()
	return b
}

// Write takes one whole log line (slog writes each record in one call), so lines are never
// interleaved.
func (b *batchWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.buf.Write(p)
	if err != nil {
		b.err = err
		return n, err
	}
	if !b.pending && b.buf.Buffered() > 0 {
		b.pending = true
		b.timer.Reset(logFlushInterval)
	}
	return n, nil
}

// Flush writes whatever is pending; serve calls it once more before returning.
func (b *batchWriter) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pending = false
	if b.err != nil {
		return b.err
	}
	b.err = b.buf.Flush()
	return b.err
}
