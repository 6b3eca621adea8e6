package main

import (
	"strings"
	"testing"
	"time"
)

func TestBufferedLogHoldsLinesUntilFlush(t *testing.T) {
	var out syncBuffer
	b := newBufferedLog(&out, 64)
	line := `{"msg":"request"}` + "\n"
	b.Write([]byte(line))
	if out.String() != "" {
		t.Errorf("written before a flush: %q", out.String())
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if out.String() != line {
		t.Errorf("after Flush: %q, want %q", out.String(), line)
	}
}

func TestBufferedLogNeverSplitsALine(t *testing.T) {
	var out syncBuffer
	b := newBufferedLog(&out, 64)
	line := strings.Repeat("x", 39) + "\n" // two do not fit in 64 bytes
	b.Write([]byte(line))
	b.Write([]byte(line))
	if got := out.String(); got != line {
		t.Errorf("after the second line: %q, want exactly the first line", got)
	}
	long := strings.Repeat("y", 200) + "\n" // larger than the buffer
	b.Write([]byte(long))
	b.Flush()
	if got, want := out.String(), line+line+long; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestBufferedLogStopFlushes(t *testing.T) {
	var out syncBuffer
	b := newBufferedLog(&out, 1<<10)
	stop := b.flushEvery(time.Hour)
	b.Write([]byte("last words\n"))
	stop()
	if got := out.String(); got != "last words\n" {
		t.Errorf("after stop: %q, want the buffered line", got)
	}
}

func TestBufferedLogFlushesPeriodically(t *testing.T) {
	out := &notifyWriter{wrote: make(chan string, 1)}
	b := newBufferedLog(out, 1<<10)
	stop := b.flushEvery(time.Millisecond)
	defer stop()
	b.Write([]byte("tick\n"))
	select {
	case got := <-out.wrote:
		if got != "tick\n" {
			t.Errorf("flushed %q, want %q", got, "tick\n")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing flushed without an explicit Flush")
	}
}

// notifyWriter reports each write on a channel.
type notifyWriter struct{ wrote chan string }

func (w *notifyWriter) Write(p []byte) (int, error) {
	w.wrote <- string(p)
	return len(p), nil
}
