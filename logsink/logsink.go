// Package logsink is a writer for vigil's logs that never blocks its
// caller. PID 1 must go on reaping and forwarding when its stderr is a pipe
// nobody reads, so log lines are queued to a goroutine that does the
// writing, and dropped (and counted) when the queue is full.
package logsink

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Sink queues writes for one writer goroutine.
type Sink struct {
	out     io.Writer
	queue   chan []byte
	dropped atomic.Uint64
	pending sync.WaitGroup
	once    sync.Once
}

// New returns a Sink writing to out, holding at most depth lines. The
// writer goroutine starts with the first write, so a run that logs nothing
// starts no goroutine.
func New(out io.Writer, depth int) *Sink {
	return &Sink{out: out, queue: make(chan []byte, depth)}
}

// Write queues a copy of p and never blocks.
func (s *Sink) Write(p []byte) (int, error) {
	s.once.Do(func() { go s.run() })
	s.pending.Add(1)
	select {
	case s.queue <- append([]byte(nil), p...):
	default:
		s.pending.Done()
		s.dropped.Add(1)
	}
	return len(p), nil
}

func (s *Sink) run() {
	var reported uint64
	for p := range s.queue {
		if n := s.dropped.Load(); n > reported {
			fmt.Fprintf(s.out, "vigil: %d log lines dropped: stderr is not keeping up\n", n-reported)
			reported = n
		}
		_, _ = s.out.Write(p)
		s.pending.Done()
	}
}

// Flush waits up to d for the queue to be written out and reports whether
// it was. A stderr that blocks forever costs d, never a hang.
func (s *Sink) Flush(d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		s.pending.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}
