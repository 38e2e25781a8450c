package pid1

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"vigil/signals"
)

// Target is something vigil waits for (--wait-for) or stops on (--stop-on).
type Target struct {
	Kind string // "file", "tombstone" or "tcp"
	Path string // for file and tombstone
	Addr string // HOST:PORT for tcp
}

func (t Target) String() string {
	if t.Kind == "tcp" {
		return "tcp:" + t.Addr
	}
	return t.Kind + ":" + t.Path
}

// ParseTarget reads file:PATH, tombstone:PATH or tcp:HOST:PORT.
func ParseTarget(s string) (Target, error) {
	kind, rest, ok := strings.Cut(s, ":")
	if !ok || rest == "" {
		return Target{}, fmt.Errorf("target %q: want file:PATH, tombstone:PATH or tcp:HOST:PORT", s)
	}
	switch kind {
	case "file", "tombstone":
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
	}
	return Target{}, fmt.Errorf("target %q: unknown kind %q (want file, tombstone or tcp)", s, kind)
}

// deps watches the --wait-for and --stop-on targets. Files are watched with
// inotify on their directories; nothing is polled.
type deps struct {
	waitFor, stopOnT []Target
	ino              *os.File      // nil when no target is a path
	events           chan struct{} // one pending wake-up per batch of inotify events
}

func newDeps(waitFor, stopOn []Target) (*deps, error) {
	d := &deps{waitFor: waitFor, stopOnT: stopOn}
	needs := false
	for _, t := range append(append([]Target(nil), waitFor...), stopOn...) {
		needs = needs || t.Kind != "tcp"
	}
	if !needs {
		return d, nil
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fail(ExitInternal, "inotify: %w", err)
	}
	// A non-blocking descriptor goes to the runtime's poller, so the reader
	// below sleeps without holding a thread.
	d.ino = os.NewFile(uintptr(fd), "inotify")
	d.events = make(chan struct{}, 1)
	go d.read()
	return d, nil
}

func (d *deps) read() {
	buf := make([]byte, 4096)
	for {
		if _, err := d.ino.Read(buf); err != nil {
			return
		}
		select {
		case d.events <- struct{}{}:
		default:
		}
	}
}

func (d *deps) close() {
	if d != nil && d.ino != nil {
		d.ino.Close()
	}
}

// watch (re)adds watches for the targets' directories. A directory that
// does not exist yet is stood in for by its nearest existing ancestor, and
// the watch moves down as the tree is created.
func (d *deps) watch(ts []Target) {
	const mask = unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_CLOSE_WRITE | unix.IN_MODIFY |
		unix.IN_ATTRIB | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF
	for _, t := range ts {
		if t.Kind == "tcp" {
			continue
		}
		for dir := filepath.Dir(t.Path); ; dir = filepath.Dir(dir) {
			if _, err := unix.InotifyAddWatch(int(d.ino.Fd()), dir, mask); err == nil || dir == "/" || dir == "." {
				break
			}
		}
	}
}

// ready reports whether a path target holds: for wait-for a file exists or
// a tombstone says running; for stop-on a file exists or a tombstone says
// exited.
func ready(t Target, tombstoneState string) bool {
	switch t.Kind {
	case "file":
		_, err := os.Stat(t.Path)
		return err == nil
	case "tombstone":
		ts, err := ReadTombstone(t.Path)
		return err == nil && ts.State == tombstoneState
	}
	return false
}

// waitReady returns once every --wait-for target is ready. It fails with
// ExitWaitTimeout after timeout (0: never), and with 128+N when a stop
// signal N arrives first, since there is no child yet to pass it to.
func (d *deps) waitReady(ctx context.Context, timeout time.Duration, stop func(os.Signal) bool,
	sigs <-chan os.Signal, log *slog.Logger) error {
	if len(d.waitFor) == 0 {
		return nil
	}
	var deadline <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	quit := make(chan struct{})
	defer close(quit)
	pending := map[Target]bool{}
	tcpUp := make(chan Target, len(d.waitFor))
	for _, t := range d.waitFor {
		pending[t] = true
		if t.Kind == "tcp" {
			go dialUntilUp(t, tcpUp, quit)
		}
	}
	var files []Target
	for t := range pending {
		if t.Kind != "tcp" {
			files = append(files, t)
		}
	}
	for {
		if d.ino != nil {
			d.watch(files)
		}
		for _, t := range files {
			if pending[t] && ready(t, "running") {
				log.Debug("wait-for target ready", "target", t)
				delete(pending, t)
			}
		}
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-d.events:
		case t := <-tcpUp:
			log.Debug("wait-for target ready", "target", t)
			delete(pending, t)
		case sig := <-sigs:
			if stop(sig) {
				n := int(sig.(unix.Signal))
				return &Error{Code: 128 + n, Err: fmt.Errorf("%s while waiting for %s; command not started", signals.Name(sig.(unix.Signal)), names(pending))}
			}
		case <-deadline:
			return fail(ExitWaitTimeout, "--wait-for %s: not ready after %s; command not started", names(pending), timeout)
		case <-ctx.Done():
			return fail(ExitInternal, "cancelled while waiting for %s", names(pending))
		}
	}
}

func names(ts map[Target]bool) string {
	var out []string
	for t := range ts {
		out = append(out, t.String())
	}
	slices.Sort(out) // map order is random; messages should not be
	return strings.Join(out, ", ")
}

// dialUntilUp connects to t until it succeeds, backing off from 50ms to 1s.
func dialUntilUp(t Target, up chan<- Target, quit <-chan struct{}) {
	backoff := 50 * time.Millisecond
	for {
		c, err := net.DialTimeout("tcp", t.Addr, time.Second)
		if err == nil {
			c.Close()
			up <- t
			return
		}
		select {
		case <-quit:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// stopOn returns the channel the supervisor selects on for --stop-on, with
// one wake-up already pending so that a target that fired before the child
// started is seen at once. It is nil when there is nothing to watch.
func (d *deps) stopOn() <-chan struct{} {
	if len(d.stopOnT) == 0 || d.ino == nil {
		return nil
	}
	d.watch(d.stopOnT)
	select {
	case d.events <- struct{}{}:
	default:
	}
	return d.events
}

// stopOnFired returns the first --stop-on target that holds, or "".
func (d *deps) stopOnFired() string {
	d.watch(d.stopOnT)
	for _, t := range d.stopOnT {
		if ready(t, "exited") {
			return t.String()
		}
	}
	return ""
}
