package pid1

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

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
	ino             *os.File // nil when no target is a path
	quit            chan struct{}

	mu      sync.Mutex
	pending map[Target]bool // --wait-for targets not yet seen to hold
	fired   string          // the first --stop-on target seen to hold
}

func startDeps(waitFor, stopOn []Target, log *slog.Logger) (*deps, error) {
	d := &deps{waitFor: waitFor, stopOn: stopOn, log: log, quit: make(chan struct{}), pending: map[Target]bool{}}
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
		fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
		if err != nil {
			return nil, fail(ExitInternal, "inotify: %w", err)
		}
		// A non-blocking descriptor goes to the runtime's poller, so the
		// reader sleeps without holding a thread.
		d.ino = os.NewFile(uintptr(fd), "inotify")
		go d.watchPaths()
	}
	return d, nil
}

func (d *deps) close() {
	if d == nil {
		return
	}
	close(d.quit)
	if d.ino != nil {
		d.ino.Close()
	}
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

// watchPaths evaluates the path targets now and after every batch of
// inotify events.
func (d *deps) watchPaths() {
	buf := make([]byte, 4096)
	for {
		d.evaluate()
		if _, err := d.ino.Read(buf); err != nil {
			return
		}
	}
}

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
		if holds(t, false) {
			d.log.Debug("wait-for target ready", "target", t)
			d.mu.Lock()
			delete(d.pending, t)
			d.mu.Unlock()
			changed = true
		}
	}
	if checkStop {
		for _, t := range d.stopOn {
			if holds(t, true) {
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

// watch (re)adds watches for the targets' directories. A directory that
// does not exist yet is stood in for by its nearest existing ancestor, and
// the watch moves down as the tree is created.
func (d *deps) watch() {
	const mask = unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_CLOSE_WRITE | unix.IN_MODIFY |
		unix.IN_ATTRIB | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF
	for _, t := range append(append([]Target(nil), d.waitFor...), d.stopOn...) {
		if t.dialled() {
			continue
		}
		for dir := filepath.Dir(t.Path); ; dir = filepath.Dir(dir) {
			if _, err := unix.InotifyAddWatch(int(d.ino.Fd()), dir, mask); err == nil || dir == "/" || dir == "." {
				break
			}
		}
	}
}

// holds reports whether a path target holds: a file exists; a tombstone
// says running or ready (wait-for) or exited (stop-on); a ready: record
// says ready.
func holds(t Target, stopOn bool) bool {
	switch t.Kind {
	case "file":
		_, err := os.Stat(t.Path)
		return err == nil
	case "tombstone", "ready":
		ts, err := ReadTombstone(t.Path)
		if err != nil {
			return false
		}
		switch {
		case stopOn:
			return ts.State == "exited"
		case t.Kind == "ready":
			return ts.State == "ready"
		}
		return ts.State == "running" || ts.State == "ready"
	}
	return false
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
