package pid1

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"vigil/internal/intake"
	"vigil/reaper"
)

// record is what vigil knows about one termination; hooks, the tombstone
// and the termination log are all views of it.
type record struct {
	class    Class
	exit     reaper.Exit
	status   int // what vigil exits with
	started  time.Time
	ended    time.Time
	command  []string
	tail     []byte // the end of the captured stderr, at most tailJSONMax bytes
	restarts int    // runs before this one (--restart)
	oomKills int    // OOM kills in vigil's memory cgroup during the run, the child's own included

	ready      bool      // it said READY=1 or its --ready-on targets held
	readyAt    time.Time // when
	statusText string    // its last STATUS=
	err        string    // vigil's own message when the command never ran
}

// tailJSONMax bounds the stderr tail that goes into the hooks' JSON and the
// termination log; the whole tail is in the file VIGIL_STDERR_TAIL names.
// JSON escapes a binary byte into up to six, so the full tail of a large
// --capture-tail would multiply vigil's memory at the worst moment.
const tailJSONMax = 64 << 10

// commandEnvMax bounds VIGIL_COMMAND: the kernel refuses any environment
// string over MAX_ARG_STRLEN (128 KiB) and every hook would fail to start.
// The whole argv is in the JSON on the hook's stdin.
const commandEnvMax = 32 << 10

// hookFacts is the JSON object a hook reads on its stdin.
type hookFacts struct {
	Class      Class    `json:"class"`
	ExitStatus int      `json:"exit_status"`
	ExitCode   *int     `json:"exit_code"`
	Signal     string   `json:"signal"`
	CoreDumped bool     `json:"core_dumped"`
	Pid        int      `json:"pid"`
	Command    []string `json:"command"`
	StartedAt  string   `json:"started_at"`
	EndedAt    string   `json:"ended_at"`
	DurationMS int64    `json:"duration_ms"`
	Error      string   `json:"error,omitempty"`
	Restarts   int      `json:"restarts"`
	OOMKills   int      `json:"oom_kills"`
	Ready      bool     `json:"ready"`
	ReadyAt    *string  `json:"ready_at"`
	Status     string   `json:"status"`
	StderrTail *string  `json:"stderr_tail,omitempty"`
}

func (r *record) facts() hookFacts {
	f := hookFacts{
		Class: r.class, ExitStatus: r.status, Signal: sigName(r.exit.Signal), CoreDumped: r.exit.CoreDumped,
		Pid: r.exit.Pid, Command: r.command, StartedAt: r.started.Format(time.RFC3339Nano),
		EndedAt: r.ended.Format(time.RFC3339Nano), DurationMS: r.ended.Sub(r.started).Milliseconds(),
		Error: r.err, Restarts: r.restarts, OOMKills: r.oomKills, Ready: r.ready, Status: r.statusText,
	}
	if r.ready {
		at := r.readyAt.Format(time.RFC3339Nano)
		f.ReadyAt = &at
	}
	if r.exit.Signal == 0 {
		code := r.exit.Code
		f.ExitCode = &code
	}
	return f
}

// hookVars are the VIGIL_* variables a hook gets, each with its value from
// the record's facts, in the order the hook's environment lists them: env
// sets them and withoutHookVars drops every one of them (and
// stderrTailVar) from what vigil passes on.
var hookVars = [...]struct {
	name  string
	value func(f *hookFacts) string
}{
	{"VIGIL_CLASS", func(f *hookFacts) string { return string(f.Class) }},
	{"VIGIL_EXIT_STATUS", func(f *hookFacts) string { return strconv.Itoa(f.ExitStatus) }},
	{"VIGIL_EXIT_CODE", func(f *hookFacts) string {
		if f.ExitCode == nil {
			return ""
		}
		return strconv.Itoa(*f.ExitCode)
	}},
	{"VIGIL_SIGNAL", func(f *hookFacts) string { return f.Signal }},
	{"VIGIL_CORE_DUMPED", func(f *hookFacts) string {
		if f.CoreDumped {
			return "1"
		}
		return "0"
	}},
	{"VIGIL_PID", func(f *hookFacts) string { return strconv.Itoa(f.Pid) }},
	{"VIGIL_COMMAND", func(f *hookFacts) string { return truncate(strings.Join(f.Command, " "), commandEnvMax) }},
	{"VIGIL_STARTED_AT", func(f *hookFacts) string { return f.StartedAt }},
	{"VIGIL_ENDED_AT", func(f *hookFacts) string { return f.EndedAt }},
	{"VIGIL_DURATION_MS", func(f *hookFacts) string { return strconv.FormatInt(f.DurationMS, 10) }},
	{"VIGIL_ERROR", func(f *hookFacts) string { return truncate(f.Error, commandEnvMax) }},
	{"VIGIL_RESTARTS", func(f *hookFacts) string { return strconv.Itoa(f.Restarts) }},
	{"VIGIL_OOM_KILLS", func(f *hookFacts) string { return strconv.Itoa(f.OOMKills) }},
	{"VIGIL_STATUS", func(f *hookFacts) string { return truncate(f.Status, commandEnvMax) }},
}

// stderrTailVar names the file with the whole captured tail; set apart
// from hookVars, as it exists only once the tail is saved (listHooks).
const stderrTailVar = "VIGIL_STDERR_TAIL"

// isHookVar reports whether name is one of the variables vigil sets for
// hooks.
func isHookVar(name string) bool {
	if name == stderrTailVar {
		return true
	}
	for _, v := range hookVars {
		if v.name == name {
			return true
		}
	}
	return false
}

// env is the VIGIL_* environment of a hook.
func (r *record) env() []string {
	f := r.facts()
	out := make([]string, 0, len(hookVars))
	for _, v := range hookVars {
		out = append(out, v.name+"="+v.value(&f))
	}
	return out
}

// truncate cuts s to at most n bytes, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-len("...")] + "..."
}

// Tombstone is the termination record other containers read.
type Tombstone struct {
	Name       string  `json:"name"`
	State      string  `json:"state"` // "starting", "running", "ready", "stopping" or "exited"
	Pid        int     `json:"pid"`
	StartedAt  string  `json:"started_at"`
	EndedAt    *string `json:"ended_at"`
	Class      *Class  `json:"class"`
	ExitStatus *int    `json:"exit_status"`
	ExitCode   *int    `json:"exit_code"`
	Signal     *string `json:"signal"`
	CoreDumped *bool   `json:"core_dumped"`
	Error      string  `json:"error,omitempty"`
	Restarts   int     `json:"restarts,omitempty"`
	// OOMKills counts the OOM kills in vigil's memory cgroup during the
	// run (workers', and the child's own when its class is oom).
	OOMKills int     `json:"oom_kills,omitempty"`
	Status   string  `json:"status,omitempty"`   // the child's last STATUS=
	ReadyAt  *string `json:"ready_at,omitempty"` // when it became ready

	// Which run of vigil wrote it: readers never act on a record of an
	// earlier run (see tombstoneHolds).
	RunID        string `json:"run_id,omitempty"`         // random, one per vigil process
	RunStartedAt string `json:"run_started_at,omitempty"` // when that vigil started
	// Locked says that the vigil that wrote it holds an OFD lock on the
	// file while it runs: a reader that finds no lock knows it is gone.
	Locked bool `json:"locked,omitempty"`
}

// tombstone is the record for the machine's state now, with which run of
// vigil wrote it.
func (s *supervisor) tombstone() Tombstone {
	ts := s.m.tombstone()
	ts.RunID, ts.RunStartedAt, ts.Locked = s.runID, s.runStarted.Format(time.RFC3339Nano), s.tombLocked
	return ts
}

// tombstoneBytes is the tombstone for the machine's state now, as written.
func (s *supervisor) tombstoneBytes() []byte {
	b, err := json.Marshal(s.tombstone())
	if err != nil {
		panic(err) // strings, numbers and booleans only
	}
	return append(b, '\n')
}

// tombstoneSize is the room a record of this run can need: its name is
// fixed for the run, everything else is bounded.
func (s *supervisor) tombstoneSize() int64 {
	name, _ := json.Marshal(s.m.name())
	return int64(tombstoneRoom+len(name)+4095) / 4096 * 4096
}

// writeTombstone queues the tombstone for the machine's state now.
func (s *supervisor) writeTombstone() {
	if s.cfg.Tombstone == "" {
		return
	}
	s.records.tombstone(s.cfg.Tombstone, s.tombstoneBytes())
}

// writer writes the records on a goroutine of its own, so that an fsync,
// or a file system that hangs, never keeps the loop from reaping and
// forwarding. Only the newest tombstone matters: one still waiting is
// replaced by the next.
type writer struct {
	log *slog.Logger

	store *store // the tombstone's files; only the writing goroutine uses it once it runs

	mu       sync.Mutex
	tombPath string
	tomb     []byte
	termFile *os.File
	term     string
	running  bool
}

func newWriter(log *slog.Logger) *writer { return &writer{log: log} }

func (w *writer) tombstone(path string, data []byte) {
	w.mu.Lock()
	w.tombPath, w.tomb = path, data
	w.start()
	w.mu.Unlock()
}

func (w *writer) terminationLog(f *os.File, msg string) {
	w.mu.Lock()
	w.termFile, w.term = f, msg
	w.start()
	w.mu.Unlock()
}

// start runs the writing goroutine unless it runs already; w.mu is held.
func (w *writer) start() {
	if !w.running {
		w.running = true
		go w.run()
	}
}

func (w *writer) run() {
	for {
		w.mu.Lock()
		path, tomb, f, term, st := w.tombPath, w.tomb, w.termFile, w.term, w.store
		w.tomb, w.termFile = nil, nil
		if tomb == nil && f == nil {
			w.running = false
			w.mu.Unlock()
			intake.Post(intake.Records)
			return
		}
		w.mu.Unlock()
		if tomb != nil {
			if err := st.write(tomb); err != nil {
				w.log.Error("cannot write the tombstone", "path", path, "err", err)
			}
		}
		if f != nil {
			if err := rewrite(f, term); err != nil {
				w.log.Error("cannot write the termination log", "path", f.Name(), "err", err)
			}
		}
	}
}

// idle reports whether every queued record is written.
func (w *writer) idle() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.running
}

// rewrite replaces the contents of f with s: written over the room taken
// at start, then cut to its length (never cut to 0 first, which would
// give the room back before the write), then the room taken again for the
// next end under --restart.
func rewrite(f *os.File, s string) error {
	if _, err := f.WriteAt([]byte(s), 0); err != nil {
		return err
	}
	if err := f.Truncate(int64(len(s))); err != nil {
		return err
	}
	_ = unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, 0, terminationLogMax)
	return nil
}

// recordMax bounds what vigil reads of a record file another process
// wrote: a tombstone is a few hundred bytes.
const recordMax = 64 << 10

// readRecordFile reads a file a user named without ever blocking on it: it
// is opened non-blocking and without following a final symlink, must be a
// regular file (a FIFO would hang the reader for ever), and is read up to
// recordMax bytes. It also says whether someone holds a lock on it (what
// a live vigil does on its tombstone), asked on the same open file.
func readRecordFile(path string) ([]byte, lockState, error) {
	// Look before opening: opening a device can have effects of its own
	// (a tape rewinds on close). The check after opening is the one that
	// counts; this one keeps vigil away from anything but files.
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return nil, lockUnknown, &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFLNK:
		return nil, lockUnknown, fmt.Errorf("%s is a symlink; not followed", path)
	default:
		return nil, lockUnknown, fmt.Errorf("%s is not a regular file", path)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, lockUnknown, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, lockUnknown, err
	} else if !fi.Mode().IsRegular() {
		return nil, lockUnknown, fmt.Errorf("%s: not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, recordMax+1))
	if err != nil {
		return nil, lockUnknown, err
	}
	if len(b) > recordMax {
		return nil, lockUnknown, fmt.Errorf("%s: larger than %d bytes", path, recordMax)
	}
	return b, lockOf(fd), nil
}

// readTombstone reads a tombstone and what its lock says of its writer.
func readTombstone(path string) (Tombstone, liveness, error) {
	var ts Tombstone
	b, lock, err := readRecordFile(path)
	if err != nil {
		return ts, livenessUnknown, err
	}
	if err := json.Unmarshal(b, &ts); err != nil {
		return ts, livenessUnknown, fmt.Errorf("%s is not a tombstone: %w", path, err)
	}
	return ts, livenessOf(ts.Locked, lock), nil
}

// terminationLogMax is the size the kubelet reads of a termination message.
const terminationLogMax = 4096

// checkRecordPath fails, as a usage error, unless vigil will be able to
// write a record at path: its directory exists and is writable, and path
// is absent or a regular file (or, for the tombstone, a symlink, which the
// rename replaces).
func checkRecordPath(flag, path string, symlinkOK bool) error {
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fail(ExitUsage, "%s %q: directory %s does not exist", flag, path, dir)
	}
	if err := unix.Access(dir, unix.W_OK); err != nil {
		return fail(ExitUsage, "%s %q: directory %s is not writable: %v", flag, path, dir, err)
	}
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fail(ExitUsage, "%s %q: %v", flag, path, unwrapPath(err))
	case fi.Mode().IsRegular(), symlinkOK && fi.Mode()&fs.ModeSymlink != 0:
		return nil
	}
	return fail(ExitUsage, "%s %q: not a regular file (%s)", flag, path, fi.Mode().Type())
}

// openTerminationLog opens (creating) the termination log at start: that
// checks it, and the end then only writes. Non-blocking, so a FIFO planted
// there fails at once instead of hanging vigil; not following a symlink.
func openTerminationLog(path string) (*os.File, error) {
	const flag = "--termination-log"
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, fail(ExitUsage, "%s %q: directory %s does not exist", flag, path, dir)
	}
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		if errors.Is(err, unix.ENXIO) || errors.Is(err, unix.ELOOP) {
			return nil, fail(ExitUsage, "%s %q: not a regular file", flag, path)
		}
		return nil, fail(ExitUsage, "%s %q: %v", flag, path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fail(ExitUsage, "%s %q: not a regular file", flag, path)
	}
	// The room for the message, now: at the end a full disk would leave
	// the kubelet an empty file.
	if err := unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, 0, terminationLogMax); err != nil &&
		!errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) {
		f.Close()
		return nil, fail(ExitUsage, "%s %q: no room for the message (%d bytes): %v", flag, path, terminationLogMax, err)
	}
	return f, nil
}

// summary is the termination message: one line of facts, then as much of
// the end of the captured stderr as fits in the kubelet's 4096 bytes.
func summary(r *record) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s, exit status %d", filepath.Base(r.command[0]), r.class, r.exit.Status())
	if r.exit.Signal != 0 {
		fmt.Fprintf(&b, " (%s", sigName(r.exit.Signal))
		if r.exit.CoreDumped {
			b.WriteString(", core dumped")
		}
		b.WriteString(")")
	}
	b.WriteString("\n")
	if r.err != "" {
		b.WriteString(r.err + "\n")
	}
	if len(r.tail) > 0 {
		room := terminationLogMax - b.Len() - len("last stderr:\n")
		t := string(r.tail)
		if len(t) > room {
			t = t[len(t)-room:]
			// Start at a line boundary when there is one.
			if i := strings.IndexByte(t, '\n'); i >= 0 && i < len(t)-1 {
				t = t[i+1:]
			}
		}
		b.WriteString("last stderr:\n")
		b.WriteString(t)
	}
	out := b.String()
	if len(out) > terminationLogMax {
		out = out[:terminationLogMax]
	}
	return out
}
