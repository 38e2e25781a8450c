package logsink

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

func TestRawWriterWaitsOnANonBlockingPipe(t *testing.T) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	want := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB, far more than the pipe holds
	got := make(chan []byte)
	go func() {
		var b []byte
		buf := make([]byte, 64<<10)
		for len(b) < len(want) {
			n, err := unix.Read(fds[0], buf)
			if errors.Is(err, unix.EAGAIN) {
				time.Sleep(time.Millisecond)
				continue
			}
			if err != nil {
				break
			}
			b = append(b, buf[:n]...)
		}
		got <- b
	}()
	if n, err := rawWriter(fds[1]).Write(want); err != nil || n != len(want) {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(want))
	}
	if b := <-got; !bytes.Equal(b, want) {
		t.Errorf("reader got %d bytes, not the %d written", len(b), len(want))
	}
}
