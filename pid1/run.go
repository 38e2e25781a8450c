// Package pid1 is vigil's supervisor: it spawns the command, forwards
// signals, reaps, classifies how the command ended, runs the hooks for that
// class, cleans up what is left and returns the status to exit with.
package pid1

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"vigil/reaper"
	"vigil/signals"
)

// supervisor is the state of one Run. Everything in it is touched only by
// the goroutine that called Run, which is also the only one that reaps, so a
// pid is always registered before its exit can be seen.
type supervisor struct {
	cfg Config
	log *slog.Logger
	ctx context.Context

	sigs  chan os.Signal // every forwarded signal
	stops chan os.Signal // the stop signals again, so that a storm cannot crowd them out
	chld  chan os.Signal // SIGCHLD alone; capacity 1, see Run
	buf   []reaper.Exit  // reused by every drain

	isInit     bool
	jobControl bool // stdin is our terminal and vigil is not PID 1
	alive      bool // children remain, as the last drain saw

	cred *syscall.Credential // --user, resolved before anything starts
	home string

	child     int          // the main child's pid, also its process group
	mainExit  *reaper.Exit // set once the main child is reaped
	started   time.Time
	oomBefore uint64

	hookPid  int
	hookExit *reaper.Exit

	cause     Cause
	stopCause Cause // the cause a pending stop will set when it is sent
	stopping  bool
	stopSig   unix.Signal
	drainT    *time.Timer
	graceT    *time.Timer
	killT     *time.Timer // after the grace's SIGKILL, how long vigil waits for it to land
	graceEnds time.Time   // when graceT fires; zero until a stop or timeout began
	timeoutT  *time.Timer
	stopOnC   <-chan struct{}
	ctxDone   <-chan struct{} // nil once it has fired
	deps      *deps

	tail *tail
}

// Run supervises cfg.Command until it has ended and everything after it
// (cleanup, hooks, records) is done, and returns the status vigil should
// exit with. A non-nil error is a failure of vigil itself; the status is
// then the *Error's code.
func Run(ctx context.Context, cfg Config) (int, error) {
	// With --no-new-privs or --pdeathsig the supervisor keeps one OS thread
	// for its whole life: prctl sets both on the calling thread only, and
	// every fork (child and hooks) happens on this one, so what it starts
	// inherits no_new_privs, and the parent-death signal cannot vanish with
	// a thread the runtime retires. Otherwise it stays unlocked: a locked
	// goroutine costs a thread hand-off on every wake-up (signal latency).
	if cfg.NoNewPrivs || cfg.PdeathSig != 0 {
		runtime.LockOSThread()
	}
	s := &supervisor{cfg: cfg, log: cfg.Log, ctx: ctx, ctxDone: ctx.Done(), isInit: os.Getpid() == 1}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if len(cfg.Command) == 0 {
		return ExitUsage, fail(ExitUsage, "no command given")
	}
	if s.cfg.Env == nil {
		s.cfg.Env = os.Environ()
	}
	if len(s.cfg.StopSignals) == 0 {
		s.cfg.StopSignals = []unix.Signal{unix.SIGTERM, unix.SIGINT}
	}

	// Handlers first: as PID 1 a signal that arrives with no handler is
	// dropped by the kernel, and one that arrives before it is caught
	// would take its default action on vigil.
	c := cfg.Signals
	if c == nil {
		c = Catch()
	}
	c.wait()
	s.chld, s.sigs = c.chld, c.sigs
	// Stop signals also get a channel of their own: os/signal drops a
	// signal when its channel is full, and in a storm of USR1s a TERM must
	// still get through. They are caught already, so this costs no round
	// trip to the runtime; their copies on s.sigs are skipped.
	s.stops = make(chan os.Signal, len(s.cfg.StopSignals))
	for _, sig := range s.cfg.StopSignals {
		if !signal.Ignored(sig) { // left ignored, see Catch
			signal.Notify(s.stops, sig)
		}
	}
	for _, sig := range c.ignored {
		s.log.Debug("signal ignored at start; leaving it ignored, not forwarding it", "signal", signals.Name(sig))
	}

	if err := s.setup(); err != nil {
		return codeOf(err), err
	}
	defer s.deps.close()

	if err := s.start(); err != nil {
		return codeOf(err), err
	}

	// From here on vigil may not bail out: the child is running and its
	// status is the one thing vigil must hand back.
	s.wait(func() bool { return s.mainExit != nil }, nil)
	return s.finish(), nil
}

func codeOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ExitInternal
}

// setup does everything that may fail before the child exists.
func (s *supervisor) setup() error {
	if err := reserveDescriptors(8); err != nil {
		return err
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
	if s.deps, err = newDeps(s.cfg.WaitFor, s.cfg.StopOn); err != nil {
		return err
	}
	if err := s.deps.waitReady(s.ctx, s.cfg.WaitTimeout, s.isStopSignal, s.sigs, s.log); err != nil {
		return err
	}
	s.stopOnC = s.deps.stopOn()
	return nil
}

// start spawns the main child.
func (s *supervisor) start() error {
	p := &proc{argv: s.cfg.Command, env: s.cfg.Env, files: []uintptr{0, 1, 2}}
	p.attr.Setpgid = true
	if s.cred != nil {
		p.attr.Credential = s.cred
		if s.home != "" {
			p.env = setEnv(p.env, "HOME", s.home)
		}
	}
	if s.cfg.CaptureTail > 0 {
		t, w, err := newTail(s.cfg.CaptureTail, os.Stderr)
		if err != nil {
			return fail(ExitInternal, "--capture-tail: %w", err)
		}
		s.tail = t
		p.files[2] = w.Fd()
		defer w.Close()
	}
	// The child's group takes the terminal only if vigil's group has it:
	// then Ctrl-C and Ctrl-Z reach the child. A vigil started in the
	// background, or with a terminal that is not its controlling one, must
	// not steal it from the shell.
	tty := ownsTerminal(0)
	if tty {
		p.attr.Foreground = true
		p.attr.Ctty = 0
	}
	oom := oomCounter()
	s.started = time.Now()
	pid, err := spawn(p)
	if err != nil {
		if s.tail != nil {
			s.tail.close()
		}
		return err
	}
	s.child = pid
	s.oomBefore = oom
	s.jobControl = tty && !s.isInit
	s.log.Debug("spawned", "pid", pid, "command", s.cfg.Command, "group", s.cfg.Group)
	if s.cfg.Timeout > 0 {
		s.timeoutT = time.NewTimer(s.cfg.Timeout)
	}
	s.writeTombstone(nil)
	return nil
}

// wait handles events until done reports true, and reports false if
// deadline fires first. It is the supervisor loop: every signal, reap and
// timer is handled here and only here.
func (s *supervisor) wait(done func() bool, deadline <-chan time.Time) bool {
	for !done() {
		select {
		case sig := <-s.stops:
			s.onStopSignal(sig.(unix.Signal))
		case sig := <-s.sigs:
			if !s.isStopSignal(sig) {
				s.onSignal(sig.(unix.Signal))
			}
		case <-s.chld:
			s.reap()
		case <-deadline:
			return false
		case <-timerC(s.drainT):
			s.drainT = nil
			s.sendStop()
		case <-timerC(s.graceT):
			s.graceT = nil
			s.log.Warn("grace period over; killing the child's process group", "pid", s.child, "grace", s.cfg.Grace)
			s.kill(-s.child, unix.SIGKILL)
			s.killT = time.NewTimer(killWait)
		case <-timerC(s.killT):
			// SIGKILL cannot be refused, only delayed by a process stuck in
			// the kernel (a dead NFS server). A shutdown must end anyway:
			// go on as if it had died of the SIGKILL it was sent.
			s.killT = nil
			if s.mainExit == nil {
				s.log.Error("child did not die after SIGKILL; going on without its status", "pid", s.child, "waited", killWait)
				s.mainExit = &reaper.Exit{Pid: s.child, Signal: unix.SIGKILL}
			}
		case <-timerC(s.timeoutT):
			s.timeoutT = nil
			s.log.Warn("timeout; stopping the child", "timeout", s.cfg.Timeout, "signal", signals.Name(s.cfg.TimeoutSignal))
			s.cause = CauseTimeout
			// The user chose this signal for the timeout: no rewrite.
			s.send(s.cfg.TimeoutSignal)
			s.armGrace()
		case <-s.stopOnC:
			// A stop already under way (a SIGTERM) keeps its own class.
			if t := s.deps.stopOnFired(); t != "" && s.mainExit == nil && s.cause == CauseNone && !s.stopping {
				s.log.Info("stop-on target fired; stopping the child", "target", t)
				s.stopOnC = nil
				s.stopCause = CauseStopOn
				s.beginStop(s.cfg.StopSignals[0])
			}
		case <-s.ctxDone:
			s.ctxDone = nil
			if s.mainExit == nil {
				s.beginStop(s.cfg.StopSignals[0])
			}
		}
	}
	return true
}

// waitFor is wait bounded by d.
func (s *supervisor) waitFor(done func() bool, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	return s.wait(done, t.C)
}

func timerC(t *time.Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C
}

// reap drains every ended child and dispatches each exit.
func (s *supervisor) reap() {
	var err error
	s.buf, s.alive, err = reaper.Drain(s.buf[:0], s.jobControl && s.mainExit == nil)
	if err != nil {
		s.log.Error("reaping failed", "err", err)
	}
	// Asked once per drain, not per exit: in an orphan storm a drain holds
	// thousands of exits, and building the arguments of a disabled log
	// call allocates for each of them.
	debug := s.log.Enabled(context.Background(), slog.LevelDebug)
	for i := range s.buf {
		// The copies below are made only where they are kept: taking the
		// address of a loop variable would put every exit of a storm on
		// the heap.
		e := &s.buf[i]
		switch {
		case e.Stopped:
			if e.Pid == s.child {
				s.childStopped(*e)
			}
		case e.Pid == s.child && s.mainExit == nil:
			main := *e
			s.mainExit = &main
			s.log.Debug("reaped main child", "pid", e.Pid, "status", e.Status())
		case e.Pid == s.hookPid && s.hookPid != 0:
			hook := *e
			s.hookExit = &hook
		case s.cfg.WarnOnReap:
			s.log.Warn("reaped a process that was not the main child", "pid", e.Pid, "status", e.Status())
		case debug:
			s.log.Debug("reaped", "pid", e.Pid, "status", e.Status())
		}
	}
}

// onSignal handles one signal received by vigil.
func (s *supervisor) onSignal(sig unix.Signal) {
	if s.mainExit != nil {
		s.log.Debug("main child has ended; not forwarding", "signal", signals.Name(sig))
		return
	}
	if s.jobControl {
		switch sig {
		case unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU:
			// Stop the job the way a shell would: the child's group first,
			// then vigil itself, so the shell that started vigil sees its
			// job stop.
			s.kill(-s.child, sig)
			s.stopSelf()
			return
		case unix.SIGCONT:
			s.resume()
			return
		}
	}
	s.forward(sig)
}

// onStopSignal begins a graceful stop, or says why it does not.
func (s *supervisor) onStopSignal(sig unix.Signal) {
	if s.mainExit != nil {
		s.log.Debug("main child has ended; not forwarding", "signal", signals.Name(sig))
		return
	}
	s.beginStop(sig)
}

func (s *supervisor) isStopSignal(sig os.Signal) bool {
	for _, stop := range s.cfg.StopSignals {
		if sig == stop {
			return true
		}
	}
	return false
}

// forward passes sig, after the rewrite table, to the child or its group.
func (s *supervisor) forward(sig unix.Signal) {
	to, ok := s.cfg.Rewrite.Apply(sig)
	if !ok {
		s.log.Debug("signal dropped by rewrite", "signal", signals.Name(sig))
		return
	}
	s.log.Debug("forwarding", "signal", signals.Name(sig), "as", signals.Name(to))
	s.send(to)
}

// send delivers sig to the child, or to its process group with -g.
func (s *supervisor) send(sig unix.Signal) {
	target := s.child
	if s.cfg.Group {
		target = -s.child
	}
	s.kill(target, sig)
}

func (s *supervisor) kill(pid int, sig unix.Signal) {
	err := unix.Kill(pid, sig)
	switch {
	case err == nil:
	case errors.Is(err, unix.ESRCH):
		// It died between its exit and our reap; nothing to tell.
		s.log.Debug("kill: no such process", "pid", pid, "signal", signals.Name(sig))
	default:
		s.log.Error("kill failed", "pid", pid, "signal", signals.Name(sig), "err", err)
	}
}

// beginStop starts a graceful stop: drain, forward, grace, kill. A repeated
// stop signal is forwarded again but does not restart the clock.
func (s *supervisor) beginStop(sig unix.Signal) {
	if s.stopping {
		if s.drainT == nil {
			s.forward(sig)
		}
		return
	}
	s.stopping = true
	s.stopSig = sig
	if s.cfg.Drain > 0 {
		s.log.Debug("draining before stop", "signal", signals.Name(sig), "drain", s.cfg.Drain)
		s.drainT = time.NewTimer(s.cfg.Drain)
		return
	}
	s.sendStop()
}

func (s *supervisor) sendStop() {
	// The class becomes stopped only once vigil acts: a child that fails
	// on its own during the drain is a failure, not a stop.
	if s.stopCause != CauseNone && s.cause == CauseNone {
		s.cause = s.stopCause
	}
	s.forward(s.stopSig)
	s.armGrace()
}

// armGrace starts the clock to SIGKILL. --grace 0 means no grace at all,
// as it does for leftovers in cleanup, not no SIGKILL: a child that ignores
// the signal would otherwise keep vigil waiting for ever.
func (s *supervisor) armGrace() {
	if s.graceT == nil {
		s.graceT = time.NewTimer(s.cfg.Grace)
		s.graceEnds = time.Now().Add(s.cfg.Grace)
	}
}

// killWait bounds the wait for a SIGKILL to take effect.
const killWait = 5 * time.Second

// leftoverGrace is how long leftovers get between SIGTERM and SIGKILL: the
// rest of a stop's grace period when one was running, so that a shutdown
// takes drain plus grace and not a second grace on top (the kubelet's
// budget is terminationGracePeriodSeconds), else the whole of --grace.
func (s *supervisor) leftoverGrace() time.Duration {
	if s.graceEnds.IsZero() {
		return s.cfg.Grace
	}
	return max(0, time.Until(s.graceEnds))
}

// stopSelf stops vigil with SIGSTOP; the caller's shell sees its job stop.
func (s *supervisor) stopSelf() {
	s.kill(os.Getpid(), unix.SIGSTOP)
}

// childStopped follows the child when it stops on its own (Ctrl-Z reaches
// the child's group, which owns the terminal, not vigil).
func (s *supervisor) childStopped(e reaper.Exit) {
	s.log.Debug("main child stopped", "signal", signals.Name(e.Signal))
	s.stopSelf()
}

// resume gives the terminal back to the child and continues it, as a
// shell's fg does. Only when vigil is in the foreground: tcsetpgrp from the
// background would raise SIGTTOU.
func (s *supervisor) resume() {
	if pgrp, err := unix.IoctlGetInt(0, unix.TIOCGPGRP); err == nil && pgrp == unix.Getpgrp() {
		if err := unix.IoctlSetPointerInt(0, unix.TIOCSPGRP, s.child); err != nil {
			s.log.Debug("tcsetpgrp", "err", err)
		}
	}
	s.kill(-s.child, unix.SIGCONT)
}

// ownsTerminal reports whether fd is vigil's controlling terminal and
// vigil's process group is its foreground group.
func ownsTerminal(fd int) bool {
	fg, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	return err == nil && fg == unix.Getpgrp()
}

func setEnv(env []string, key, val string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if len(kv) > len(key) && kv[:len(key)+1] == key+"=" {
			continue
		}
		out = append(out, kv)
	}
	return append(out, key+"="+val)
}

// finish runs after the main child is reaped: cleanup, classification,
// records, hooks. It returns vigil's exit status.
func (s *supervisor) finish() int {
	ended := time.Now()
	for _, t := range []**time.Timer{&s.drainT, &s.graceT, &s.killT, &s.timeoutT} {
		if *t != nil {
			(*t).Stop()
			*t = nil
		}
	}
	e := *s.mainExit
	// Read the OOM counter before the cleanup, whose SIGKILLs are ours.
	class := Classify(e, s.cause, oomCounter() > s.oomBefore)
	status := e.Status()
	if class == Stopped {
		// vigil ended the child on purpose because a --stop-on target fired
		// (a sidecar whose main container is done): that is a success, or a
		// Job with a sidecar would never complete. The record keeps how the
		// child died.
		status = 0
	}
	if s.cfg.RemapExit[status] {
		status = 0
	}
	r := &record{class: class, exit: e, status: status, started: s.started, ended: ended, command: s.cfg.Command}
	s.log.Info("child ended", "class", class, "status", e.Status(), "signal", sigName(e.Signal),
		"core_dumped", e.CoreDumped, "duration", ended.Sub(s.started).Round(time.Millisecond), "exit_status", status)
	// The tombstone comes before the cleanup: if the runtime's SIGKILL
	// arrives while leftovers are being stopped, the record is there.
	s.writeTombstone(r)
	if !s.cfg.NoCleanup {
		s.cleanup()
	}
	if s.tail != nil {
		r.tail = s.tail.finish(2 * time.Second)
	}
	s.writeTerminationLog(r)
	s.runHooks(r)
	return status
}

func sigName(sig unix.Signal) string {
	if sig == 0 {
		return ""
	}
	return signals.Name(sig)
}

// name is the tombstone's name: --name or the command's base name.
func (s *supervisor) name() string {
	if s.cfg.Name != "" {
		return s.cfg.Name
	}
	return filepath.Base(s.cfg.Command[0])
}

// reserveDescriptors fails unless n descriptors can be opened: the Go
// runtime's poller (epoll, eventfd), inotify, the stderr pipe and the
// tombstone's temporary file need a few, and the runtime dies with a fatal
// error, not an error value, when its poller cannot get one. Better a
// clear message before the child starts.
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
