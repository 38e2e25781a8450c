// Package pid1 is vigil's supervisor: it spawns the command, forwards
// signals, reaps, classifies how the command ended, runs the hooks for that
// class, cleans up what is left and returns the status to exit with.
//
// The decisions are made by a state machine of plain values (machine.go);
// this file is the loop that feeds it events from the one intake
// (vigil/internal/intake) and performs what it decides.
package pid1

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"vigil/internal/intake"
	"vigil/internal/notify"
	"vigil/internal/slim"
	"vigil/reaper"
	"vigil/signals"
)

// supervisor is one Run: the machine and the handles the loop needs to act
// on its decisions. Only the goroutine that called Run touches it, and it
// is also the only one that reaps, so a pid is always known before its exit
// can be seen.
type supervisor struct {
	cfg    Config
	log    *slog.Logger
	m      *machine
	isInit bool

	cred *syscall.Credential // --user, resolved before anything starts
	home string

	deps     *deps
	readyFd  *readyFd  // the --ready-fd pipe of the current run
	sockets  []uintptr // passed to every run at 3..: socket activation, then --listen
	self     string    // vigil's executable, for the internal mode (setpid)
	fdNames  string    // LISTEN_FDNAMES when --listen adds sockets
	readyOn  *deps     // the --ready-on targets of the current run
	listener *notify.Listener
	upstream chan []string // messages for the service manager vigil reports to, a merge's datagrams together
	tail     *tail
	records  *writer
	termLog  *os.File  // opened (and so checked) at start
	oom      *oomWatch // nil: no memory cgroup to read
	// childOOMScore is the oom_score_adj vigil started with, which its
	// children get when --oom-protect lowered vigil's own (protected).
	childOOMScore int
	protected     bool

	// Which run of vigil this is, for the tombstone: readers never act on
	// a record of an earlier run.
	runID      string
	runStarted time.Time
	tombLocked bool // the tombstone's files carry vigil's lock

	pend  intake.Pending
	buf   []reaper.Exit // reused by every drain
	timer *time.Timer

	hooks     []hook
	hookStart time.Time
	hookEnv   []string
	hookJSON  []byte
	tailFile  string // the whole captured tail, for hooks
	procNote  bool   // the untrusted /proc was reported

	tookTerminal bool // a run's group was given the terminal's foreground
	child        int  // the main child this run spawned (its group's id); 0 before

	// The executable's pages, dropped each time vigil goes idle once the
	// child runs (dropIdle).
	pages    *slim.Pages // found in setup; nil when they cannot be (no /proc)
	dropping bool        // from the first spawn on
	busy     bool        // vigil ran since the last drop
	lastDrop time.Time   // when they were last dropped
}

// dropGap is the least time between two drops of the executable's pages:
// in a storm of exits vigil wakes thousands of times a second, and each
// drop makes the next wake-up fault its code back in.
const dropGap = 100 * time.Millisecond

// dropIdle drops the executable's pages when vigil is about to sleep and
// has run since the last drop, so that between events vigil holds little
// more than its heap and stacks, whatever the last event needed: the OOM
// killer picks the process with the most resident memory, file pages
// included, and an init that just wrote its tombstone (encoding/json,
// the file system) has mapped most of its binary again. Not while a
// record is being written (its goroutine would fault the pages back at
// once; its end wakes vigil), and not more often than dropGap: then the
// drop is due at the returned time, which the sleep honours (zero: no
// drop due).
func (s *supervisor) dropIdle() time.Time {
	if !s.dropping || !s.busy || !s.records.idle() {
		return time.Time{}
	}
	now := time.Now()
	if due := s.lastDrop.Add(dropGap); now.Before(due) {
		return due
	}
	if _, err := s.pages.Drop(); err != nil {
		s.pages, s.dropping = nil, false // the mappings changed under vigil: stop
		return time.Time{}
	}
	s.busy, s.lastDrop = false, now
	return time.Time{}
}

// Run supervises cfg.Command until it has ended and everything after it
// (cleanup, records, hooks) is done, and returns the status vigil should
// exit with. A non-nil error is a failure of vigil's own to report beside
// the status: the command could not start (126, 127), a stop signal came
// before it started (128+N), --wait-for timed out (124), or vigil could not
// set itself up (2, 125; then nothing was started).
func Run(ctx context.Context, cfg Config) (int, error) {
	if err := cfg.Validate(); err != nil {
		return codeOf(err), err
	}
	cfg = cfg.withDefaults()
	if cfg.Pause {
		return pause(ctx, cfg)
	}
	// With --no-new-privs or --pdeathsig the supervisor keeps one OS thread
	// for its whole life: prctl sets both on the calling thread only, and
	// every fork (child and hooks) happens on this one, so what it starts
	// inherits no_new_privs, and the parent-death signal cannot vanish with
	// a thread the runtime retires. Otherwise it stays unlocked: a locked
	// goroutine costs a thread hand-off on every wake-up (signal latency).
	if cfg.NoNewPrivs || cfg.PdeathSig != 0 {
		runtime.LockOSThread()
	}
	s, err := newSupervisor(cfg)
	if err != nil {
		return codeOf(err), err
	}
	defer s.close()
	if err := s.setup(); err != nil {
		return codeOf(err), err
	}
	stopCancel := context.AfterFunc(ctx, func() { intake.Post(intake.Cancel) })
	defer stopCancel()

	// Every signal is caught before anything can be forwarded (see
	// intake: the last ones were enabled while the command line was read).
	intake.Ready()

	// From here on vigil may not bail out: whatever happens, the child's
	// end (or the reason it never started) is recorded and returned.
	s.timer = time.NewTimer(time.Hour)
	s.timer.Stop()
	now := time.Now()
	s.m.targetsPending(s.deps.waiting())
	s.feed(now) // a stop signal that came during start-up ends vigil here
	s.m.begin(now)
	if s.m.waiting() {
		s.log.Info("waiting before starting the command", "for", s.deps.describe())
	}
	// The watchers may have had news before the machine could take it.
	if ready, fired := s.deps.state(); ready {
		s.m.depsReady()
	} else if fired != "" {
		s.m.stopOnFired(now)
	}
	for {
		s.perform()
		if s.m.done() {
			break
		}
		due := s.sleep()
		now := time.Now()
		s.m.woke(now, due)
		s.feed(now)
		s.m.tick(now)
	}
	return s.m.result()
}

func newSupervisor(cfg Config) (*supervisor, error) {
	if cfg.Env == nil {
		cfg.Env = os.Environ()
	}
	s := &supervisor{cfg: cfg, log: cfg.Log, isInit: os.Getpid() == 1,
		runID: fmt.Sprintf("%016x", rand.Uint64()), runStarted: time.Now()}
	s.m = newMachine(cfg, s.isInit)
	return s, nil
}

func codeOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ExitInternal
}

// setup does everything that may fail before anything starts; a failure is
// vigil's own (2 or 125) and nothing is recorded.
func (s *supervisor) setup() error {
	for _, sig := range intake.Ignored() {
		s.log.Debug("signal ignored at start; leaving it ignored, not forwarding it", "signal", signals.Name(sig))
	}
	if err := reserveDescriptors(8); err != nil {
		return err
	}
	// Found here, while the last signals are still being caught (see
	// intake), rather than after the spawn, where the child waits on it.
	if pages, err := slim.ExecutablePages(); err != nil {
		s.log.Debug("cannot drop the executable's pages", "err", err)
	} else {
		s.pages = pages
	}
	if s.cfg.PdeathSig != 0 {
		ppid := os.Getppid()
		if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(s.cfg.PdeathSig), 0, 0, 0); err != nil {
			return fail(ExitInternal, "prctl(PR_SET_PDEATHSIG): %w", err)
		}
		// The parent may have died before the prctl took effect.
		if os.Getppid() != ppid {
			_ = unix.Kill(os.Getpid(), s.cfg.PdeathSig)
		}
	}
	if s.cfg.Subreaper == SubreaperOn || (s.cfg.Subreaper == SubreaperAuto && !s.isInit) {
		if err := reaper.SetSubreaper(); err != nil {
			s.log.Warn("cannot become a child subreaper; orphans will be reparented elsewhere", "err", err)
		}
	}
	if s.cfg.NoNewPrivs {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fail(ExitInternal, "prctl(PR_SET_NO_NEW_PRIVS): %w", err)
		}
	}
	var err error
	if s.cfg.User != "" {
		// Before any waiting: an unknown user is a usage error, now.
		if s.cred, s.home, err = lookupUser(s.cfg.User, "/etc/passwd", "/etc/group"); err != nil {
			return &Error{Code: ExitUsage, Err: err}
		}
	}
	// The records' paths are proven now, room included, not found wanting
	// at the end. The first tombstone says starting.
	if s.cfg.TerminationLog != "" {
		if s.termLog, err = openTerminationLog(s.cfg.TerminationLog); err != nil {
			return err
		}
	}
	s.records = newWriter(s.log)
	if s.cfg.Tombstone != "" {
		st, err := openStore(s.cfg.Tombstone, s.tombstoneSize(), func(locked bool) []byte {
			s.tombLocked = locked
			return s.tombstoneBytes()
		})
		if err != nil {
			return err
		}
		s.records.store = st
		if !st.locked {
			s.log.Debug("the tombstone's file system takes no locks: readers cannot tell whether this vigil runs", "path", s.cfg.Tombstone)
		}
	}
	if err := s.setupOOM(); err != nil {
		return err
	}
	if err := s.setupSockets(); err != nil {
		return err
	}
	if err := s.setupNotify(); err != nil {
		return err
	}
	if s.deps, err = startDeps(s.cfg.WaitFor, s.cfg.StopOn, s.log); err != nil {
		return err
	}
	return nil
}

func (s *supervisor) close() {
	if s.tookTerminal && s.child != 0 && foregroundIs(0, s.child) {
		// The terminal still names the last run's group: the shell that
		// started vigil takes its terminal back from vigil's group.
		reclaimTerminal(0)
	}
	s.deps.close()
	s.readyOn.close()
	s.oom.close()
	s.readyFd.close()
	if s.listener != nil {
		s.listener.Close()
	}
	if s.upstream != nil {
		close(s.upstream)
	}
	if s.termLog != nil {
		s.termLog.Close()
	}
	if s.records != nil && s.records.idle() {
		s.records.store.close()
	}
	if s.tailFile != "" {
		os.Remove(s.tailFile)
	}
}

// sleep waits for the intake or the next deadline (the machine's, or
// the page drop's), and returns that deadline (zero if none). With neither
// a signal nor a deadline vigil sleeps without a timer: an idle init does
// not wake up.
func (s *supervisor) sleep() time.Time {
	next := s.m.next()
	if at := s.dropIdle(); !at.IsZero() && (next.IsZero() || at.Before(next)) {
		next = at
	}
	defer func() { s.busy = true }()
	if !next.IsZero() {
		s.timer.Reset(max(0, time.Until(next)))
		defer s.timer.Stop()
		select {
		case <-intake.Wake():
		case <-s.timer.C:
		}
		return next
	}
	<-intake.Wake()
	return time.Time{}
}

// feed takes everything pending from the intake and gives it to the
// machine. Signals go first, and what the machine decided for them is done
// before the drain: a SIGCONT's resume (kill(-child, SIGCONT)) clears the
// child's stop report in the kernel, while a drain before it would read
// that report, stale, and stop vigil again after a fg.
func (s *supervisor) feed(now time.Time) {
	if !intake.Take(&s.pend) {
		return
	}
	p := &s.pend
	// Asked once: a real-time signal's name is formatted, so a disabled
	// debug line would still allocate on every forward.
	debug := s.log.Enabled(context.Background(), slog.LevelDebug)
	for sig := range p.Signals() {
		if debug {
			s.log.Debug("received", "signal", signals.Name(sig))
		}
		s.m.signal(sig, now)
	}
	s.perform()
	if p.Has(intake.OOM) {
		s.readOOM(now)
	}
	if p.Child() {
		s.reap(now)
	}
	if p.Has(intake.Cancel) {
		s.m.cancel(now)
	}
	if p.Has(intake.Notify) && s.listener != nil {
		s.notified(now)
	}
	if p.Has(intake.Notify) && s.readyFd.ready() {
		s.m.readyFdWritten(now)
	}
	if p.Has(intake.Deps) {
		if ready, _ := s.readyOn.state(); ready && s.readyOn != nil {
			s.m.readyOnHeld(now)
		}
		s.m.targetsPending(s.deps.waiting())
		ready, fired := s.deps.state()
		if ready {
			s.m.depsReady()
		}
		if fired != "" {
			s.log.Debug("stop-on target fired", "target", fired)
			s.m.stopOnFired(now)
		}
	}
	if p.Has(intake.Tail) && s.tail != nil {
		switch {
		case s.tail.ended():
			// Only the current run's tail: under --restart an earlier
			// one's end may arrive late.
			s.m.tailDone()
		case s.tail.caughtUp():
			s.m.tailCaughtUp()
		}
	}
	if p.Has(intake.Records) && s.records.idle() {
		s.m.flushed()
	}
}

// reap drains every ended child and gives the machine the batch.
func (s *supervisor) reap(now time.Time) {
	var err error
	var alive bool
	untraced := s.m.untraced()
	// Asked before the drain, while a dead child's group still exists.
	s.m.terminal(s.tookTerminal && s.child != 0 && foregroundIs(0, s.child))
	// The counter before the drain: an OOM victim's kill is counted
	// before it can exit, so every victim in this drain is counted by now
	// (with no event to say so, on a read-only cgroup v1, this is where
	// kills are learnt), and a pending kill asks the drain for names.
	s.readOOM(now)
	s.buf, alive, err = reaper.Drain(s.buf[:0], untraced, s.m.oomWaiting())
	if err != nil {
		s.log.Error("reaping failed", "err", err)
	}
	// Asked once per drain, not per exit: in an orphan storm a drain holds
	// thousands of exits.
	if s.cfg.WarnOnReap || s.log.Enabled(context.Background(), slog.LevelDebug) {
		for i := range s.buf {
			if e := &s.buf[i]; !e.Stopped && !s.m.ours(e.Pid) {
				level := slog.LevelDebug
				if s.cfg.WarnOnReap {
					level = slog.LevelWarn
				}
				s.log.Log(context.Background(), level, "reaped a process that was not the main child", "pid", e.Pid, "status", e.Status())
			}
		}
	}
	for i := range s.buf {
		e := &s.buf[i]
		if e.Stopped {
			continue
		}
		switch who, n := s.m.whose(e.Pid); who {
		case ownerNone:
		case ownerChild:
			s.log.Debug("reaped main child", "pid", e.Pid, "status", e.Status())
		case ownerHook:
			s.hookEnded(n, *e, now)
		default:
			s.log.Error("reaped a process of an unknown owner", "pid", e.Pid, "owner", who)
		}
	}
	s.m.reaped(s.buf, alive, now)
}

// hookEnded logs how the running hook ended; nothing a hook does changes
// vigil's exit status.
func (s *supervisor) hookEnded(n int, e reaper.Exit, now time.Time) {
	h := s.hooks[n]
	took := now.Sub(s.hookStart).Round(time.Millisecond)
	if e.Status() != 0 {
		s.log.Warn("hook failed", "hook", h.argv[0], "from", h.source, "pid", e.Pid, "status", e.Status(),
			"signal", sigName(e.Signal), "duration", took)
		return
	}
	s.log.Debug("hook done", "hook", h.argv[0], "pid", e.Pid, "duration", took)
}

// perform carries out what the machine decided, feeding results back until
// nothing is left to do.
func (s *supervisor) perform() {
	for {
		acts := s.m.take()
		if len(acts) == 0 {
			return
		}
		for _, a := range acts {
			s.act(a)
		}
	}
}

func (s *supervisor) act(a action) {
	now := time.Now()
	switch a.kind {
	case actSpawn:
		s.spawnChild(now)
	case actKill:
		s.kill(a.pid, a.sig)
	case actLeftovers:
		if !s.signalLeftovers(a.sig) {
			s.m.leftoversUnreachable(now)
		}
	case actStopSelf:
		s.kill(os.Getpid(), unix.SIGSTOP)
	case actResume:
		s.resume(a.pid)
	case actTombstone:
		s.writeTombstone()
	case actFinishTail:
		s.finishTail(a.shut)
	case actCloseTail:
		if s.tail != nil {
			s.tail.closeWriter()
		}
	case actAwaitTail:
		if s.tail != nil {
			s.tail.await()
		}
	case actEnded:
		s.ended(a.rec, a.level)
	case actListHooks:
		s.m.hooksListed(s.listHooks(a.rec), now)
	case actHook:
		if pid, ok := s.startHook(a.n); ok {
			s.hookStart = now
			s.m.hookStarted(pid, now)
		} else {
			s.m.hookFailed(now)
		}
	case actFlush:
		if s.records.idle() {
			s.m.flushed()
		}
	case actNote:
		s.note(a)
	case actRelay:
		s.relay(a.msg)
	default:
		// A kind the machine decides and this switch forgot: said, not
		// dropped in silence (PID 1 does not panic over a log line).
		s.log.Error("unknown action of the supervisor", "kind", a.kind)
	}
}

// note logs a decision of the machine's.
func (s *supervisor) note(a action) {
	switch a.why {
	case whyTimeout:
		d := runDeadlines[a.n]
		s.log.Warn(d.what, d.key, a.d, "signal", signals.Name(s.cfg.TimeoutSignal))
	case whyGraceOver:
		s.log.Warn("grace period over; killing the child's process group", "pid", a.pid, "grace", s.cfg.Grace)
	case whyChildStuck:
		s.log.Error("child did not die after SIGKILL; going on without its status", "pid", a.pid, "waited", killWait)
	case whyLeftoversSurvived:
		s.log.Error("processes survived SIGKILL; going on")
	case whyHookTimeout:
		s.log.Warn("hook timed out; killing its process group", "pid", a.pid, "timeout", s.cfg.HookTimeout)
	case whyReadyOn:
		s.log.Debug("every --ready-on target holds: the child is ready")
	case whyReadyFd:
		s.log.Debug("the child wrote to --ready-fd: it is ready", "fd", s.cfg.ReadyFd)
	case whyWatchdog:
		s.log.Warn("no WATCHDOG=1 in time; ending the child as hung", "watchdog", a.d,
			"signal", signals.Name(s.cfg.WatchdogSignal))
	case whyHookStuck:
		s.log.Error("hook did not die after SIGKILL; going on", "pid", a.pid)
	case whyOOMVictim:
		s.log.Warn("the OOM killer ended a process", "pid", a.pid, "command", a.comm, "oom_kills", a.oom)
	case whyOOMKills:
		s.log.Warn("the OOM killer ended processes vigil did not reap", "count", a.n, "oom_kills", a.oom)
	case whyBadRestart:
		s.log.Error("unknown restart policy; not restarting", "policy", a.n)
	default:
		s.log.Error("unknown decision of the supervisor", "why", a.why)
	}
}

// spawnChild starts the main child.
func (s *supervisor) spawnChild(now time.Time) {
	s.child = 0 // the last run's is gone; this one's is not there yet
	p := &proc{argv: s.cfg.Command, env: s.socketEnv(s.childEnv()), files: []uintptr{0, 1, 2}}
	for i, fd := range s.sockets {
		p.files = placeFd(p.files, 3+i, fd)
	}
	p.via = s.self
	p.attr.Setpgid = true
	if s.cred != nil {
		p.attr.Credential = s.cred
		if s.home != "" {
			p.env = setEnv(p.env, "HOME", s.home)
		}
	}
	if s.cfg.CaptureTail > 0 {
		// One pipe for vigil's whole life: under --restart the workers of
		// an earlier run may still write to it, and must not lose their
		// reader. Each run's tail starts empty.
		if s.tail == nil {
			t, err := newTail(s.cfg.CaptureTail, os.Stderr)
			if err != nil {
				s.m.spawnFailed(fail(ExitInternal, "--capture-tail: %w", err), now)
				return
			}
			s.tail = t
		}
		s.tail.reset()
		p.files[2] = s.tail.w.Fd()
	}
	// The child's group takes the terminal only if vigil's group has it:
	// then Ctrl-C and Ctrl-Z reach the child. A vigil started in the
	// background, or with a terminal that is not its controlling one, must
	// not steal it from the shell.
	if s.tookTerminal {
		// An earlier run's group had it; that group is gone, and the
		// terminal still names it as its foreground.
		reclaimTerminal(0)
	}
	tty := ownsTerminal(0)
	if tty {
		p.attr.Foreground = true
		p.attr.Ctty = 0
		s.tookTerminal = true
	}
	if n := s.cfg.ReadyFd; n > 0 {
		s.readyFd.close() // the previous run's
		var err error
		if s.readyFd, err = newReadyFd(); err != nil {
			s.m.spawnFailed(fail(ExitInternal, "--ready-fd: %w", err), now)
			return
		}
		p.files = placeFd(p.files, n, s.readyFd.w.Fd())
	}
	s.readOOM(now) // the base for this run's count
	pid, err := s.spawn(p)
	s.readyFd.closeWriter()
	if err != nil {
		s.m.spawnFailed(err, time.Now())
		return
	}
	s.child = pid
	s.log.Debug("spawned", "pid", pid, "command", s.cfg.Command, "group", s.cfg.Group)
	if s.readyFd != nil {
		s.readyFd.watch()
	}
	if len(s.cfg.ReadyOn) > 0 {
		s.readyOn.close() // the previous run's
		if s.readyOn, err = startDeps(s.cfg.ReadyOn, nil, s.log); err != nil {
			s.log.Error("cannot watch the --ready-on targets", "err", err)
		}
	}
	s.m.spawned(pid, tty, now)
	if _, fired := s.deps.state(); fired != "" {
		// A --stop-on target that held before the child started.
		s.m.stopOnFired(now)
	}
	if !s.dropping && s.pages != nil {
		// From now on vigil's pages are dropped whenever it goes idle
		// (sleep): the start-up is over.
		s.dropping, s.busy = true, true
	}
}

func (s *supervisor) kill(pid int, sig unix.Signal) {
	if pid == 0 || pid == -0 {
		return
	}
	err := unix.Kill(pid, sig)
	switch {
	case err == nil:
		s.log.Debug("sent", "pid", pid, "signal", signals.Name(sig))
	case errors.Is(err, unix.ESRCH):
		// It died between its exit and our reap; nothing to tell.
		s.log.Debug("kill: no such process", "pid", pid, "signal", signals.Name(sig))
	default:
		s.log.Error("kill failed", "pid", pid, "signal", signals.Name(sig), "err", err)
	}
}

// resume gives the terminal back to the child and continues it, as a
// shell's fg does. Only when vigil is in the foreground: tcsetpgrp from the
// background would raise SIGTTOU.
func (s *supervisor) resume(child int) {
	if pgrp, err := unix.IoctlGetInt(0, unix.TIOCGPGRP); err == nil && pgrp == unix.Getpgrp() {
		if err := unix.IoctlSetPointerInt(0, unix.TIOCSPGRP, child); err != nil {
			s.log.Debug("tcsetpgrp", "err", err)
		}
	}
	s.kill(-child, unix.SIGCONT)
}

// reclaimTerminal makes vigil's group the foreground group of the
// terminal at fd again. vigil is not in the foreground then, and
// tcsetpgrp from the background raises SIGTTOU unless the calling thread
// blocks it: so the call is made on a locked thread that does.
func reclaimTerminal(fd int) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var ttou, old unix.Sigset_t
	ttou.Val[(unix.SIGTTOU-1)/64] |= 1 << ((unix.SIGTTOU - 1) % 64)
	if unix.PthreadSigmask(unix.SIG_BLOCK, &ttou, &old) != nil {
		return
	}
	_ = unix.IoctlSetPointerInt(fd, unix.TIOCSPGRP, unix.Getpgrp())
	_ = unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
}

// foregroundIs reports whether pgrp is the foreground group of the
// terminal at fd.
func foregroundIs(fd, pgrp int) bool {
	fg, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	return err == nil && fg == pgrp
}

// ownsTerminal reports whether fd is vigil's controlling terminal and
// vigil's process group is its foreground group.
func ownsTerminal(fd int) bool {
	fg, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	return err == nil && fg == unix.Getpgrp()
}

// placeFd returns files with fd at index n, the descriptor the child gets
// it as; the slots between are closed in the child (syscall.ForkExec reads
// -1 so).
func placeFd(files []uintptr, n int, fd uintptr) []uintptr {
	for len(files) <= n {
		files = append(files, ^uintptr(0))
	}
	files[n] = fd
	return files
}

func setEnv(env []string, key, val string) []string {
	return append(withoutVar(env, key), key+"="+val)
}

func withoutVar(env []string, key string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if len(kv) > len(key) && kv[:len(key)+1] == key+"=" {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// ended logs the child's end at the level the machine chose and writes
// the termination log; the record is complete now, the captured tail
// included.
func (s *supervisor) ended(r *record, level slog.Level) {
	s.log.Log(context.Background(), level, "child ended", "class", r.class, "status", r.exit.Status(),
		"signal", sigName(r.exit.Signal), "core_dumped", r.exit.CoreDumped,
		"duration", r.ended.Sub(r.started).Round(time.Millisecond), "exit_status", r.status)
	if s.termLog != nil {
		s.records.terminationLog(s.termLog, summary(r))
	}
}

func sigName(sig unix.Signal) string {
	if sig == 0 {
		return ""
	}
	return signals.Name(sig)
}

// reserveDescriptors fails unless n descriptors can be opened: the Go
// runtime's poller (epoll, eventfd), inotify, the stderr pipe and the
// record files need a few, and the runtime dies with a fatal error, not an
// error value, when its poller cannot get one. Better a clear message
// before the child starts.
func reserveDescriptors(n int) error {
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	for range n {
		fd, err := unix.Open("/", unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			var lim unix.Rlimit
			_ = unix.Getrlimit(unix.RLIMIT_NOFILE, &lim)
			return fail(ExitInternal, "cannot open the %d descriptors vigil needs (RLIMIT_NOFILE %d): %w", n, lim.Cur, err)
		}
		fds = append(fds, fd)
	}
	return nil
}

// setupNotify opens the notification socket for --notify and, when vigil
// itself reports to a service manager (NOTIFY_SOCKET in its environment:
// a systemd service of Type=notify, podman --sdnotify=container), the
// relay that passes the child's news on.
func (s *supervisor) setupNotify() error {
	// --ready-fd relays too: a child of s6's convention under a systemd
	// service of Type=notify.
	if !s.cfg.Notify && s.cfg.ReadyFd == 0 {
		return nil
	}
	up, err := notify.NewUpstream(os.Getenv("NOTIFY_SOCKET"))
	if err != nil {
		s.log.Warn("NOTIFY_SOCKET is not usable; not relaying readiness", "err", err)
	}
	if s.cfg.Notify {
		self := os.Getpid()
		// The socket's directory belongs to the child's user, the only one
		// (with root) that can then reach it. Hooks are not given it.
		s.listener, err = notify.Listen(notify.Config{
			Accept: notify.Tree(self),
			Log:    s.log,
			Notify: func() { intake.Post(intake.Notify) },
			Owner:  s.cred,
		})
		if err != nil {
			return fail(ExitInternal, "--notify: %w", err)
		}
		go func() {
			if err := s.listener.Serve(); err != nil {
				s.log.Error("notification socket", "err", err)
			}
		}()
	}
	if up != nil {
		// One goroutine sends, in order; the loop never waits for a
		// service manager. A manager that lags this far loses news.
		s.upstream = make(chan []string, 16)
		go func(c <-chan []string) {
			for msgs := range c {
				for _, msg := range msgs {
					if err := up.Send(msg, notify.SendTimeout); err != nil {
						s.log.Debug("relaying to NOTIFY_SOCKET", "err", err)
					}
				}
			}
		}(s.upstream)
	}
	return nil
}

// childEnv is the child's environment: vigil's, with the notification
// socket and the watchdog interval when they are vigil's to give.
// WATCHDOG_PID is not set: the child's pid is not known before the fork,
// and sd_watchdog_enabled(3) accepts any process when it is absent.
func (s *supervisor) childEnv() []string {
	env := s.cfg.Env
	if s.listener != nil {
		env = setEnv(env, "NOTIFY_SOCKET", s.listener.Socket())
	}
	if s.listener != nil {
		// vigil's own manager's WATCHDOG_PID names vigil: the child's
		// sd_watchdog_enabled would say no and it would never ping.
		env = withoutVar(env, "WATCHDOG_PID")
	}
	if s.cfg.Watchdog > 0 {
		env = setEnv(env, "WATCHDOG_USEC", strconv.FormatInt(s.cfg.Watchdog.Microseconds(), 10))
	}
	return env
}

// notified hands what the child said to the machine and relays it.
func (s *supervisor) notified(now time.Time) {
	u := s.listener.Take()
	if !u.Changed() {
		return
	}
	if u.Reloading {
		s.log.Debug("the child is reloading (RELOADING=1)")
	}
	s.m.notified(readiness{ready: u.Ready, stopping: u.Stopping, status: u.Status, pings: u.Pings,
		trigger: u.WatchdogTrigger, interval: u.WatchdogInterval, extend: u.ExtendTimeout}, now)
	if msgs := u.Relay().Datagrams(); len(msgs) > 0 {
		s.relay(msgs...)
	}
}

// relay passes msgs, the datagrams of one merge, to the service manager
// vigil reports to, if any: together, so that a lagging manager loses a
// merge whole or not at all, never its READY=1 without its STATUS=.
func (s *supervisor) relay(msgs ...string) {
	if s.upstream == nil {
		return
	}
	select {
	case s.upstream <- msgs:
	default:
		s.log.Debug("NOTIFY_SOCKET is not keeping up; message dropped", "messages", len(msgs), "first", msgs[0])
	}
}
