package main

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// chanWriter hands every write to the test.
type chanWriter chan string

func (c chanWriter) Write(p []byte) (int, error) {
	c <- string(p)
	return len(p), nil
}

func TestBatchWriterFlushesByItself(t *testing.T) {
	out := make(chanWriter, 10)
	b := newBatchWriter(out)
	b.Write([]byte("one\n"))
	b.Write([]byte("two\n"))
	select {
	case got := <-out:
		if got != "one\ntwo\n" {
			t.Errorf("batch: got %q, want %q", got, "one\ntwo\n")
		}
	case <-time.After(10 * logFlushInterval):
		t.Fatal("nothing written within 10 flush intervals")
	}
	b.Write([]byte("three\n"))
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := <-out; got != "three\n" {
		t.Errorf("after Flush: got %q, want %q", got, "three\n")
	}
}

type failingWriter struct{ calls int }

func (f *failingWriter) Write(p []byte) (int, error) {
	f.calls++
	return 0, errors.New("broken pipe")
}

func TestBatchWriterStopsAfterError(t *testing.T) {
	f := &failingWriter{}
	b := newBatchWriter(f)
	b.Write([]byte(strings.Repeat("x", 40<<10))) // larger than the buffer: written at once
	for range 3 {
		b.Write([]byte("more\n"))
		b.Flush()
	}
	if f.calls != 1 {
		t.Errorf("underlying writer called %d times, want 1", f.calls)
	}
}
