package pid1

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"vigil/internal/intake"
)

// oomWatch reads the OOM-kill counter of vigil's memory cgroup and, where
// the kernel can say when it changes, posts intake.OOM then: the loop reads
// the counter and hands the machine the value. The loop reads it, too,
// before each drain (a victim's kill is counted before it can exit) and
// before each spawn (the base of the run's count).
type oomWatch struct {
	cg     memCgroup
	counts *os.File // kept open: one pread per reading
	events *os.File // inotify (v2) or an eventfd (v1); nil: no events
	how    string   // for the debug line: how changes are learnt
	buf    [512]byte
}

// startOOMWatch opens the counter and the event source of cg.
//
// cgroup v2: memory.events is a file the kernel marks modified when one of
// its counters changes (at most 100 times a second per file), so an inotify
// IN_MODIFY watch on it wakes vigil for each OOM kill.
//
// cgroup v1: memory.oom_control notifies through an eventfd registered by
// writing "EVENTFD FD" to cgroup.event_control. That needs the cgroup file
// system writable, which it is not in most containers (Docker and
// Kubernetes mount /sys/fs/cgroup read-only): there vigil has no event,
// and the counter is read only when it can matter (see oomWatch). The
// v1 event also comes before the kill it announces, so the counter is
// read again at the reap either way.
func startOOMWatch(cg memCgroup) (*oomWatch, error) {
	f, err := os.Open(cg.counts)
	if err != nil {
		return nil, err
	}
	w := &oomWatch{cg: cg, counts: f}
	if cg.v2 {
		w.events, err = inotifyModified(cg.counts)
		w.how = "inotify on " + cg.counts
	} else {
		w.events, err = oomControlEventfd(cg.dir, f)
		w.how = "eventfd on " + cg.counts
	}
	if err != nil {
		w.how = fmt.Sprintf("no events (%v): read before each reap and each spawn", err)
		return w, nil
	}
	go w.relay(w.events)
	return w, nil
}

// relay posts intake.OOM for every event until the source is closed.
func (w *oomWatch) relay(f *os.File) {
	var b [256]byte
	for {
		if _, err := f.Read(b[:]); err != nil {
			return
		}
		intake.Post(intake.OOM)
	}
}

// read returns the counters now.
func (w *oomWatch) read() (oomCounts, bool) {
	n, err := w.counts.ReadAt(w.buf[:], 0)
	if n == 0 && err != nil {
		return oomCounts{}, false
	}
	return parseOOMCounts(w.buf[:n])
}

func (w *oomWatch) close() {
	if w == nil {
		return
	}
	if w.events != nil {
		w.events.Close()
	}
	w.counts.Close()
}

// inotifyModified returns an inotify descriptor, as a file the runtime's
// poller waits on, that becomes readable when path is modified.
func inotifyModified(path string) (*os.File, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	if _, err := unix.InotifyAddWatch(fd, path, unix.IN_MODIFY); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("inotify_add_watch %s: %w", path, err)
	}
	return os.NewFile(uintptr(fd), "inotify"), nil
}

// oomControlEventfd registers an eventfd for the OOM notifications of the
// v1 memory cgroup dir, whose memory.oom_control is open as ctl.
func oomControlEventfd(dir string, ctl *os.File) (*os.File, error) {
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	control := filepath.Join(dir, "cgroup.event_control")
	cf, err := os.OpenFile(control, os.O_WRONLY, 0)
	if err == nil {
		_, err = cf.WriteString(strconv.Itoa(efd) + " " + strconv.Itoa(int(ctl.Fd())))
		cf.Close()
	}
	if err != nil {
		unix.Close(efd)
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("%s: %w", control, err)
	}
	return os.NewFile(uintptr(efd), "eventfd"), nil
}
