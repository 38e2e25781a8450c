package pid1

import (
	"bytes"
	"os"
	"sync/atomic"

	"vigil/internal/intake"
)

// ReadyFdMax bounds Config.ReadyFd: the child's descriptor table is
// filled up to it at every spawn, and s6's own services use single digits.
const ReadyFdMax = 1023

// readyLineMax is how much the child may write to its --ready-fd without a
// newline before vigil stops reading: a child that writes without end must
// not keep vigil busy.
const readyLineMax = 4096

// readyFd is one run's --ready-fd pipe, s6's notification-fd convention:
// the child holds the write end at the descriptor the user named and
// writes a line (at least a newline) when it is ready. Each run gets its
// own pipe, so a worker left by an earlier run cannot make the next run
// ready. A nil *readyFd is none.
type readyFd struct {
	r, w *os.File
	said atomic.Bool // a newline was read
}

func newReadyFd() (*readyFd, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	return &readyFd{r: r, w: w}, nil
}

// watch reads the pipe, off the loop, until a newline, the end of file
// (every holder of the write end closed it: never ready) or readyLineMax
// bytes, then closes vigil's end, as s6-supervise does: a later write
// fails (EPIPE) rather than filling a pipe nobody reads. The newline posts
// intake.Notify, as a readiness message does.
func (f *readyFd) watch() {
	go func() {
		defer f.r.Close()
		buf := make([]byte, 512)
		for total := 0; total < readyLineMax; {
			n, err := f.r.Read(buf)
			if bytes.IndexByte(buf[:n], '\n') >= 0 {
				f.said.Store(true)
				intake.Post(intake.Notify)
				return
			}
			if err != nil {
				return
			}
			total += n
		}
	}()
}

// ready reports whether the child has written its line.
func (f *readyFd) ready() bool { return f != nil && f.said.Load() }

// closeWriter drops vigil's copy of the write end once the child has its
// own, so that the end of file means the child's tree closed it.
func (f *readyFd) closeWriter() {
	if f != nil && f.w != nil {
		f.w.Close()
		f.w = nil
	}
}

// close ends the watch (a blocked read returns) and releases the pipe.
func (f *readyFd) close() {
	if f == nil {
		return
	}
	f.closeWriter()
	f.r.Close()
}
