package pid1

import (
	"io"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"vigil/internal/intake"
	"vigil/internal/logsink"
)

// tail copies the child's stderr on to vigil's, byte for byte as it
// arrives, and keeps the last bytes for the hooks. Copying is synchronous:
// while vigil's stderr blocks, the pipe fills and the child blocks, so
// nothing is dropped and nothing is buffered beyond the ring and one read.
// The ring is the only copy of the tail vigil holds: it is saved to a file
// for the hooks without copying it, and only its last tailJSONMax bytes go
// anywhere else, so vigil's memory stays near the size of the ring.
type tail struct {
	r    *os.File
	w    *os.File // vigil's copy of the write end, for the next run; nil once let go
	out  io.Writer
	done chan struct{}

	// idle: the copier found the pipe empty after keeping all it had read;
	// want: the loop waits for that (await) and is told through the intake.
	idle, want atomic.Bool

	mu   sync.Mutex
	ring []byte
	pos  int  // next write position in ring
	full bool // ring has wrapped
}

// newTail starts the copier. The caller gives t.w to the child as its
// stderr and lets go of it with closeWriter once no run will follow.
func newTail(keep int, out io.Writer) (*tail, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	t := &tail{r: r, w: w, out: out, done: make(chan struct{}), ring: make([]byte, keep)}
	go t.copy()
	return t, nil
}

// closeWriter lets go of vigil's write end: from then on the end of file
// comes when the last process holding the pipe is done.
func (t *tail) closeWriter() {
	if t.w != nil {
		t.w.Close()
		t.w = nil
	}
}

// reset empties the ring: each run's tail is its own.
func (t *tail) reset() {
	t.want.Store(false)
	t.mu.Lock()
	t.pos, t.full = 0, false
	t.mu.Unlock()
}

// await asks to be told (intake.Tail) once the copier has read everything
// the pipe holds now: under --restart the pipe has no end of file between
// runs, and a copier that lags behind (a slow stderr) would leave a run's
// last lines to the next one.
func (t *tail) await() {
	t.want.Store(true)
	if t.caughtUp() {
		intake.Post(intake.Tail)
	}
}

// caughtUp reports whether the pipe is empty and the copier has kept all
// it read. The pipe is asked first: if it is empty and the copier is idle
// after that, every read that emptied it was followed by its keep.
func (t *tail) caughtUp() bool {
	rc, err := t.r.SyscallConn()
	if err != nil {
		return false
	}
	n := -1 // TIOCINQ is FIONREAD
	if rc.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.TIOCINQ) }) != nil {
		return false
	}
	return n == 0 && t.idle.Load()
}

func (t *tail) copy() {
	defer func() {
		close(t.done)
		intake.Post(intake.Tail)
	}()
	out := logsink.Quiet(t.out) // see Quiet: a broken stderr must not SIGPIPE vigil
	buf := make([]byte, 32<<10)
	outOK := true
	rc, err := t.r.SyscallConn()
	if err != nil {
		return
	}
	// The reads are the copier's own (the pipe is non-blocking, waited on
	// by the runtime's poller) so that it knows when it found the pipe
	// empty: idle, for caughtUp.
	done := false
	for !done {
		err := rc.Read(func(fd uintptr) bool {
			for {
				t.idle.Store(false)
				n, err := unix.Read(int(fd), buf)
				switch {
				case err == unix.EINTR:
					continue
				case err == unix.EAGAIN:
					t.idle.Store(true)
					if t.want.Load() {
						intake.Post(intake.Tail)
					}
					return false // wait until readable
				case err != nil || n <= 0:
					done = true
					return true
				}
				if outOK {
					// If vigil's stderr is gone, keep draining the pipe so
					// the child never blocks on a reader that stopped.
					_, werr := out.Write(buf[:n])
					outOK = werr == nil
				}
				t.keep(buf[:n])
			}
		})
		if err != nil {
			return // closed
		}
	}
}

func (t *tail) keep(p []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	size := len(t.ring)
	if len(p) >= size {
		copy(t.ring, p[len(p)-size:])
		t.pos, t.full = 0, true
		return
	}
	k := copy(t.ring[t.pos:], p)
	if k < len(p) {
		t.pos = copy(t.ring, p[k:])
		t.full = true
		return
	}
	t.pos += k
	if t.pos == size {
		t.pos, t.full = 0, true
	}
}

// parts returns the kept tail as two slices of the ring, oldest first.
// t.mu must be held while they are used.
func (t *tail) parts() (older, newer []byte) {
	if !t.full {
		return nil, t.ring[:t.pos]
	}
	return t.ring[t.pos:], t.ring[:t.pos]
}

// last returns a copy of at most the last n bytes kept.
func (t *tail) last(n int) []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	older, newer := t.parts()
	if len(newer) >= n {
		return append([]byte(nil), newer[len(newer)-n:]...)
	}
	if k := n - len(newer); len(older) > k {
		older = older[len(older)-k:]
	}
	return append(append(make([]byte, 0, len(older)+len(newer)), older...), newer...)
}

// save writes the whole tail to a new temporary file and returns its name.
func (t *tail) save() (string, error) {
	f, err := os.CreateTemp("", "vigil-stderr-tail-*")
	if err != nil {
		return "", err
	}
	t.mu.Lock()
	older, newer := t.parts()
	_, err = f.Write(older)
	if err == nil {
		_, err = f.Write(newer)
	}
	t.mu.Unlock()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// ended reports whether the copier reached the pipe's end.
func (t *tail) ended() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

// close stops the copier: a process that inherited the child's stderr may
// hold the pipe open long after the child; vigil does not wait for it.
func (t *tail) close() { t.r.Close() }

// finishTail hands the machine the tail for the record once it stops
// waiting for it, closing the pipe first when it says so (shut).
func (s *supervisor) finishTail(shut bool) {
	if s.tail == nil {
		return
	}
	if shut && !s.tail.ended() {
		s.tail.close()
	}
	s.m.tailTaken(s.tail.last(tailJSONMax))
}
