package pid1

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vigil/internal/intake"
	"vigil/reaper"
	"vigil/signals"
)

// The machine's invariants over random histories (STYLE 19): a seeded
// generator of events (signals in bursts through the intake's queue, in
// every phase; the child's death, healthy pings, freezes, Ctrl-Z; --stop-on;
// hooks, leftovers, the clock) and, after every step:
//   - a stop from outside (a kept stop signal in any phase, --stop-on, the
//     context's end, a death by INT or QUIT with the child's group in the
//     terminal's foreground) is never followed by a spawn;
//   - job-control signals reach the child in the order they came in;
//   - a child that pings within its interval of the time it ran is never
//     ended as hung, however long vigil was frozen or stopped;
//   - no action names a pid that is not the current child's or hook's;
//   - once vigil let go of the stderr pipe (at the spawn under --restart
//     no, or at the end), no run is started: it would write into nothing;
//   - as PID 1 vigil never stops itself for job control;
//   - every history ends: the loop reaches done in a bounded number of steps.

// world is the loop's side, simulated: it performs the machine's actions
// with plain values and keeps what the invariants need.
type world struct {
	t   *testing.T
	rng *rand.Rand
	m   *machine
	now time.Time
	log []string // the history, for the failure message

	nextPid  int
	child    int // the live main child, 0 if none
	hook     int // the live hook, 0 if none
	healthy  bool
	ready    bool          // the child said READY=1 (a healthy one does, at once)
	ranSince time.Duration // the time vigil and the child ran since the last ping
	stopped  bool          // vigil stopped itself (job control)
	thawed   bool          // a freeze just ended: the child's own timer has expired

	outside  bool          // a stop was asked for from outside
	isInit   bool          // vigil is PID 1
	tailGone bool          // vigil let go of the stderr pipe
	sentJobs []unix.Signal // TSTP/CONT handed to the machine while it was running
	gotJobs  []unix.Signal // TSTP/CONT (or resume) it sent the child
	spawns   int
}

func (w *world) fail(format string, args ...any) {
	w.t.Helper()
	w.t.Fatalf("%s\nhistory:\n  %s", fmt.Sprintf(format, args...), strings.Join(w.log, "\n  "))
}

func (w *world) note(format string, args ...any) {
	w.log = append(w.log, fmt.Sprintf("%8s %-8s ", w.now.Sub(t0), w.m.phase)+fmt.Sprintf(format, args...))
}

// perform does what the machine decided, feeding results back, and checks
// each action.
func (w *world) perform() {
	for range 1000 {
		acts := w.m.take()
		if len(acts) == 0 {
			return
		}
		w.note("-> %s", show(acts))
		for _, a := range acts {
			w.act(a)
		}
	}
	w.fail("the machine never stopped deciding")
}

func (w *world) act(a action) {
	switch a.kind {
	case actSpawn:
		if w.outside {
			w.fail("spawn after a stop from outside")
		}
		if w.tailGone {
			w.fail("spawn after vigil let go of the stderr pipe")
		}
		w.spawns++
		w.nextPid++
		if w.rng.IntN(10) == 0 {
			w.m.spawnFailed(fail(127, "not found"), w.now)
			return
		}
		w.child = w.nextPid
		w.ranSince, w.ready = 0, false
		w.m.spawned(w.child, w.rng.IntN(3) == 0, w.now)
	case actKill:
		ok := a.pid != 0 && (a.pid == w.m.child || a.pid == -w.m.child || (w.m.hookPid != 0 && a.pid == -w.m.hookPid))
		if !ok {
			w.fail("kill names pid %d (child %d, hook %d)", a.pid, w.m.child, w.m.hookPid)
		}
		if (a.pid == w.m.child || a.pid == -w.m.child) && (a.sig == unix.SIGTSTP || a.sig == unix.SIGCONT) {
			w.gotJobs = append(w.gotJobs, a.sig)
		}
	case actResume:
		w.gotJobs = append(w.gotJobs, unix.SIGCONT)
	case actStopSelf:
		if w.isInit {
			w.fail("vigil stopped itself as PID 1")
		}
		w.stopped = true
	case actListHooks:
		w.m.hooksListed(w.rng.IntN(3), w.now)
	case actHook:
		if w.rng.IntN(5) == 0 {
			w.m.hookFailed(w.now)
			return
		}
		w.nextPid++
		w.hook = w.nextPid
		w.m.hookStarted(w.hook, w.now)
	case actFlush:
		if w.rng.IntN(2) == 0 {
			w.m.flushed()
		}
	case actLeftovers:
		if w.rng.IntN(4) == 0 {
			w.m.leftoversUnreachable(w.now)
		}
	case actAwaitTail:
		if w.rng.IntN(2) == 0 {
			w.m.tailCaughtUp()
		}
	case actCloseTail:
		w.tailGone = true
	case actFinishTail:
		w.tailGone = w.tailGone || a.shut
	case actTombstone, actEnded, actNote, actRelay:
		if a.kind == actNote && a.why == whyWatchdog && w.healthy {
			w.fail("a child that pinged within its interval of run time was ended as hung (ran %s since its ping)", w.ranSince)
		}
		if a.kind == actNote && a.why == whyTimeout && runDeadlines[a.n].kept != nil && w.ready {
			w.fail("a child that said READY=1 was stopped as not ready in time")
		}
	default:
		w.fail("unknown action %d", a.kind)
	}
}

// wake is one wake-up of the loop after d of time in which vigil ran (or,
// frozen, did not).
func (w *world) wake(d time.Duration, frozen bool) {
	due := w.m.next()
	if !frozen && !due.IsZero() && w.now.Add(d).After(due) {
		// A loop that runs wakes at its deadline, not after it.
		d = max(due.Sub(w.now), 0)
	}
	w.now = w.now.Add(d)
	if !frozen {
		w.ranSince += d
	}
	w.m.woke(w.now, due)
}

// signals hands a burst to the machine as the loop does: through the
// intake's queue, in the order Take gives.
func (w *world) signals(burst ...unix.Signal) {
	var q intake.Queue
	for _, sig := range burst {
		q.Put(sig)
		// The order they came in; nothing in a burst changes the phase
		// while the child runs.
		if w.m.phase == phaseRunning && w.m.child != 0 && (sig == unix.SIGTSTP || sig == unix.SIGCONT) {
			w.sentJobs = append(w.sentJobs, sig)
		}
	}
	var p intake.Pending
	q.Take(&p)
	for sig := range p.Signals() {
		_, kept := w.m.cfg.Rewrite.Apply(sig)
		if kept && w.m.isStop(sig) {
			w.outside = true
		}
		w.m.signal(sig, w.now)
	}
	w.note("signals %v", burst)
	w.perform()
}

func (w *world) reap(exits []reaper.Exit, alive bool) {
	w.m.terminal(w.m.jobControl || w.rng.IntN(2) == 0)
	for _, e := range exits {
		if e.Pid == w.child && w.m.ttyFg && (e.Signal == unix.SIGINT || e.Signal == unix.SIGQUIT) {
			w.outside = true
		}
	}
	w.note("reaped %v alive %v", exits, alive)
	if w.rng.IntN(4) == 0 {
		// The memory cgroup counted an OOM kill before this reap, as the
		// loop reads it.
		w.note("oom counter rose")
		if !w.m.oomKnown {
			w.m.oomCounted(10, w.now) // the base, read at start
		}
		w.m.oomCounted(w.m.oomTotal+1, w.now)
		w.perform()
	}
	w.m.reaped(exits, alive, w.now)
	w.perform()
}

var stormSignals = []unix.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGUSR1, unix.SIGTSTP, unix.SIGCONT,
	unix.SIGTSTP, unix.SIGCONT, unix.SIGQUIT}

var deaths = []reaper.Exit{{Code: 0}, {Code: 1}, {Signal: unix.SIGTERM}, {Signal: unix.SIGKILL}, {Signal: unix.SIGINT},
	{Signal: unix.SIGQUIT}, {Signal: unix.SIGSEGV}}

// step is one random event.
func (w *world) step() {
	switch n := w.rng.IntN(100); {
	case n < 25: // a burst of signals, in any phase
		burst := make([]unix.Signal, 1+w.rng.IntN(4))
		for i := range burst {
			burst[i] = stormSignals[w.rng.IntN(len(stormSignals))]
		}
		w.signals(burst...)
	case n < 35: // the child dies
		if w.child != 0 && w.m.child == w.child && w.m.rec == nil {
			e := deaths[w.rng.IntN(len(deaths))]
			e.Pid = w.child
			w.child = 0
			w.reap([]reaper.Exit{e}, w.rng.IntN(2) == 0)
		}
	case n < 40: // the hook ends, or leftovers do
		if w.hook != 0 {
			h := w.hook
			w.hook = 0
			w.reap([]reaper.Exit{{Pid: h}}, w.child != 0)
		} else {
			w.reap(nil, w.child != 0)
		}
	case n < 45: // --stop-on
		w.outside = true
		w.note("stop-on fired")
		w.m.stopOnFired(w.now)
		w.perform()
	case n < 47: // the context ends
		if _, kept := w.m.cfg.Rewrite.Apply(w.m.cfg.StopSignals[0]); kept {
			w.outside = true
		}
		w.note("cancel")
		w.m.cancel(w.now)
		w.perform()
	case n < 52: // a freeze (docker pause): neither vigil nor the child runs
		w.note("frozen")
		w.wake(time.Duration(1+w.rng.IntN(120))*time.Second, true)
		w.thawed = true
		w.tick()
	case n < 55: // the child's stop report (Ctrl-Z to its group)
		if w.child != 0 && w.m.child == w.child && w.m.rec == nil {
			w.reap([]reaper.Exit{{Pid: w.child, Signal: unix.SIGTSTP, Stopped: true}}, true)
		}
	default: // time passes; a healthy child pings when half its interval ran
		d := time.Duration(1+w.rng.IntN(1500)) * time.Millisecond
		if w.m.phase == phaseRunning && w.m.watchdog > 0 && w.healthy {
			d = min(d, w.m.watchdog/2-w.ranSince)
		}
		w.wake(max(d, time.Millisecond), false)
		w.tick()
	}
	if w.stopped {
		// vigil stopped itself with the job: a while later fg continues it.
		w.stopped = false
		w.note("stopped, then fg")
		w.wake(time.Duration(1+w.rng.IntN(60))*time.Second, true)
		w.signals(unix.SIGCONT)
		w.tick()
	}
	w.ping()
}

// tick is the loop's tick and what it performs, and the check that a
// deadline next sleeps towards fires: at the same instant, a few ticks
// (one may arm the next phase's deadline for now) leave nothing due, or
// the loop would wake for ever at a deadline no tick takes.
func (w *world) tick() {
	for range 4 {
		w.m.tick(w.now)
		w.perform()
		if n := w.m.next(); n.IsZero() || n.After(w.now) {
			return
		}
	}
	w.fail("deadline %s is due and no tick takes it", w.m.next().Sub(t0))
}

// ping is the healthy child: it pings when half its interval of run time
// has passed, and at once after a freeze (its wall-clock timer expired).
func (w *world) ping() {
	if w.healthy && !w.ready && w.child != 0 && w.m.child == w.child && w.m.phase == phaseRunning {
		w.ready = true
		w.note("READY=1")
		w.m.notified(readiness{ready: true}, w.now)
		w.perform()
	}
	if !w.healthy || w.child == 0 || w.m.child != w.child || w.m.phase != phaseRunning || w.m.watchdog == 0 {
		return
	}
	if w.ranSince >= w.m.watchdog/2 || w.thawed || w.rng.IntN(3) == 0 {
		w.thawed = false
		w.ranSince = 0
		w.note("ping")
		w.m.notified(readiness{pings: 1}, w.now)
		w.perform()
	}
}

// checkOrder: the job-control signals the child got are those handed to
// the machine while it ran, in the same order.
func (w *world) checkOrder() {
	if !slices.Equal(w.sentJobs, w.gotJobs) {
		w.fail("job-control signals in %v, to the child %v", names(w.sentJobs), names(w.gotJobs))
	}
}

func names(sigs []unix.Signal) []string {
	out := make([]string, len(sigs))
	for i, s := range sigs {
		out[i] = signals.Name(s)
	}
	return out
}

func randomRules(rng *rand.Rand) Config {
	r := defaults()
	r.Restart = RestartPolicy(rng.IntN(3))
	r.RestartMax = rng.IntN(4)
	r.RestartDelay, r.RestartDelayMax = time.Second, 4*time.Second
	r.Drain = time.Duration(rng.IntN(2)) * 2 * time.Second
	r.Timeout = time.Duration(rng.IntN(2)) * 3 * time.Second
	r.Watchdog, r.WatchdogSignal = time.Duration(rng.IntN(2))*2*time.Second, unix.SIGABRT
	r.GraceSet = rng.IntN(2) == 0
	r.WaitAll = rng.IntN(4) == 0
	if rng.IntN(3) == 0 {
		r.CaptureTail = 1024
	}
	if rng.IntN(5) == 0 {
		r.WaitFor = someTarget
	}
	r.NoCleanup = rng.IntN(5) == 0
	if r.RestartMax%2 == 1 {
		// Taken from a draw already made, so that the seeds' histories
		// stay what they were.
		r.ReadyTimeout = 2500 * time.Millisecond
	}
	if rng.IntN(6) == 0 {
		r.Rewrite = signals.Rewrite{unix.SIGTERM: 0}
	}
	return r
}

func TestMachineInvariantsOverRandomHistories(t *testing.T) {
	seeds := 3000
	if testing.Short() {
		seeds = 300
	}
	for seed := range uint64(seeds) {
		rng := rand.New(rand.NewPCG(seed, 19))
		r := randomRules(rng)
		isInit := seed%5 == 0 // apart from rng: the histories of the seeds stay as they were
		w := &world{t: t, rng: rng, m: newMachine(r, isInit), now: t0, nextPid: 100, isInit: isInit}
		w.healthy = rng.IntN(2) == 0
		w.log = []string{fmt.Sprintf("seed %d, config %+v, healthy %v, init %v", seed, r, w.healthy, isInit)}
		w.m.begin(w.now)
		w.perform()
		if len(r.WaitFor) > 0 && w.rng.IntN(2) == 0 {
			w.m.depsReady()
			w.perform()
		}
		for range 40 + rng.IntN(60) {
			if w.m.phase == phaseDone {
				break
			}
			w.step()
			w.checkOrder()
		}
		// Liveness: with the child dead, every history reaches done.
		w.healthy = false
		for i := 0; w.m.phase != phaseDone; i++ {
			if i > 500 {
				w.fail("not done after 500 steps of ending")
			}
			if w.m.phase == phaseWaiting {
				w.m.stopOnFired(w.now)
				w.outside = true
			}
			if w.child != 0 && w.m.child == w.child && w.m.rec == nil {
				c := w.child
				w.child = 0
				w.reap([]reaper.Exit{{Pid: c, Code: 3}}, false)
			}
			if w.hook != 0 {
				h := w.hook
				w.hook = 0
				w.reap([]reaper.Exit{{Pid: h}}, false)
			}
			if w.m.phase == phaseBackoff {
				w.outside = true
				w.m.stopOnFired(w.now)
			}
			w.m.tailDone()
			w.m.flushed()
			w.perform()
			w.wake(time.Second, false)
			w.tick()
		}
		w.checkOrder()
		if w.m.rec == nil {
			w.fail("done without a record")
		}
	}
}
