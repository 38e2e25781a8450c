package pid1

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"vigil/reaper"
)

// record is what vigil knows about one termination; hooks, the tombstone
// and the termination log are all views of it.
type record struct {
	class   Class
	exit    reaper.Exit
	status  int // what vigil exits with
	started time.Time
	ended   time.Time
	command []string
	tail    string
}

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
	StderrTail *string  `json:"stderr_tail,omitempty"`
}

func (r *record) facts() hookFacts {
	f := hookFacts{
		Class: r.class, ExitStatus: r.status, Signal: sigName(r.exit.Signal), CoreDumped: r.exit.CoreDumped,
		Pid: r.exit.Pid, Command: r.command, StartedAt: r.started.Format(time.RFC3339Nano),
		EndedAt: r.ended.Format(time.RFC3339Nano), DurationMS: r.ended.Sub(r.started).Milliseconds(),
	}
	if r.exit.Signal == 0 {
		code := r.exit.Code
		f.ExitCode = &code
	}
	return f
}

// env is the VIGIL_* environment of a hook.
func (r *record) env() []string {
	f := r.facts()
	code := ""
	if f.ExitCode != nil {
		code = strconv.Itoa(*f.ExitCode)
	}
	core := "0"
	if f.CoreDumped {
		core = "1"
	}
	return []string{
		"VIGIL_CLASS=" + string(f.Class),
		"VIGIL_EXIT_STATUS=" + strconv.Itoa(f.ExitStatus),
		"VIGIL_EXIT_CODE=" + code,
		"VIGIL_SIGNAL=" + f.Signal,
		"VIGIL_CORE_DUMPED=" + core,
		"VIGIL_PID=" + strconv.Itoa(f.Pid),
		"VIGIL_COMMAND=" + strings.Join(f.Command, " "),
		"VIGIL_STARTED_AT=" + f.StartedAt,
		"VIGIL_ENDED_AT=" + f.EndedAt,
		"VIGIL_DURATION_MS=" + strconv.FormatInt(f.DurationMS, 10),
	}
}

// Tombstone is the termination record other containers read.
type Tombstone struct {
	Name       string  `json:"name"`
	State      string  `json:"state"` // "running" or "exited"
	Pid        int     `json:"pid"`
	StartedAt  string  `json:"started_at"`
	EndedAt    *string `json:"ended_at"`
	Class      *Class  `json:"class"`
	ExitStatus *int    `json:"exit_status"`
	ExitCode   *int    `json:"exit_code"`
	Signal     *string `json:"signal"`
	CoreDumped *bool   `json:"core_dumped"`
}

// writeTombstone writes the running record (r == nil) or the exited one.
// A failure is logged: the child's status matters more than the record.
func (s *supervisor) writeTombstone(r *record) {
	if s.cfg.Tombstone == "" {
		return
	}
	ts := Tombstone{Name: s.name(), State: "running", Pid: s.child, StartedAt: s.started.Format(time.RFC3339Nano)}
	if r != nil {
		f := r.facts()
		ts.State = "exited"
		ts.EndedAt, ts.Class, ts.ExitStatus, ts.ExitCode = &f.EndedAt, &f.Class, &f.ExitStatus, f.ExitCode
		ts.Signal, ts.CoreDumped = &f.Signal, &f.CoreDumped
	}
	b, err := json.Marshal(ts)
	if err != nil {
		s.log.Error("tombstone", "err", err)
		return
	}
	if err := writeAtomic(s.cfg.Tombstone, append(b, '\n')); err != nil {
		s.log.Error("cannot write the tombstone", "path", s.cfg.Tombstone, "err", err)
	}
}

// writeAtomic replaces path with data so that a reader sees either the old
// file or the whole new one: a temporary file in the same directory,
// written, synced, renamed over path. The temporary file is created with
// O_EXCL|O_NOFOLLOW, and rename replaces a symlink planted at path rather
// than following it.
func writeAtomic(path string, data []byte) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp := filepath.Join(dir, fmt.Sprintf(".%s.%d.tmp", base, os.Getpid()))
	_ = unix.Unlink(tmp) // a leftover from a vigil killed mid-write
	fd, err := unix.Open(tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return fmt.Errorf("open %s: %w", tmp, err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	err = f.Chmod(0o644) // whatever the umask
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = unix.Unlink(tmp)
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the rename durable; not every file system can
		d.Close()
	}
	return nil
}

// ReadTombstone reads a tombstone written by vigil.
func ReadTombstone(path string) (Tombstone, error) {
	var ts Tombstone
	b, err := os.ReadFile(path)
	if err != nil {
		return ts, err
	}
	if err := json.Unmarshal(b, &ts); err != nil {
		return ts, fmt.Errorf("tombstone %s: %w", path, err)
	}
	return ts, nil
}

// terminationLogMax is the size the kubelet reads of a termination message.
const terminationLogMax = 4096

// writeTerminationLog writes a short human summary for Kubernetes'
// terminationMessagePath.
func (s *supervisor) writeTerminationLog(r *record) {
	if s.cfg.TerminationLog == "" {
		return
	}
	msg := summary(r)
	fd, err := unix.Open(s.cfg.TerminationLog, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		s.log.Error("cannot write the termination log", "path", s.cfg.TerminationLog, "err", err)
		return
	}
	f := os.NewFile(uintptr(fd), s.cfg.TerminationLog)
	defer f.Close()
	if _, err := f.WriteString(msg); err != nil {
		s.log.Error("cannot write the termination log", "path", s.cfg.TerminationLog, "err", err)
	}
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
	if r.tail != "" {
		room := terminationLogMax - b.Len() - len("last stderr:\n")
		t := r.tail
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
