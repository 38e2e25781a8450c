// Package logsink is a writer for vigil's logs that never blocks its
// caller. PID 1 must go on reaping and forwarding when its stderr is a pipe
// nobody reads, so log lines are queued to a goroutine that does the
// writing, and dropped (and counted) when the queue is full.
package logsink

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Sink queues writes for one writer goroutine.
type Sink struct {
	out     io.Writer
	queue   chan []byte
	dropped atomic.Uint64
	pending sync.WaitGroup
	once    sync.Once

	// mu orders Write against Close: a send on the closed queue would
	// panic. Writes only read-lock it, so they never wait on each other.
	mu     sync.RWMutex
	closed bool
}

// New returns a Sink writing to out, holding at most depth lines. The
// writer goroutine starts with the first write, so a run that logs nothing
// starts no goroutine.
func New(out io.Writer, depth int) *Sink {
	return &Sink{out: out, queue: make(chan []byte, depth)}
}

// Write queues a copy of p and never blocks.
func (s *Sink) Write(p []byte) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return len(p), nil
	}
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
	out := Quiet(s.out)
	var reported uint64
	for p := range s.queue {
		if n := s.dropped.Load(); n > reported {
			fmt.Fprintf(out, "vigil: %d log lines dropped: stderr is not keeping up\n", n-reported)
			reported = n
		}
		_, _ = out.Write(p)
		s.pending.Done()
	}
	// Close ended the queue: lines dropped since the last one written
	// would otherwise go unreported.
	if n := s.dropped.Load(); n > reported {
		fmt.Fprintf(out, "vigil: %d log lines dropped: stderr is not keeping up\n", n-reported)
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

// Close ends the writer goroutine once the queue is written out, and with
// it the thread Quiet locked it to; later writes are dropped. A process
// that runs vigil's command line more than once (the tests) would
// otherwise keep one thread per run.
func (s *Sink) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.queue)
	}
}

// Quiet makes the calling goroutine, which must do nothing but write to w,
// unable to raise a signal against vigil: vigil catches every signal to
// forward it, so one its own writes raised would reach the child, or stop
// vigil.
//
//   - SIGPIPE, from a write to a stderr nobody reads any more. The kernel
//     sends it to the writing thread, so the goroutine is locked to its
//     thread and SIGPIPE blocked there: it stays pending on that thread and
//     the write fails with EPIPE.
//   - SIGTTOU, from a write to a terminal with tostop set (`stty tostop`)
//     while vigil's process group is in the background. The kernel lets the
//     write through when the writing thread blocks SIGTTOU, as it does for
//     a process that ignores it (tini ignores TTIN and TTOU around its own
//     writes). Otherwise it sends SIGTTOU to vigil's whole group and makes
//     the write wait for it: vigil would take it for job control, and spin.
//   - SIGTTIN, the same for a read; a writer never reads, but a descriptor
//     that is a terminal must not stop vigil either.
//
// The mask of a thread is not passed on to what vigil starts: only the
// supervisor's goroutine starts processes, and never from a locked writer
// thread. An *os.File is written with write(2) directly, since os.File
// raises a SIGPIPE of its own for EPIPE on descriptors 1 and 2.
func Quiet(w io.Writer) io.Writer {
	runtime.LockOSThread()
	var set unix.Sigset_t
	for _, sig := range []unix.Signal{unix.SIGPIPE, unix.SIGTTOU, unix.SIGTTIN} {
		set.Val[(sig-1)/64] |= 1 << ((sig - 1) % 64)
	}
	_ = unix.PthreadSigmask(unix.SIG_BLOCK, &set, nil)
	if f, ok := w.(*os.File); ok {
		return rawWriter(f.Fd())
	}
	return w
}

// WriteQuietly writes p to w from a goroutine of its own made quiet with
// Quiet, and waits for it. Its thread ends with the goroutine, so the
// signal mask Quiet sets goes nowhere else.
func WriteQuietly(w io.Writer, p []byte) (int, error) {
	type result struct {
		n   int
		err error
	}
	c := make(chan result, 1)
	go func() {
		n, err := Quiet(w).Write(p)
		c <- result{n, err}
	}()
	r := <-c
	return r.n, r.err
}

// rawWriter writes to a descriptor with write(2).
type rawWriter uintptr

func (fd rawWriter) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Write(int(fd), p[n:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EAGAIN) {
			// A stderr someone made non-blocking: wait until it drains,
			// as a blocking one would; this goroutine does nothing else.
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
			if _, err := unix.Poll(pfd, -1); err != nil && !errors.Is(err, unix.EINTR) {
				return n, err
			}
			continue
		}
		if err != nil {
			return n, err
		}
		n += m
	}
	return n, nil
}
