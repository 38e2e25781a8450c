package pid1

import (
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"vigil/reaper"
	"vigil/signals"
)

// The supervisor is split in two. The machine (this file) decides: it holds
// the state of one Run as plain values, takes one event at a time (a signal,
// a reaped exit, the clock, a watcher's news) and answers with the actions
// to perform. The loop (loop.go) does: it sleeps on the one intake, turns
// what arrives into events, performs the actions and feeds their results
// back. Nothing here makes a system call, so every rule can be tested with
// plain values, without root and without processes (machine_test.go).

// phase is where a Run is in its life.
type phase uint8

const (
	phaseStart   phase = iota // before begin: only signals count (a stop ends vigil)
	phaseWaiting              // --wait-for targets not ready yet; no child
	phaseRunning              // the main child runs; a stop may be under way
	phaseCleanup              // the child has ended; its leftovers are being ended
	phaseTail                 // waiting for the captured stderr to reach its end
	phaseHooks                // the class's hooks run, one at a time
	phaseBackoff              // --restart: waiting before the next run
	phaseWaitAll              // --wait-all: the child has ended, its descendants not yet
	phaseFlush                // waiting for the records to reach the disk
	phaseDone                 // vigil may exit
)

// actionKind is what the loop is asked to do.
type actionKind uint8

const (
	actSpawn      actionKind = iota // start the main child; answer with spawned or spawnFailed
	actKill                         // kill(pid, sig); pid < 0 is a process group
	actLeftovers                    // send sig to every descendant still alive
	actStopSelf                     // stop vigil (job control)
	actResume                       // give the terminal to the child's group and continue it
	actTombstone                    // write the tombstone for the current state (as tombstone says it)
	actEnded                        // the child's end is known (rec): log it at level, write the termination log
	actListHooks                    // find the hooks of rec's class; answer with hooksListed
	actHook                         // start hook number n; answer with hookStarted or hookFailed
	actFinishTail                   // stop waiting for the stderr tail; answer with tailTaken
	actCloseTail                    // vigil lets go of its end of the stderr pipe: no more runs
	actAwaitTail                    // say (tailCaughtUp) once the copier has read all the pipe holds
	actFlush                        // wait for the record writes; answer with flushed
	actNote                         // log what vigil decided (why says what)
	actRelay                        // pass msg on to the service manager vigil reports to, if any
)

// reason is what a note (actNote) says vigil decided.
type reason uint8

// The reasons; reasonNames has their names, in the same order.
const (
	whyNone              reason = iota // not a note
	whyTimeout                         // --timeout expired: the child is being stopped
	whyGraceOver                       // the grace ran out: SIGKILL to the child's group (pid)
	whyChildStuck                      // the child (pid) did not die of SIGKILL in time
	whyLeftoversSurvived               // leftovers outlived SIGKILL
	whyHookTimeout                     // --hook-timeout: SIGKILL to the hook's group (pid)
	whyHookStuck                       // the hook (pid) did not die of SIGKILL in time
	whyReadyOn                         // every --ready-on target holds: the child is ready
	whyReadyFd                         // the child wrote to --ready-fd: it is ready
	whyWatchdog                        // no WATCHDOG=1 within d: the child is ended as hung
	whyOOMVictim                       // the OOM killer ended pid (comm)
	whyOOMKills                        // the OOM killer ended n processes vigil did not reap
	whyBadRestart                      // the Config's restart policy n is none vigil knows: no restart
)

var reasonNames = [whyBadRestart + 1]string{"none", "timeout", "grace over", "child stuck", "leftovers survived", "hook timeout",
	"hook stuck", "ready", "ready-fd", "watchdog", "oom victim", "oom kills", "bad restart policy"}

func (r reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "reason " + strconv.Itoa(int(r))
}

// action is one thing for the loop to do.
type action struct {
	kind actionKind
	pid  int
	sig  unix.Signal
	n    int
	why  reason // actNote: what vigil decided, for its log line
	comm string // whyOOMVictim: the process's name, when known
	oom  int    // whyOOMVictim, whyOOMKills: the OOM kills of the run so far

	rec   *record       // actEnded, actListHooks: the run's record, complete
	level slog.Level    // actEnded: how loud the line that says it is
	shut  bool          // actFinishTail: close the pipe unless the copier reached its end
	d     time.Duration // whyWatchdog: the interval that ran out
	msg   string        // actRelay: the datagram
}

// readiness is what a Notify update says, in the machine's terms.
type readiness struct {
	ready, stopping bool
	status          *string
	pings           int
	trigger         bool           // WATCHDOG=trigger: treat as hung now
	interval        *time.Duration // WATCHDOG_USEC=: a new interval; 0 turns the watchdog off
	extend          *time.Duration // EXTEND_TIMEOUT_USEC=: the start-up deadlines not before now plus this
}

// RestartPolicy says which ends of the command are followed by a new run.
type RestartPolicy uint8

// The restart policies.
const (
	RestartNo        RestartPolicy = iota // the default: vigil ends with the command
	RestartOnFailure                      // after any class but success and stopped
	RestartAlways                         // after every end
)

// killWait bounds the wait for a SIGKILL to take effect: it cannot be
// refused, only delayed by a process stuck in the kernel (a dead NFS
// server), and a shutdown must end anyway.
const killWait = 5 * time.Second

// tailWait bounds the wait for the captured stderr to reach end of file
// once the child has ended and its leftovers are gone.
const tailWait = 2 * time.Second

// flushWait bounds the wait for the records to be written at the end.
const flushWait = 5 * time.Second

// oomVictimWait is how long an OOM kill the counter showed waits for its
// victim to be reaped by vigil, so that the log can name it; after that it
// is reported as a count (a process vigil does not reap, such as a
// shell's subprocess, or one whose exit is slow).
const oomVictimWait = 500 * time.Millisecond

// stop is a graceful stop of the main child: drain, forward, grace, kill.
type stop struct {
	cause     Cause       // why; CauseNone until a stop begins
	sig       unix.Signal // what is forwarded (before --rewrite, unless the timeout's)
	forwardAt time.Time   // end of the drain; zero once the signal went out
	killAt    time.Time   // when vigil SIGKILLs the group; zero: never
	landBy    time.Time   // after vigil's SIGKILL, how long it waits for it to land
	graceEnds time.Time   // the same, kept after the child ended, for the cleanup's budget
	sent      bool        // the stop signal went out (the class counts only from then)
	killed    bool        // vigil sent the child SIGKILL itself
	forwarded sigSet      // the stop signals from outside that reached the child, as rewritten
}

func (s *stop) active() bool { return s.cause != CauseNone }

// machine is the state of one Run.
type machine struct {
	// cfg is the Config Run was given, its defaults filled in: the machine
	// decides with it as it is, 0 meaning none.
	cfg   Config
	phase phase

	isInit     bool // vigil is PID 1: it has no shell above it to stop with the job
	jobControl bool // this run: vigil follows the child's stops (a terminal, not PID 1)

	waitEnds  time.Time     // --wait-timeout; zero: none
	early     []unix.Signal // caught before the child existed, for it once it does
	waitingOn string        // the targets not ready yet, for the message

	child     int         // the main child's pid, also its process group
	started   time.Time   // when it was spawned (or, if it never was, when it was given up on)
	runAt     []time.Time // each of runDeadlines, armed at the spawn; zero once passed, or none
	stop      stop
	awaitCont bool // vigil stopped itself with the job and has not seen SIGCONT since
	alive     bool // vigil has children, as the last drain saw
	outside   bool // a stop was asked for from outside: no run follows, whatever the phase
	ttyFg     bool // the child's group is the terminal's foreground, which vigil gave it

	lastRan      time.Time // the last wake-up: the latest time vigil is known to have run
	stoppedAt    time.Time // vigil stopped itself (job control) then; zero once it runs again
	thawCredited bool      // the watchdog was credited a freeze since the last WATCHDOG=1

	rec *record // how the child ended; set once per run
	err error   // vigil's own failure to report with the status (exec, wait, stop before start)

	ready        bool          // the child said READY=1, or every --ready-on target held
	readyAt      time.Time     // when
	status       string        // the last STATUS=
	saysStopping bool          // the child said STOPPING=1
	watchdog     time.Duration // this run's interval: --watchdog, or the child's WATCHDOG_USEC=
	watchdogEnds time.Time     // a WATCHDOG=1 must come before; zero: no watchdog

	gaveUp      bool      // the command was never started on purpose (a stop, --wait-timeout)
	restarts    int       // runs started before the current one
	again       bool      // the run that ended is followed by another
	streak      int       // consecutive short runs, for the backoff
	backoffEnds time.Time // when the next run starts

	cleanupEnds  time.Time
	cleanupKill  bool // leftovers have been sent SIGKILL
	hooksCleaned bool // the cleanup after the hooks is the one under way
	tailEOF      bool // the captured stderr reached end of file

	hooks     int // how many hooks the class has
	hook      int // the hook running now
	hookPid   int // 0: none running
	hookEnds  time.Time
	hookKill  bool
	tailEnds  time.Time
	flushEnds time.Time

	// OOM kills in vigil's memory cgroup, from the counter the loop reads.
	oomKnown    bool      // the counter has been read once: later rises are kills
	oomTotal    uint64    // the counter as last read
	oomPending  int       // kills not yet tied to a reaped process nor reported
	oomReportAt time.Time // when the pending ones are reported as a count
	oomRun      int       // kills counted since the current run began

	out []action
}

// newMachine is the machine of a Run of cfg (its defaults filled in);
// isInit says that vigil is PID 1.
func newMachine(cfg Config, isInit bool) *machine {
	return &machine{cfg: cfg, isInit: isInit, hook: -1, runAt: make([]time.Time, len(runDeadlines))}
}

// waitsFor reports whether there are --wait-for targets.
func (m *machine) waitsFor() bool { return len(m.cfg.WaitFor) > 0 }

// capturesTail reports whether the child's stderr is captured (--capture-tail).
func (m *machine) capturesTail() bool { return m.cfg.CaptureTail > 0 }

func (m *machine) do(a action) { m.out = append(m.out, a) }

// take returns the actions decided since the last take.
func (m *machine) take() []action {
	out := m.out
	m.out = nil
	return out
}

// The loop asks the machine through these; it never reads its fields.

// done reports whether vigil may exit.
func (m *machine) done() bool { return m.phase == phaseDone }

// result is what Run returns once done: the status to exit with and
// vigil's own failure, if any.
func (m *machine) result() (int, error) { return m.rec.status, m.err }

// waiting reports whether the command waits for its --wait-for targets.
func (m *machine) waiting() bool { return m.phase == phaseWaiting }

// targetsPending says which --wait-for targets do not hold yet, for the
// message if vigil ends before they do.
func (m *machine) targetsPending(desc string) { m.waitingOn = desc }

// untraced reports whether the next drain should report the main child's
// stops: vigil follows them (job control) while it runs.
func (m *machine) untraced() bool { return m.jobControl && m.phase == phaseRunning }

// owner is whose exit a reaped process is.
type owner uint8

const (
	ownerNone  owner = iota // an orphan, or a worker of the child's
	ownerChild              // the main child, its end not yet recorded
	ownerHook               // the hook running now
)

// whose says whose process pid is, before the drain that reaped it is
// handed over (reaped), and for a hook which one (its number).
func (m *machine) whose(pid int) (owner, int) {
	switch {
	case pid == 0:
		return ownerNone, 0
	case pid == m.child && m.rec == nil:
		return ownerChild, 0
	case pid == m.hookPid:
		return ownerHook, m.hook
	}
	return ownerNone, 0
}

// ours reports whether pid is the main child or the running hook (a
// process vigil started itself, not one it reaps as an init).
func (m *machine) ours(pid int) bool { return pid != 0 && (pid == m.child || pid == m.hookPid) }

// name is the tombstone's name: --name or the command's base name.
func (m *machine) name() string {
	if m.cfg.Name != "" {
		return m.cfg.Name
	}
	return filepath.Base(m.cfg.Command[0])
}

// tombstone is the record for the state now. Which run of vigil wrote it
// (RunID, RunStartedAt, Locked) is the loop's to add.
func (m *machine) tombstone() Tombstone {
	ts := Tombstone{Name: m.name(), State: m.state(), Pid: m.child, Restarts: m.restarts, Status: m.status, OOMKills: m.oomRun}
	if !m.started.IsZero() {
		ts.StartedAt = m.started.Format(time.RFC3339Nano)
	}
	if m.ready {
		at := m.readyAt.Format(time.RFC3339Nano)
		ts.ReadyAt = &at
	}
	if r := m.rec; r != nil {
		f := r.facts()
		ts.StartedAt, ts.Status, ts.ReadyAt = f.StartedAt, f.Status, f.ReadyAt
		ts.EndedAt, ts.Class, ts.ExitStatus, ts.ExitCode = &f.EndedAt, &f.Class, &f.ExitStatus, f.ExitCode
		ts.Signal, ts.CoreDumped, ts.Error, ts.OOMKills = &f.Signal, &f.CoreDumped, f.Error, f.OOMKills
		if ts.State == "starting" {
			ts.Pid = 0 // between runs: the last end is kept, the next run is starting
		}
	}
	// Bounded, so that the room reserved at start always holds a record.
	ts.Status, ts.Error = truncate(ts.Status, tombstoneTextMax), truncate(ts.Error, tombstoneTextMax)
	return ts
}

// begin is the first step: spawn at once, or wait for the targets.
func (m *machine) begin(now time.Time) {
	m.lastRan = now
	if m.phase != phaseStart {
		return // a stop signal came before vigil was ready to start anything
	}
	if m.waitsFor() {
		m.phase = phaseWaiting
		if m.cfg.WaitTimeout > 0 {
			m.waitEnds = now.Add(m.cfg.WaitTimeout)
		}
		m.do(action{kind: actTombstone})
		return
	}
	m.spawn()
}

func (m *machine) spawn() {
	m.phase = phaseRunning
	m.do(action{kind: actSpawn})
}

// depsReady says every --wait-for target holds.
func (m *machine) depsReady() {
	// Only once begun: news from the watchers before that waits for begin,
	// which reads their state itself.
	if m.phase == phaseWaiting {
		m.spawn()
	}
}

// spawned says the main child runs as pid; tty, that its group was given
// the terminal's foreground.
func (m *machine) spawned(pid int, tty bool, now time.Time) {
	m.child, m.started, m.alive = pid, now, true
	m.letGoOfTail()
	// vigil follows the child's stops as a shell's job, so that Ctrl-Z
	// stops the shell's job, not only the child, when the child has the
	// terminal; as PID 1 there is no shell to stop for, and stopping the
	// init would freeze the container.
	m.jobControl = tty && !m.isInit
	// A kill from before this run is not its child's.
	m.reportOOM()
	m.oomRun = 0
	for i, d := range runDeadlines {
		if after := d.after(&m.cfg); after > 0 {
			m.runAt[i] = now.Add(after)
		}
	}
	m.watchdog, m.thawCredited = m.cfg.Watchdog, false
	if m.watchdog > 0 {
		m.watchdogEnds = now.Add(m.watchdog)
	}
	m.do(action{kind: actTombstone})
	for _, sig := range m.early {
		m.forward(sig)
	}
	m.early = nil
}

// letGoOfTail is the decision after each spawn: with no run to follow
// (--restart no) vigil lets go of its end of the stderr pipe at once, so
// that the tail sees the end of file when the child's tree is done with
// it. Under --restart the pipe is kept for the next run (see afterCleanup).
func (m *machine) letGoOfTail() {
	if m.capturesTail() && m.cfg.Restart == RestartNo {
		m.do(action{kind: actCloseTail})
	}
}

// maxEarly bounds the signals kept for a child that does not exist yet.
const maxEarly = 64

// spawnFailed says the command could not be started (127, 126): that is
// an end like any other, recorded and hooked, with no process behind it.
func (m *machine) spawnFailed(err error, now time.Time) {
	m.started = now
	m.letGoOfTail()
	m.err = err
	m.end(reaper.Exit{Code: codeOf(err)}, CauseNone, false, now)
}

// isStop reports whether sig begins a graceful stop.
func (m *machine) isStop(sig unix.Signal) bool {
	for _, s := range m.cfg.StopSignals {
		if s == sig {
			return true
		}
	}
	return false
}

// target is where forwarded signals go: the child, or its group with -g.
func (m *machine) target() int {
	if m.cfg.Group {
		return -m.child
	}
	return m.child
}

// signal handles one signal vigil received (SIGCHLD never comes here: the
// loop reaps instead).
func (m *machine) signal(sig unix.Signal, now time.Time) {
	_, kept := m.cfg.Rewrite.Apply(sig)
	if kept && m.isStop(sig) {
		// Whatever the phase (a --timeout's grace, the drain, the hooks,
		// the backoff), the stop asked for is the last word on restarts.
		m.outside = true
	}
	switch m.phase {
	case phaseStart, phaseWaiting:
		switch {
		case m.isStop(sig):
		case sig == unix.SIGTSTP || sig == unix.SIGTTIN || sig == unix.SIGTTOU || sig == unix.SIGCONT:
			return // job control of a child that does not exist yet
		default:
			// Kept for the child, as an init that blocks signals while it
			// spawns delivers them once the child exists; bounded.
			if len(m.early) < maxEarly {
				m.early = append(m.early, sig)
			}
			return
		}
		if kept {
			// No child to pass it to: vigil ends as the signal asked.
			m.err = fail(128+int(sig), "%s while waiting for %s; command not started", signals.Name(sig), m.waitingOn)
			m.started, m.gaveUp = now, true
			m.end(reaper.Exit{Signal: sig}, CauseSignal, false, now)
		}
		return
	case phaseRunning:
	case phaseCleanup, phaseTail, phaseHooks, phaseBackoff:
		if m.isStop(sig) && kept && m.again {
			m.noMoreRuns(now)
		}
		return
	case phaseWaitAll:
		// Every descendant gets what the child would have.
		switch {
		case m.isStop(sig) && !m.stop.active() && kept:
			m.stop.cause, m.stop.sig, m.stop.sent = CauseSignal, sig, true
			m.stopLeftovers(sig, now)
		default:
			if to, ok := m.cfg.Rewrite.Apply(sig); ok {
				m.do(action{kind: actLeftovers, sig: to})
			}
		}
		return
	case phaseFlush, phaseDone:
		return // the child has ended: nothing to forward to
	default:
		panic("pid1: signal in unknown phase " + strconv.Itoa(int(m.phase)))
	}
	if m.jobControl {
		switch sig {
		case unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU:
			// Stop the job the way a shell would: the child's group
			// first, then vigil, so the shell sees its job stop.
			m.do(action{kind: actKill, pid: -m.child, sig: sig})
			m.stopSelf(now)
			return
		case unix.SIGCONT:
			m.awaitCont = false
			// A stop of vigil's own decided in this same batch has not
			// happened yet: after this CONT it must not (nothing would
			// continue vigil).
			for i := len(m.out) - 1; i >= 0; i-- {
				if m.out[i].kind == actStopSelf {
					m.out = append(m.out[:i], m.out[i+1:]...)
					m.stoppedAt = time.Time{}
					break
				}
			}
			m.do(action{kind: actResume, pid: m.child})
			return
		}
	}
	if m.isStop(sig) {
		m.beginStop(sig, CauseNone, now)
		return
	}
	m.forward(sig)
}

// forward passes sig through the rewrite table to the child.
func (m *machine) forward(sig unix.Signal) {
	if to, ok := m.cfg.Rewrite.Apply(sig); ok {
		m.do(action{kind: actKill, pid: m.target(), sig: to})
	}
}

// beginStop starts a graceful stop. The first stop wins: a stop signal
// after --timeout fired, or a timeout after a stop signal, changes neither
// the class nor the clock; a repeated stop signal is forwarded again.
func (m *machine) beginStop(sig unix.Signal, cause Cause, now time.Time) {
	if m.stop.active() {
		if cause != CauseNone {
			return
		}
		if !m.stop.forwardAt.IsZero() {
			// A second stop during the drain is impatience: the drain ends,
			// the held signal goes out, then this one, in the order they came.
			m.sendStop(now)
		}
		m.forwardStop(sig)
		return
	}
	if cause == CauseNone {
		if _, ok := m.cfg.Rewrite.Apply(sig); !ok {
			// -r TERM:none, as dumb-init's -r 15:0: the user asked for
			// this signal to be dropped, so it stops nothing.
			return
		}
		cause = CauseSignal
	}
	m.stop.cause, m.stop.sig = cause, sig
	m.do(action{kind: actTombstone}) // stopping
	if m.cfg.Drain > 0 && cause != CauseTimeout && cause != CauseWatchdog {
		m.stop.forwardAt = now.Add(m.cfg.Drain)
		return
	}
	m.sendStop(now)
}

// sendStop forwards the stop signal and arms the grace period. A stop the
// runtime asked for (a signal from outside) gets no SIGKILL of vigil's own
// unless --grace was given: the runtime owns that deadline (docker stop -t,
// terminationGracePeriodSeconds) and kills the container when it expires.
// Stops vigil starts itself always end in a SIGKILL after the grace.
func (m *machine) sendStop(now time.Time) {
	m.stop.forwardAt = time.Time{}
	m.stop.sent = true
	if m.stop.cause == CauseTimeout || m.stop.cause == CauseWatchdog {
		// The user chose this signal for the timeout: no rewrite.
		m.do(action{kind: actKill, pid: m.target(), sig: m.stop.sig})
	} else {
		m.forwardStop(m.stop.sig)
	}
	if m.stop.cause != CauseSignal || m.cfg.GraceSet {
		m.stop.killAt = now.Add(m.cfg.Grace)
		m.stop.graceEnds = m.stop.killAt
	}
}

// forwardStop forwards a stop signal and, for a stop from outside, keeps
// what the child was sent: dying of it is honouring the stop.
func (m *machine) forwardStop(sig unix.Signal) {
	m.forward(sig)
	if to, ok := m.cfg.Rewrite.Apply(sig); ok && m.stop.cause == CauseSignal {
		m.stop.forwarded.add(to)
	}
}

func (m *machine) stopSelf(now time.Time) {
	m.awaitCont = true
	m.stoppedAt = now
	m.do(action{kind: actStopSelf})
}

// frozenAfter is how late a wake-up must be, past the deadline vigil slept
// towards, to count as time vigil did not run (a cgroup freezer, SIGSTOP):
// a Go timer on a busy machine is late by milliseconds, not by this.
const frozenAfter = 100 * time.Millisecond

// woke is the first step of every wake-up: due is the deadline vigil slept
// towards (zero if none). The watchdog counts only time in which vigil ran:
// the time it stopped itself for job control is known exactly; a freeze
// (docker pause) is seen only as a wake-up far past its deadline, and then
// everything since the last wake-up is taken as frozen, once per
// WATCHDOG=1, so that a hung child is still ended one interval after the
// thaw.
func (m *machine) woke(now, due time.Time) {
	var lost time.Duration
	switch {
	case !m.stoppedAt.IsZero():
		lost = now.Sub(m.stoppedAt)
		m.stoppedAt = time.Time{}
	case !due.IsZero() && now.Sub(due) > frozenAfter && !m.lastRan.IsZero() && !m.thawCredited:
		lost = now.Sub(m.lastRan)
		m.thawCredited = true
	}
	m.lastRan = now
	if lost > 0 && m.phase == phaseRunning {
		if !m.watchdogEnds.IsZero() {
			m.watchdogEnds = m.watchdogEnds.Add(lost)
		}
		// A deadline the child keeps by doing something (readiness) is
		// run time too: frozen, it could not.
		for i, d := range runDeadlines {
			if d.kept != nil && !m.runAt[i].IsZero() {
				m.runAt[i] = m.runAt[i].Add(lost)
			}
		}
	}
}

// terminal says whether the child's group is the terminal's foreground
// group, given to it by vigil; asked before each reap.
func (m *machine) terminal(fg bool) { m.ttyFg = fg }

// notified takes what the child said over the notification socket.
func (m *machine) notified(u readiness, now time.Time) {
	if m.phase != phaseRunning || m.child == 0 {
		return
	}
	changed := false
	if u.ready && !m.ready {
		m.ready, m.readyAt, changed = true, now, true
	}
	if u.stopping && !m.saysStopping {
		m.saysStopping, changed = true, true
	}
	if u.status != nil && *u.status != m.status {
		m.status, changed = *u.status, true
	}
	if u.interval != nil {
		// WATCHDOG_USEC= from the child: a new interval from now; 0 turns
		// the watchdog off, as systemd does.
		m.watchdog = *u.interval
		m.watchdogEnds = time.Time{}
		if m.watchdog > 0 {
			m.watchdogEnds = now.Add(m.watchdog)
		}
	}
	if u.pings > 0 && m.watchdog > 0 {
		m.watchdogEnds = now.Add(m.watchdog)
	}
	if u.pings > 0 || u.interval != nil {
		m.thawCredited = false
	}
	if u.extend != nil {
		// systemd's EXTEND_TIMEOUT_USEC: the start-up deadlines (those
		// readiness keeps) pass no sooner than this from now.
		for i, d := range runDeadlines {
			if by := now.Add(*u.extend); d.kept != nil && !m.runAt[i].IsZero() && m.runAt[i].Before(by) {
				m.runAt[i] = by
			}
		}
	}
	if changed {
		m.do(action{kind: actTombstone})
	}
	if u.trigger {
		m.hung(now)
	}
}

// readyOnHeld says every --ready-on target holds: ready, as by READY=1.
func (m *machine) readyOnHeld(now time.Time) { m.becameReady(now, whyReadyOn) }

// readyFdWritten says the child wrote its line to --ready-fd: ready, as by
// READY=1.
func (m *machine) readyFdWritten(now time.Time) { m.becameReady(now, whyReadyFd) }

// becameReady marks the running child ready, unless it is already, says
// so (why: what made it ready) and relays it upstream: vigil's own manager
// learns that the service is ready from vigil.
func (m *machine) becameReady(now time.Time, why reason) {
	if m.phase == phaseRunning && m.child != 0 && !m.ready {
		m.ready, m.readyAt = true, now
		m.do(action{kind: actTombstone})
		m.do(action{kind: actNote, why: why})
		m.do(action{kind: actRelay, msg: "READY=1"})
	}
}

// hung ends the child as a hang: the watchdog signal (ABRT by default, so
// that a core shows where it hung), the grace, SIGKILL. The first stop
// wins: a child already being stopped is not a hang.
func (m *machine) hung(now time.Time) {
	m.watchdogEnds = time.Time{}
	if !m.stop.active() {
		m.do(action{kind: actNote, why: whyWatchdog, d: m.watchdog})
		m.beginStop(m.cfg.WatchdogSignal, CauseWatchdog, now)
	}
}

// state is the tombstone's state for the current phase.
func (m *machine) state() string {
	switch {
	case m.rec != nil && (m.again || m.phase == phaseBackoff):
		return "starting" // between runs
	case m.rec != nil:
		return "exited"
	case m.child == 0:
		return "starting"
	case m.stop.active() || m.saysStopping:
		return "stopping"
	case m.ready:
		return "ready"
	}
	return "running"
}

// noMoreRuns is a stop asked for between runs: vigil ends at once, with
// the last status and without a restart. The hooks of the run that ended
// still finish (each bounded) before the cleanup.
func (m *machine) noMoreRuns(now time.Time) {
	m.again = false
	m.do(action{kind: actTombstone})
	if m.phase == phaseBackoff {
		m.backoffEnds, m.hooksCleaned = time.Time{}, true
		m.cleanup(now)
	}
}

// stopOnFired says a --stop-on target holds.
func (m *machine) stopOnFired(now time.Time) {
	m.outside = true
	switch {
	case m.phase == phaseRunning && m.child != 0:
		m.beginStop(m.cfg.StopSignals[0], CauseStopOn, now)
	case m.phase == phaseWaiting:
		// What it was waiting to serve is gone already: a stop on purpose,
		// without starting anything.
		m.started, m.gaveUp = now, true
		m.end(reaper.Exit{}, CauseStopOn, false, now)
	case m.again:
		m.noMoreRuns(now)
	}
}

// cancel is Run's context ending: a stop like a signal's.
func (m *machine) cancel(now time.Time) {
	switch m.phase {
	case phaseRunning:
		if _, kept := m.cfg.Rewrite.Apply(m.cfg.StopSignals[0]); kept {
			m.outside = true
		}
		m.beginStop(m.cfg.StopSignals[0], CauseNone, now)
	default:
		m.signal(m.cfg.StopSignals[0], now)
	}
}

// childStopped is a job-control stop report for the main child.
func (m *machine) childStopped(now time.Time) {
	if m.phase != phaseRunning || !m.jobControl {
		return
	}
	if m.awaitCont {
		// vigil stopped itself with the job and runs again, so it was
		// continued; the SIGCONT that will resume the child is on its way.
		// This report is of the stop vigil already followed.
		return
	}
	m.stopSelf(now)
}

// cause is what vigil did to the child, for its class: a stop counts only
// once its signal went out, so a child that fails on its own during the
// drain is a failure.
func (m *machine) cause() Cause {
	if m.stop.sent {
		return m.stop.cause
	}
	return CauseNone
}

// reaped takes one drain's worth of exits. alive is what the drain said
// about the children left. The loop hands the machine the OOM-kill counter
// (oomCounted) before the drain: a victim's kill is counted before it can
// exit, so a pending kill and a process killed by SIGKILL that vigil did
// not kill belong together.
func (m *machine) reaped(exits []reaper.Exit, alive bool, now time.Time) {
	m.alive = alive
	for i := range exits {
		e := &exits[i]
		switch {
		case e.Stopped:
			if e.Pid == m.child {
				m.childStopped(now)
			}
		case e.Pid == m.child && m.child != 0 && m.rec == nil:
			m.end(*e, m.cause(), m.oomVictim(e), now)
		case e.Pid == m.hookPid && m.hookPid != 0:
			if m.oomVictim(e) {
				m.do(action{kind: actNote, why: whyOOMVictim, pid: e.Pid, comm: e.Comm, oom: m.oomRun})
			}
			m.hookPid = 0
			m.nextHook(now)
		case m.oomVictim(e):
			m.do(action{kind: actNote, why: whyOOMVictim, pid: e.Pid, comm: e.Comm, oom: m.oomRun})
		}
	}
	switch {
	case alive:
	case m.phase == phaseCleanup:
		m.afterCleanup(now)
	case m.phase == phaseWaitAll:
		m.waitAllDone(now)
	}
}

// oomCounted takes the OOM-kill counter of vigil's memory cgroup, as the
// loop read it. The first reading is the base; each rise is that many
// kills, pending until a reaped process is found to be the victim or
// oomVictimWait has passed.
func (m *machine) oomCounted(total uint64, now time.Time) {
	if !m.oomKnown || total < m.oomTotal {
		// A counter that went down is another cgroup's (vigil was moved):
		// a new base.
		m.oomKnown, m.oomTotal = true, total
		return
	}
	if total == m.oomTotal {
		return
	}
	n := int(min(total-m.oomTotal, 1<<20))
	m.oomTotal = total
	m.oomPending += n
	m.oomRun += n
	if m.oomReportAt.IsZero() {
		m.oomReportAt = now.Add(oomVictimWait)
	}
	if m.phase == phaseRunning && m.rec == nil {
		m.do(action{kind: actTombstone}) // the count is in it
	}
}

// oomWaiting reports whether an OOM kill waits for its victim: the next
// drain should name the processes killed by SIGKILL.
func (m *machine) oomWaiting() bool { return m.oomPending > 0 }

// oomVictim reports whether e is the victim of a pending OOM kill, and if
// so ties the kill to it: killed by SIGKILL, which vigil did not send it.
func (m *machine) oomVictim(e *reaper.Exit) bool {
	if m.oomPending == 0 || e.Signal != unix.SIGKILL || e.Stopped || m.killedBySelf(e.Pid) {
		return false
	}
	m.oomPending--
	if m.oomPending == 0 {
		m.oomReportAt = time.Time{}
	}
	return true
}

// killedBySelf reports whether a SIGKILL that ended pid may have been
// vigil's own: the child's group after the grace, the leftovers, a hook
// after --hook-timeout.
func (m *machine) killedBySelf(pid int) bool {
	switch {
	case m.stop.killed && m.rec == nil:
		return true // the child's group; its workers with it under -g
	case m.phase == phaseCleanup && m.cleanupKill:
		return true
	case m.phase == phaseWaitAll && !m.stop.landBy.IsZero():
		return true
	case pid == m.hookPid && m.hookKill:
		return true
	}
	return false
}

// reportOOM reports the pending OOM kills as a count: their victims were
// not processes vigil reaped in time.
func (m *machine) reportOOM() {
	if m.oomPending > 0 {
		m.do(action{kind: actNote, why: whyOOMKills, n: m.oomPending, oom: m.oomRun})
	}
	m.oomPending, m.oomReportAt = 0, time.Time{}
}

// end records how the main child ended and moves on to cleaning up.
func (m *machine) end(e reaper.Exit, cause Cause, oomRose bool, now time.Time) {
	class := Classify(e, cause, oomRose && !m.stop.killed)
	if m.cfg.ExitZeroOnStop && cause == CauseSignal && !m.stop.killed && honouredStop(e, m.stop.forwarded) {
		// A sidecar the kubelet stops after the main containers: its child
		// died of the stop it was sent, which is the end asked for.
		class = Stopped
	}
	status := e.Status()
	if class == Stopped {
		// vigil ended the child on purpose because a --stop-on target fired
		// (a sidecar whose main container is done), or the child honoured a
		// stop with --exit-zero-on-stop: a success, or a Job with a sidecar
		// would never complete. The record keeps how it died.
		status = 0
	}
	if m.cfg.RemapExit[status] {
		status = 0
	}
	m.rec = &record{class: class, exit: e, status: status, command: m.cfg.Command, started: m.started, ended: now,
		restarts: m.restarts, oomKills: m.oomRun}
	if m.err != nil {
		m.rec.err = m.err.Error()
	}
	clear(m.runAt)
	m.stop.forwardAt, m.stop.killAt, m.stop.landBy = time.Time{}, time.Time{}, time.Time{}
	m.watchdogEnds = time.Time{}
	m.rec.ready, m.rec.readyAt, m.rec.statusText = m.ready, m.readyAt, m.status
	if m.ttyFg && (e.Signal == unix.SIGINT || e.Signal == unix.SIGQUIT) {
		// The terminal's Ctrl-C or Ctrl-\ went to the foreground group,
		// the child's, not to vigil: the user asked for a stop all the same.
		m.outside = true
	}
	m.again = m.restartAfter(class, cause)
	if m.cfg.WaitAll && !m.again && m.alive {
		// The broken-entrypoint case: a script that started daemons and
		// exited. Wait for all of them; the record is written when they
		// are done, since the container's work is not.
		m.phase = phaseWaitAll
		if m.stop.active() {
			// A stop under way reaches them too, with the grace.
			m.stopLeftovers(m.stop.sig, now)
		}
		return
	}
	// The tombstone comes before the cleanup: if the runtime's SIGKILL
	// arrives while leftovers are being stopped, the record is there.
	m.do(action{kind: actTombstone})
	m.cleanup(now)
}

// restartAfter decides whether a run that ended with class is followed by
// another. A stop asked for from outside (a stop signal, --stop-on) is
// never followed by a restart; a --timeout is a failure of that run.
func (m *machine) restartAfter(class Class, cause Cause) bool {
	switch {
	case cause == CauseSignal || cause == CauseStopOn || m.gaveUp || m.outside:
		return false // a --timeout or a watchdog is a failure of the run
	case m.cfg.RestartMax > 0 && m.restarts >= m.cfg.RestartMax:
		return false
	}
	switch m.cfg.Restart {
	case RestartNo:
		return false
	case RestartAlways:
		return true
	case RestartOnFailure:
		return class != Success && class != Stopped
	}
	// A caller of Run gave a policy that is none of these: said, and taken
	// as no.
	m.do(action{kind: actNote, why: whyBadRestart, n: int(m.cfg.Restart)})
	return false
}

// backoff is the wait before the next run: --restart-delay, doubled after
// each consecutive run shorter than --restart-delay-max, up to that
// maximum; a run that lasted longer starts the count again, so a program
// that crashes once a day does not wait the maximum.
func (m *machine) backoff(ran time.Duration) time.Duration {
	if ran > m.cfg.RestartDelayMax {
		m.streak = 0
	}
	d := m.cfg.RestartDelay
	for i := 0; i < m.streak && d < m.cfg.RestartDelayMax; i++ {
		d *= 2
	}
	m.streak++
	return min(d, max(m.cfg.RestartDelayMax, m.cfg.RestartDelay))
}

// rerun starts the next run after the backoff.
func (m *machine) rerun() {
	m.restarts++
	m.child, m.rec, m.err, m.again = 0, nil, nil, false
	m.stop, m.backoffEnds = stop{}, time.Time{}
	clear(m.runAt)
	m.ready, m.readyAt, m.status, m.saysStopping = false, time.Time{}, "", false
	m.hook, m.hooks, m.hookPid, m.hooksCleaned, m.tailEOF = -1, 0, 0, false, false
	m.spawn()
}

// stopLeftovers is a stop under --wait-all: the descendants get the stop
// signal and, after --grace (what is left of it, when it was running
// already), SIGKILL. vigil was asked to wait for them, so it also owns
// ending them when a stop comes.
func (m *machine) stopLeftovers(sig unix.Signal, now time.Time) {
	if to, ok := m.cfg.Rewrite.Apply(sig); ok {
		m.do(action{kind: actLeftovers, sig: to})
	}
	m.stop.killAt = m.stop.graceEnds
	if m.stop.killAt.IsZero() {
		m.stop.killAt = now.Add(m.cfg.Grace)
	}
}

// waitAllDone moves on once every descendant has ended.
func (m *machine) waitAllDone(now time.Time) {
	m.stop.killAt, m.stop.landBy = time.Time{}, time.Time{}
	m.do(action{kind: actTombstone})
	m.cleanup(now)
}

// cleanup ends whatever is left: SIGTERM, a short bound, SIGKILL. The
// bound is --cleanup-grace, cut to what is left of an explicit grace when a
// stop was under way, so a shutdown keeps to the budget the user set.
func (m *machine) cleanup(now time.Time) {
	m.phase = phaseCleanup
	if m.cfg.NoCleanup || !m.alive || m.again {
		// Between runs nothing the previous one left behind is touched:
		// detached workers live on, and are reaped as they end.
		m.afterCleanup(now)
		return
	}
	bound := m.cfg.CleanupGrace
	if left := m.stop.graceEnds.Sub(now); !m.stop.graceEnds.IsZero() && left < bound {
		bound = max(0, left)
	}
	m.cleanupKill = false
	m.cleanupEnds = now.Add(bound)
	m.do(action{kind: actLeftovers, sig: unix.SIGTERM})
}

// leftoversUnreachable says the leftovers cannot be named (a subreaper
// without a /proc of its own namespace): waiting for them would be
// waiting for nothing.
func (m *machine) leftoversUnreachable(now time.Time) {
	if m.phase == phaseCleanup {
		m.afterCleanup(now)
	}
}

func (m *machine) afterCleanup(now time.Time) {
	m.cleanupEnds = time.Time{}
	switch {
	case m.hooksCleaned:
		m.flush(now)
	case m.again && m.capturesTail():
		// The next run writes into the same pipe, and the workers of this
		// one still may: no end of file to wait for, and none to cause.
		// What the child wrote before it died is in the pipe, though: the
		// run's tail holds it once the copier has read that far.
		m.phase = phaseTail
		m.tailEnds = now.Add(tailWait)
		m.do(action{kind: actAwaitTail})
	case m.again:
		m.finishTail()
	case m.capturesTail() && !m.tailEOF && !m.cfg.NoCleanup:
		// Leftovers that held the child's stderr are gone now, so the
		// end of file is near once vigil lets go of its own end. With
		// --no-cleanup they live on and may hold it for ever: take what
		// is there.
		m.phase = phaseTail
		m.tailEnds = now.Add(tailWait)
		m.do(action{kind: actCloseTail})
	default:
		m.finishTail()
	}
}

// tailDone says the captured stderr reached end of file.
func (m *machine) tailDone() {
	m.tailEOF = true
	if m.phase == phaseTail {
		m.finishTail()
	}
}

// tailCaughtUp says the copier has read everything the pipe held.
func (m *machine) tailCaughtUp() {
	if m.phase == phaseTail && m.again {
		m.finishTail()
	}
}

// finishTail stops waiting for the tail. The pipe is closed then, unless
// the copier is at its end already: with --no-cleanup it is left to
// whoever holds it; between runs it is the next run's.
func (m *machine) finishTail() {
	if m.capturesTail() {
		m.do(action{kind: actFinishTail, shut: !m.cfg.NoCleanup && !m.again})
	}
	m.ended()
}

// tailTaken hands the machine the end of the captured stderr, for the
// record (asked for by actFinishTail).
func (m *machine) tailTaken(b []byte) {
	if m.rec != nil {
		m.rec.tail = b
	}
}

// ended is the end proper: the record is complete (tail included), so it
// is logged and written, and the hooks run.
func (m *machine) ended() {
	m.tailEnds = time.Time{}
	m.reportOOM() // before the class line and the hooks
	m.do(action{kind: actEnded, rec: m.rec, level: m.endLevel()})
	m.phase = phaseHooks
	m.do(action{kind: actListHooks, rec: m.rec})
}

// endLevel is how loud the line that says how the child ended is: quiet
// unless vigil knows more than the status says. Success, failure, a death
// by a signal and a stop on purpose speak for themselves; a SIGKILL vigil
// did not send, a fault, an OOM kill and a timeout do not. A watchdog's
// end has had its warning already.
func (m *machine) endLevel() slog.Level {
	switch m.rec.class {
	case OOM, Fault, Timeout:
		return slog.LevelWarn
	case Kill:
		if m.stop.killed {
			return slog.LevelDebug // vigil's own SIGKILL, warned of then
		}
		return slog.LevelWarn
	case Success, Failure, Signal, Watchdog, Stopped:
		return slog.LevelDebug
	}
	panic("pid1: unknown class " + string(m.rec.class))
}

// hooksListed says how many hooks the class has.
func (m *machine) hooksListed(n int, now time.Time) {
	m.hooks, m.hook = n, -1
	m.nextHook(now)
}

func (m *machine) nextHook(now time.Time) {
	m.hookEnds, m.hookKill = time.Time{}, false
	m.hook++
	if m.hook < m.hooks {
		m.do(action{kind: actHook, n: m.hook})
		return
	}
	if m.again {
		m.phase = phaseBackoff
		m.backoffEnds = now.Add(m.backoff(m.rec.ended.Sub(m.rec.started)))
		m.do(action{kind: actTombstone})
		return
	}
	// What the hooks started is cleaned up like the child's leftovers, and
	// so is what earlier runs left, when a stop between runs cut the
	// restarts short (cleanup returns at once when no child is left).
	m.hooksCleaned = true
	m.cleanup(now)
}

// hookStarted says hook number n runs as pid.
func (m *machine) hookStarted(pid int, now time.Time) {
	m.hookPid = pid
	m.hookEnds = now.Add(m.cfg.HookTimeout)
}

// hookFailed says the hook could not be started; the next one runs.
func (m *machine) hookFailed(now time.Time) { m.nextHook(now) }

func (m *machine) flush(now time.Time) {
	m.phase = phaseFlush
	m.flushEnds = now.Add(flushWait)
	m.do(action{kind: actFlush})
}

// flushed says the records are written (or their time is up).
func (m *machine) flushed() {
	if m.phase == phaseFlush {
		m.flushEnds = time.Time{}
		m.phase = phaseDone
	}
}

// A deadline of a phase: where the machine keeps it and what happens when
// it passes. The deadlines are listed once (deadlines): tick fires them,
// next sleeps until the earliest.
type deadline struct {
	at   func(m *machine) *time.Time
	fire func(m *machine, now time.Time)
}

// deadlines are each phase's, in the order tick takes them: one that fires
// may set a later one for the same tick (a --grace of 0 kills at once).
// The OOM report's is in every phase, apart (see next).
var deadlines = [phaseDone + 1][]deadline{
	phaseWaiting: {{func(m *machine) *time.Time { return &m.waitEnds }, (*machine).waitTimedOut}},
	phaseRunning: slices.Concat(
		[]deadline{{func(m *machine) *time.Time { return &m.stop.forwardAt }, (*machine).sendStop}},
		runDeadlineEntries(),
		[]deadline{
			{func(m *machine) *time.Time { return &m.watchdogEnds }, (*machine).hung},
			{func(m *machine) *time.Time { return &m.stop.killAt }, (*machine).graceOver},
			{func(m *machine) *time.Time { return &m.stop.landBy }, (*machine).childStuck},
		}),
	phaseCleanup: {{func(m *machine) *time.Time { return &m.cleanupEnds }, (*machine).cleanupDue}},
	phaseTail:    {{func(m *machine) *time.Time { return &m.tailEnds }, func(m *machine, _ time.Time) { m.finishTail() }}},
	phaseHooks:   {{func(m *machine) *time.Time { return &m.hookEnds }, (*machine).hookDue}},
	phaseBackoff: {{func(m *machine) *time.Time { return &m.backoffEnds }, func(m *machine, _ time.Time) { m.rerun() }}},
	phaseWaitAll: {
		{func(m *machine) *time.Time { return &m.stop.killAt }, (*machine).leftoversGraceOver},
		{func(m *machine) *time.Time { return &m.stop.landBy }, (*machine).leftoversStuck},
	},
	phaseFlush: {{func(m *machine) *time.Time { return &m.flushEnds }, func(m *machine, _ time.Time) { m.flushed() }}},
}

// tick handles the clock: every deadline at or before now fires.
func (m *machine) tick(now time.Time) {
	due := func(t time.Time) bool { return !t.IsZero() && !now.Before(t) }
	if due(m.oomReportAt) {
		m.reportOOM()
	}
	p := m.phase
	for _, d := range deadlines[p] {
		if m.phase != p {
			return // the rest are another phase's
		}
		if due(*d.at(m)) {
			d.fire(m, now)
		}
	}
}

// next is the earliest deadline of the current phase, zero if none.
func (m *machine) next() time.Time {
	first := m.oomReportAt
	for _, d := range deadlines[m.phase] {
		if t := *d.at(m); !t.IsZero() && (first.IsZero() || t.Before(first)) {
			first = t
		}
	}
	return first
}

// waitTimedOut is --wait-timeout: the targets never held.
func (m *machine) waitTimedOut(now time.Time) {
	m.err = fail(ExitWaitTimeout, "--wait-for %s: not ready after %s; command not started", m.waitingOn, m.cfg.WaitTimeout)
	m.started, m.gaveUp = now, true
	m.end(reaper.Exit{Code: ExitWaitTimeout}, CauseNone, false, now)
}

// A runDeadline is a duration of the Config that each run must keep:
// armed when the run starts (none when the duration is 0), it stops the
// child as a timeout (--timeout-signal, then the grace; class timeout)
// when it passes, unless kept says the run has kept it by then. A new one
// is its Config field, its flag and an entry in runDeadlines.
type runDeadline struct {
	after func(*Config) time.Duration
	kept  func(*machine) bool // nil: only the child's end keeps it
	what  string              // the log line that says it passed
	key   string              // the duration's name in that line
}

var runDeadlines = [...]runDeadline{
	{after: func(c *Config) time.Duration { return c.Timeout }, what: "timeout; stopping the child", key: "timeout"},
	{after: func(c *Config) time.Duration { return c.ReadyTimeout }, kept: func(m *machine) bool { return m.ready },
		what: "not ready in time; stopping the child", key: "ready_timeout"},
}

// never is the deadline of a run deadline already kept.
var never time.Time

// runDeadlineEntries are the deadlines of runDeadlines, for the table.
func runDeadlineEntries() []deadline {
	out := make([]deadline, len(runDeadlines))
	for i, d := range runDeadlines {
		out[i] = deadline{
			at: func(m *machine) *time.Time {
				if d.kept != nil && d.kept(m) {
					return &never
				}
				return &m.runAt[i]
			},
			fire: func(m *machine, now time.Time) { m.runDeadlinePassed(i, now) },
		}
	}
	return out
}

// runDeadlinePassed stops the child as a timeout of vigil's own, unless a
// stop is under way.
func (m *machine) runDeadlinePassed(i int, now time.Time) {
	m.runAt[i] = time.Time{}
	if !m.stop.active() {
		m.do(action{kind: actNote, why: whyTimeout, n: i, d: runDeadlines[i].after(&m.cfg)})
		m.beginStop(m.cfg.TimeoutSignal, CauseTimeout, now)
	}
}

// graceOver is the end of a stop's grace: SIGKILL to the child's group.
func (m *machine) graceOver(now time.Time) {
	m.stop.killAt = time.Time{}
	m.stop.killed = true
	m.stop.landBy = now.Add(killWait)
	m.do(action{kind: actNote, why: whyGraceOver, pid: m.child})
	m.do(action{kind: actKill, pid: -m.child, sig: unix.SIGKILL})
}

// childStuck is a SIGKILL that did not land: go on as if the child had
// died of it.
func (m *machine) childStuck(now time.Time) {
	m.stop.landBy = time.Time{}
	m.do(action{kind: actNote, why: whyChildStuck, pid: m.child})
	m.end(reaper.Exit{Pid: m.child, Signal: unix.SIGKILL}, m.cause(), false, now)
}

// cleanupDue is the end of the leftovers' bound: SIGKILL, then going on.
func (m *machine) cleanupDue(now time.Time) {
	if m.cleanupKill {
		m.do(action{kind: actNote, why: whyLeftoversSurvived})
		m.afterCleanup(now)
		return
	}
	m.cleanupKill = true
	m.cleanupEnds = now.Add(killWait)
	m.do(action{kind: actLeftovers, sig: unix.SIGKILL})
}

// hookDue is the end of a hook's bound: SIGKILL to its group, then the next.
func (m *machine) hookDue(now time.Time) {
	if m.hookKill {
		m.do(action{kind: actNote, why: whyHookStuck, pid: m.hookPid})
		m.hookPid = 0
		m.nextHook(now)
		return
	}
	m.hookKill = true
	m.hookEnds = now.Add(killWait)
	m.do(action{kind: actNote, why: whyHookTimeout, pid: m.hookPid})
	m.do(action{kind: actKill, pid: -m.hookPid, sig: unix.SIGKILL})
}

// leftoversGraceOver is the end of the grace of a stop under --wait-all.
func (m *machine) leftoversGraceOver(now time.Time) {
	m.stop.killAt = time.Time{}
	m.stop.landBy = now.Add(killWait)
	m.do(action{kind: actNote, why: whyGraceOver, pid: m.child})
	m.do(action{kind: actLeftovers, sig: unix.SIGKILL})
}

// leftoversStuck is a SIGKILL to the descendants that did not land.
func (m *machine) leftoversStuck(now time.Time) {
	m.do(action{kind: actNote, why: whyLeftoversSurvived})
	m.waitAllDone(now)
}
