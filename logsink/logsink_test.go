package logsink

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func TestWritesArriveInOrder(t *testing.T) {
	var out lockedBuf
	s := New(&out, 16)
	for _, line := range []string{"one\n", "two\n", "three\n"} {
		s.Write([]byte(line))
	}
	if !s.Flush(time.Second) {
		t.Fatal("Flush timed out on a writer that never blocks")
	}
	if got := out.b.String(); got != "one\ntwo\nthree\n" {
		t.Errorf("got %q", got)
	}
}

// stuck is a stderr nobody reads: every write blocks until the test ends.
type stuck struct{ release chan struct{} }

func (s stuck) Write(p []byte) (int, error) {
	<-s.release
	return len(p), nil
}

func TestWriteNeverBlocksOnAStuckStderr(t *testing.T) {
	out := stuck{release: make(chan struct{})}
	defer close(out.release)
	s := New(out, 4)
	done := make(chan struct{})
	go func() {
		for i := 0; i < 100; i++ {
			s.Write([]byte("line\n"))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Write blocked while stderr is stuck")
	}
	if s.Flush(50 * time.Millisecond) {
		t.Error("Flush reported success while stderr is stuck")
	}
	// One line is stuck in Write, at most 4 wait in the queue.
	if d := s.dropped.Load(); d < 95 {
		t.Errorf("dropped %d lines, want at least 95", d)
	}
}
