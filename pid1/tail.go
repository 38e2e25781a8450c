package pid1

import (
	"io"
	"os"
	"sync"
	"time"

	"vigil/logsink"
)

// tail copies the child's stderr on to vigil's, byte for byte as it
// arrives, and keeps the last bytes for the hooks. Copying is synchronous:
// while vigil's stderr blocks, the pipe fills and the child blocks, so
// nothing is dropped and nothing is buffered beyond the ring and one read.
type tail struct {
	r    *os.File
	out  io.Writer
	done chan struct{}

	mu   sync.Mutex
	ring []byte
	pos  int  // next write position in ring
	full bool // ring has wrapped
}

// newTail starts the copier. The caller gives w to the child as its stderr
// and closes its own copy once the child has started.
func newTail(keep int, out io.Writer) (*tail, *os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	t := &tail{r: r, out: out, done: make(chan struct{}), ring: make([]byte, keep)}
	go t.copy()
	return t, w, nil
}

func (t *tail) copy() {
	defer close(t.done)
	out := logsink.Quiet(t.out) // see Quiet: a broken stderr must not SIGPIPE vigil
	buf := make([]byte, 32<<10)
	outOK := true
	for {
		n, err := t.r.Read(buf)
		if n > 0 {
			if outOK {
				// If vigil's stderr is gone, keep draining the pipe so the
				// child never blocks on a reader that stopped.
				_, werr := out.Write(buf[:n])
				outOK = werr == nil
			}
			t.keep(buf[:n])
		}
		if err != nil {
			return
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

// bytes returns the kept tail, oldest byte first.
func (t *tail) bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.full {
		return append([]byte(nil), t.ring[:t.pos]...)
	}
	return append(append([]byte(nil), t.ring[t.pos:]...), t.ring[:t.pos]...)
}

// finish waits up to d for the pipe to reach end of file (a process that
// inherited the child's stderr may still hold it) and returns the tail.
func (t *tail) finish(d time.Duration) string {
	select {
	case <-t.done:
	case <-time.After(d):
	}
	t.close()
	return string(t.bytes())
}

func (t *tail) close() { t.r.Close() }
