package pid1

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"vigil/internal/intake"
)

// Target is something vigil waits for (--wait-for) or stops on (--stop-on).
type Target struct {
	Kind string // "file", "tombstone", "ready", "tcp" or "http"
	Path string // for file, tombstone and ready; the request's path for http
	Addr string // HOST:PORT for tcp and http
}

func (t Target) String() string {
	if t.Kind == "tcp" {
		return "tcp:" + t.Addr
	}
	if t.Kind == "http" {
		return "http:" + t.Addr + t.Path
	}
	return t.Kind + ":" + t.Path
}

// ParseTarget reads file:PATH, tombstone:PATH, ready:PATH or tcp:HOST:PORT.
func ParseTarget(s string) (Target, error) {
	kind, rest, ok := strings.Cut(s, ":")
	if !ok || rest == "" {
		return Target{}, fmt.Errorf("target %q: want file:PATH, tombstone:PATH, ready:PATH, tcp:HOST:PORT or http:HOST:PORT/PATH", s)
	}
	switch kind {
	case "file", "tombstone", "ready":
		if strings.IndexByte(rest, 0) >= 0 {
			return Target{}, fmt.Errorf("target %q: path holds a NUL byte", s)
		}
		return Target{Kind: kind, Path: filepath.Clean(rest)}, nil
	case "tcp":
		host, port, err := net.SplitHostPort(rest)
		if err != nil {
			return Target{}, fmt.Errorf("target %q: %w", s, err)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return Target{}, fmt.Errorf("target %q: bad port %q", s, port)
		}
		if host == "" {
			host = "localhost"
		}
		return Target{Kind: "tcp", Addr: net.JoinHostPort(host, port)}, nil
	case "http":
		return parseHTTPTarget(s, rest)
	}
	return Target{}, fmt.Errorf("target %q: unknown kind %q (want file, tombstone, ready, tcp or http)", s, kind)
}

// deps watches the --wait-for and --stop-on targets on goroutines of its
// own, so that nothing a target does (a FIFO, a slow file system, a port
// that never answers) can hold up the loop: they evaluate the targets and
// post to the intake; the loop only reads the verdict. Files are watched
// with inotify on their directories; TCP targets are dialled with backoff.
type deps struct {
	waitFor, stopOn []Target
	log             *slog.Logger
	ino, wake       int     // inotify and the eventfd that ends its watcher; -1 when no target is a path
	w               watches // what the inotify descriptor watches; the watcher's own
	quit            chan struct{}

	earlier map[Target]string // per --stop-on tombstone, the run that had ended when vigil started

	mu      sync.Mutex
	pending map[Target]bool // --wait-for targets not yet seen to hold
	fired   string          // the first --stop-on target seen to hold
}

func startDeps(waitFor, stopOn []Target, log *slog.Logger) (*deps, error) {
	d := &deps{waitFor: waitFor, stopOn: stopOn, log: log, quit: make(chan struct{}), pending: map[Target]bool{}, ino: -1, wake: -1,
		earlier: map[Target]string{}}
	// What a --stop-on tombstone says now, before anything is watched: a
	// run that has ended already is an earlier one (a volume that outlived
	// it), never a reason to stop.
	for _, t := range stopOn {
		if t.Kind == "tombstone" {
			if ts, live, err := readTombstone(t.Path); err == nil {
				if run := earlierRun(ts, live); run != "" {
					d.earlier[t] = run
					log.Debug("stop-on target holds a record of an earlier run; waiting for the next", "target", t, "state", ts.State)
				}
			}
		}
	}
	paths := false
	for _, t := range waitFor {
		d.pending[t] = true
		if t.dialled() {
			go d.dial(t)
		}
	}
	for _, t := range append(append([]Target(nil), waitFor...), stopOn...) {
		paths = paths || !t.dialled()
	}
	if paths {
		// Not the runtime's poller: its epoll would wake a thread for
		// every event queued while the watcher pauses (see watchPaths),
		// which is what a busy neighbour costs. The watcher polls the two
		// descriptors itself, holding one thread while it sleeps.
		fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
		if err != nil {
			return nil, fail(ExitInternal, "inotify: %w", err)
		}
		wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			unix.Close(fd)
			return nil, fail(ExitInternal, "eventfd: %w", err)
		}
		d.ino, d.wake = fd, wake
		go d.watchPaths()
	}
	return d, nil
}

func (d *deps) close() {
	if d == nil {
		return
	}
	// The eventfd first: the watcher closes both descriptors once it has
	// seen either signal, so this write always finds its descriptor.
	if d.wake >= 0 {
		_, _ = unix.Write(d.wake, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	}
	close(d.quit)
}

// state says whether every --wait-for target has held, and which --stop-on
// target fired ("" for none).
func (d *deps) state() (ready bool, fired string) {
	if d == nil {
		return true, ""
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.pending) == 0, d.fired
}

// waiting names the --wait-for targets that have not held yet.
func (d *deps) waiting() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for t := range d.pending {
		out = append(out, t.String())
	}
	slices.Sort(out) // map order is random; messages should not be
	return strings.Join(out, ", ")
}

// describe says what each --wait-for target not held yet waits for, for
// the log line that says why the command has not started.
func (d *deps) describe() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for t := range d.pending {
		out = append(out, t.String()+" ("+waitsFor(t)+")")
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// waitsFor says in words when a --wait-for target holds.
func waitsFor(t Target) string {
	switch t.Kind {
	case "file":
		return "the file exists"
	case "tombstone":
		return "a record that says running or ready, of a vigil that runs"
	case "ready":
		return "a record that says ready, of a vigil that runs"
	}
	return "a connection is accepted"
}

// watchPaths evaluates the path targets now and after every batch of
// inotify events that concerns them. Events for other names in a watched
// directory are dropped here, before anything is read: a neighbour that
// writes a log beside a tombstone must cost vigil nothing.
func (d *deps) watchPaths() {
	defer func() {
		unix.Close(d.ino)
		unix.Close(d.wake)
	}()
	buf := make([]byte, 64<<10)
	for {
		d.evaluate()
		for {
			fds := []unix.PollFd{{Fd: int32(d.ino), Events: unix.POLLIN}, {Fd: int32(d.wake), Events: unix.POLLIN}}
			if _, err := unix.Poll(fds, -1); err != nil && err != unix.EINTR {
				d.log.Error("watching the targets", "err", fmt.Errorf("poll: %w", err))
				<-d.quit
				return
			}
			if fds[1].Revents != 0 {
				return
			}
			n, err := unix.Read(d.ino, buf)
			if err == unix.EAGAIN || err == unix.EINTR {
				continue
			}
			if err != nil {
				d.log.Error("watching the targets", "err", fmt.Errorf("read inotify: %w", err))
				<-d.quit
				return
			}
			if d.w.concerns(buf[:n]) {
				break
			}
			// Only others' news: let it pile up in the kernel's queue and
			// take it in one read, rather than waking for each entry a
			// busy neighbour creates. A queue that overflows says so
			// (IN_Q_OVERFLOW), and everything is looked at again.
			select {
			case <-d.quit:
				return
			case <-time.After(othersPause):
			}
		}
	}
}

// othersPause is how long the watcher waits after a batch of events that
// concern none of its targets; news of a target waits at most this long
// behind a neighbour's.
const othersPause = 20 * time.Millisecond

func (d *deps) evaluate() {
	d.watch()
	d.mu.Lock()
	var waiting []Target
	for t := range d.pending {
		if !t.dialled() {
			waiting = append(waiting, t)
		}
	}
	checkStop := d.fired == ""
	d.mu.Unlock()
	changed := false
	for _, t := range waiting {
		if d.holds(t, forWait) {
			d.log.Debug("wait-for target ready", "target", t)
			d.mu.Lock()
			delete(d.pending, t)
			d.mu.Unlock()
			changed = true
		}
	}
	if checkStop {
		for _, t := range d.stopOn {
			if d.holds(t, forStop) {
				d.mu.Lock()
				d.fired = t.String()
				d.mu.Unlock()
				changed = true
				break
			}
		}
	}
	if changed {
		intake.Post(intake.Deps)
	}
}

// The watches. A directory is watched only for entries that arrive
// (created, renamed into it): a file written in it, which a busy log does
// thousands of times a second, raises nothing, and neither does one that
// goes (a target that held has done its work; a record going is seen on
// its own watch). What is written to a record is seen on a watch of the
// record file itself.
const (
	dirMask  = unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR
	fileMask = unix.IN_MODIFY | unix.IN_CLOSE_WRITE | unix.IN_ATTRIB | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_DONT_FOLLOW
)

// watches says which names matter under each watch descriptor: the
// target's own name in its directory, the next step down in an ancestor
// that stands in for a directory not created yet; a watch of a record
// file itself matters whatever it reports.
type watches struct {
	names map[int32]map[string]bool // directory watches
	files map[int32]bool            // watches of record files
}

// concerns reports whether a batch of inotify events read from the
// descriptor holds one that matters.
func (w *watches) concerns(buf []byte) bool {
	for len(buf) >= unix.SizeofInotifyEvent {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[0]))
		end := unix.SizeofInotifyEvent + int(ev.Len)
		if end > len(buf) {
			return true // cut short: cannot tell, so look
		}
		name := bytes.TrimRight(buf[unix.SizeofInotifyEvent:end], "\x00")
		buf = buf[end:]
		switch {
		case ev.Mask&(unix.IN_Q_OVERFLOW|unix.IN_IGNORED|unix.IN_DELETE_SELF|unix.IN_MOVE_SELF) != 0:
			return true // lost events, or a watched inode went: watch again
		case w.files[ev.Wd]:
			return true
		case w.names[ev.Wd][string(name)]: // no copy: a map index
			return true
		}
	}
	return false
}

// watch (re)adds watches for the targets' directories and record files.
// A directory that does not exist yet is stood in for by its nearest
// existing ancestor, and the watch moves down as the tree is created;
// watches no longer needed are removed, so that they raise nothing.
func (d *deps) watch() {
	fd := d.ino
	next := watches{names: map[int32]map[string]bool{}, files: map[int32]bool{}}
	for _, t := range append(append([]Target(nil), d.waitFor...), d.stopOn...) {
		if t.dialled() {
			continue
		}
		if t.Kind != "file" {
			if wd, err := unix.InotifyAddWatch(fd, t.Path, fileMask); err == nil {
				next.files[int32(wd)] = true
			}
		}
		for below, dir := t.Path, filepath.Dir(t.Path); ; below, dir = dir, filepath.Dir(dir) {
			wd, err := unix.InotifyAddWatch(fd, dir, dirMask)
			if err == nil {
				if next.names[int32(wd)] == nil {
					next.names[int32(wd)] = map[string]bool{}
				}
				next.names[int32(wd)][filepath.Base(below)] = true
				break
			}
			if dir == "/" || dir == "." {
				break
			}
		}
	}
	for wd := range d.w.names {
		if next.names[wd] == nil && !next.files[wd] {
			_, _ = unix.InotifyRmWatch(fd, uint32(wd))
		}
	}
	for wd := range d.w.files {
		if next.names[wd] == nil && !next.files[wd] {
			_, _ = unix.InotifyRmWatch(fd, uint32(wd))
		}
	}
	d.w = next
}

// holds reports whether a path target holds (pathHolds).
func (d *deps) holds(t Target, p purpose) bool {
	ok, _ := pathHolds(t, p, d.earlier[t])
	return ok
}

// dial connects to t until it succeeds, backing off from 50ms to 1s.
func (d *deps) dial(t Target) {
	backoff := 50 * time.Millisecond
	for {
		if _, ok := checkDialled(t, time.Second); ok {
			d.log.Debug("wait-for target ready", "target", t)
			d.mu.Lock()
			delete(d.pending, t)
			d.mu.Unlock()
			intake.Post(intake.Deps)
			return
		}
		select {
		case <-d.quit:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// dialTCP connects to addr within timeout. localhost (which an empty host
// also means) is the loopback itself, 127.0.0.1 then ::1, with no resolver:
// an image that holds only vigil has no /etc/hosts, and Go's resolver
// would then ask a DNS server for the name.
func dialTCP(addr string, timeout time.Duration) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || !isLocalhost(host) {
		return net.DialTimeout("tcp", addr, timeout)
	}
	d := net.Dialer{Deadline: time.Now().Add(timeout)}
	c, err := d.Dial("tcp", net.JoinHostPort("127.0.0.1", port))
	if err == nil {
		return c, nil
	}
	if c, err6 := d.Dial("tcp", net.JoinHostPort("::1", port)); err6 == nil {
		return c, nil
	}
	return nil, err
}

// isLocalhost reports whether host names the loopback by name: localhost,
// in any case, with or without the root's dot.
func isLocalhost(host string) bool {
	return strings.EqualFold(strings.TrimSuffix(host, "."), "localhost")
}
