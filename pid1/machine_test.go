package pid1

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vigil/reaper"
	"vigil/signals"
)

// These tests drive the machine with plain events and read back what it
// decided: no processes, no root, no clock but the one they pass in.

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

const child = 100

// someTarget is a --wait-for target the machine waits on; the loop's
// watchers would say when it holds, the tests say it themselves.
var someTarget = []Target{{Kind: "file", Path: "/run/ready"}}

// defaults is the Config a command line with no flags gives the machine.
func defaults() Config { return DefaultConfig().withDefaults() }

// show renders actions compactly: "kill 100 SIGTERM", "spawn", ...
func show(acts []action) string {
	var out []string
	for _, a := range acts {
		switch a.kind {
		case actSpawn:
			out = append(out, "spawn")
		case actKill:
			out = append(out, fmt.Sprintf("kill %d %s", a.pid, signals.Name(a.sig)))
		case actLeftovers:
			out = append(out, "leftovers "+signals.Name(a.sig))
		case actStopSelf:
			out = append(out, "stop self")
		case actResume:
			out = append(out, "resume")
		case actTombstone:
			out = append(out, "tombstone")
		case actEnded:
			out = append(out, "ended")
		case actListHooks:
			out = append(out, "list hooks")
		case actHook:
			out = append(out, fmt.Sprintf("hook %d", a.n))
		case actFinishTail:
			out = append(out, "finish tail")
		case actCloseTail:
			out = append(out, "close tail")
		case actAwaitTail:
			out = append(out, "await tail")
		case actFlush:
			out = append(out, "flush")
		case actNote:
			out = append(out, "note "+a.why.String())
		case actRelay:
			out = append(out, "relay "+a.msg)
		default:
			out = append(out, fmt.Sprintf("unknown action %d", a.kind))
		}
	}
	return strings.Join(out, "; ")
}

// expect checks the actions decided since the last call.
func expect(t *testing.T, m *machine, want string) {
	t.Helper()
	if got := show(m.take()); got != want {
		t.Fatalf("actions:\n got  %q\n want %q", got, want)
	}
}

// running returns a machine whose child runs as pid 100 since t0.
func running(t *testing.T, r Config) *machine {
	t.Helper()
	m := newMachine(r, false)
	m.begin(t0)
	expect(t, m, "spawn")
	m.spawned(child, false, t0)
	want := "tombstone"
	if r.CaptureTail > 0 && r.Restart == RestartNo {
		want = "close tail; tombstone" // see TestTheTailPipeIsLetGoAtTheSpawnWhenNoRunFollows
	}
	expect(t, m, want)
	return m
}

func exited(pid, code int) []reaper.Exit { return []reaper.Exit{{Pid: pid, Code: code}} }

func killedBy(pid int, sig unix.Signal) []reaper.Exit {
	return []reaper.Exit{{Pid: pid, Signal: sig}}
}

// oomKill tells m that the memory cgroup's OOM-kill counter rose by one,
// as the loop does when it reads it, and drops the tombstone that says so.
func oomKill(m *machine, now time.Time) {
	if !m.oomKnown {
		m.oomCounted(10, now) // the base, read at start
	}
	m.oomCounted(m.oomTotal+1, now)
	m.take()
}

// ends reaps exits at now, as the main child's end, and walks the machine
// through to done: its record.
func ends(t *testing.T, m *machine, exits []reaper.Exit, now time.Time) *record {
	t.Helper()
	m.reaped(exits, false, now)
	m.take()
	return finish(t, m)
}

// finish walks a machine whose child has ended through to done with no
// leftovers, no tail and no hooks, and returns its record.
func finish(t *testing.T, m *machine) *record {
	t.Helper()
	m.hooksListed(0, m.rec.ended)
	expect(t, m, "flush")
	m.flushed()
	if m.phase != phaseDone {
		t.Fatalf("phase %s after the flush, want done", m.phase)
	}
	return m.rec
}

func TestChildExitIsRecordedAndHooked(t *testing.T) {
	m := running(t, defaults())
	m.reaped(exited(child, 3), false, at(time.Second))
	expect(t, m, "tombstone; ended; list hooks")
	r := finish(t, m)
	if r.class != Failure || r.status != 3 || r.ended.Sub(r.started) != time.Second {
		t.Errorf("record %+v, want failure, status 3, a second long", r)
	}
}

func TestOrphanExitsDoNotEndTheRun(t *testing.T) {
	m := running(t, defaults())
	m.reaped(append(exited(7, 1), exited(8, 0)...), true, t0)
	expect(t, m, "")
	if m.phase != phaseRunning || m.rec != nil {
		t.Fatalf("phase %s, record %v after orphans ended", m.phase, m.rec)
	}
}

func TestSignalsAreForwardedThroughTheRewriteTable(t *testing.T) {
	r := defaults()
	r.Rewrite = signals.Rewrite{unix.SIGHUP: unix.SIGUSR2, unix.SIGUSR1: 0}
	m := running(t, r)
	m.signal(unix.SIGWINCH, t0)
	m.signal(unix.SIGHUP, t0)
	m.signal(unix.SIGUSR1, t0) // dropped
	expect(t, m, "kill 100 SIGWINCH; kill 100 SIGUSR2")

	r.Group = true
	g := running(t, r)
	g.signal(unix.SIGWINCH, t0)
	expect(t, g, "kill -100 SIGWINCH")
}

func TestOutsideStopHasNoSIGKILLOfVigilsOwnByDefault(t *testing.T) {
	// docker stop -t 30 on an app that takes 15 s: the runtime owns the
	// deadline, vigil must not kill at its own 10 s.
	m := running(t, defaults())
	m.signal(unix.SIGTERM, t0)
	expect(t, m, "tombstone; kill 100 SIGTERM")
	if next := m.next(); !next.IsZero() {
		t.Fatalf("a deadline at %s after an outside stop; want none", next.Sub(t0))
	}
	m.tick(at(time.Hour))
	expect(t, m, "")
	m.reaped(exited(child, 0), false, at(15*time.Second))
	expect(t, m, "tombstone; ended; list hooks")
	if r := finish(t, m); r.class != Success || r.status != 0 {
		t.Errorf("class %s status %d, want success 0", r.class, r.status)
	}
}

func TestExplicitGraceEndsAnOutsideStopWithSIGKILL(t *testing.T) {
	r := defaults()
	r.GraceSet, r.Grace = true, 5*time.Second
	m := running(t, r)
	m.signal(unix.SIGTERM, t0)
	expect(t, m, "tombstone; kill 100 SIGTERM")
	if got := m.next(); !got.Equal(at(5 * time.Second)) {
		t.Fatalf("next deadline %s, want the grace's 5s", got.Sub(t0))
	}
	m.tick(at(5 * time.Second))
	expect(t, m, "note grace over; kill -100 SIGKILL")
	// Another process of the cgroup was OOM-killed earlier: vigil's own
	// SIGKILL is still a kill, not an OOM.
	oomKill(m, at(5*time.Second))
	m.reaped(killedBy(child, unix.SIGKILL), false, at(5*time.Second))
	expect(t, m, "tombstone; note oom kills; ended; list hooks")
	if r := finish(t, m); r.class != Kill || r.status != 137 {
		t.Errorf("class %s status %d, want kill 137", r.class, r.status)
	}
}

func TestSIGKILLVigilDidNotSendWithOOMEvidenceIsOOM(t *testing.T) {
	m := running(t, defaults())
	oomKill(m, t0)
	m.reaped(killedBy(child, unix.SIGKILL), false, t0)
	m.take()
	if r := finish(t, m); r.class != OOM || r.oomKills != 1 {
		t.Errorf("class %s, %d OOM kills, want oom and 1", r.class, r.oomKills)
	}
}

// A worker vigil reaps is named as the victim; the main child, which
// exits later, keeps its own class, and the record counts the kill.
func TestAWorkersOOMKillIsNamedAndCountedAndTheChildKeepsItsClass(t *testing.T) {
	m := running(t, defaults())
	m.oomCounted(3, t0)
	expect(t, m, "")
	m.oomCounted(4, at(time.Second))
	expect(t, m, "tombstone") // the count is in the tombstone at once
	if m.oomRun != 1 || m.next().IsZero() {
		t.Fatalf("after the counter rose: %d kills this run, next deadline %v; want 1 and the victim's wait", m.oomRun, m.next())
	}
	m.reaped([]reaper.Exit{{Pid: 300, Signal: unix.SIGKILL, Comm: "worker"}}, true, at(time.Second))
	got := m.take()
	if len(got) != 1 || got[0].why != whyOOMVictim || got[0].pid != 300 || got[0].comm != "worker" || got[0].oom != 1 {
		t.Fatalf("actions %+v, want one note naming the victim 300 (worker), the run's first kill", got)
	}
	if !m.oomReportAt.IsZero() {
		t.Errorf("the victim was found, and still a report of a count is due at %v", m.oomReportAt)
	}
	m.reaped(exited(child, 5), false, at(2*time.Second))
	m.take()
	if r := finish(t, m); r.class != Failure || r.status != 5 || r.oomKills != 1 {
		t.Errorf("class %s status %d with %d OOM kills, want failure 5 with 1", r.class, r.status, r.oomKills)
	}
}

// A kill whose victim vigil does not reap (a shell's subprocess, reaped
// by the shell) is reported as a count after oomVictimWait; a SIGKILL the
// main child gets afterwards is then not an OOM.
func TestAnOOMKillVigilDoesNotReapIsReportedAsACount(t *testing.T) {
	m := running(t, defaults())
	oomKill(m, t0)
	oomKill(m, t0)
	if got := m.next(); !got.Equal(at(oomVictimWait)) {
		t.Fatalf("next deadline %v, want the victim's wait %v", got.Sub(t0), oomVictimWait)
	}
	m.tick(at(oomVictimWait))
	got := m.take()
	if len(got) != 1 || got[0].why != whyOOMKills || got[0].n != 2 {
		t.Fatalf("actions %+v, want one note counting 2 kills", got)
	}
	m.reaped(killedBy(child, unix.SIGKILL), false, at(time.Second))
	m.take()
	if r := finish(t, m); r.class != Kill || r.oomKills != 2 {
		t.Errorf("class %s with %d OOM kills, want kill (docker kill, say) with 2", r.class, r.oomKills)
	}
}

// The SIGKILL vigil sends its leftovers is never an OOM victim's, and a
// kill still pending when the child's end is recorded is reported before
// the hooks.
func TestLeftoversVigilKilledAreNotOOMVictims(t *testing.T) {
	r := defaults()
	r.CleanupGrace = time.Second
	m := running(t, r)
	m.reaped(exited(child, 0), true, t0)
	expect(t, m, "tombstone; leftovers SIGTERM")
	m.tick(at(time.Second))
	expect(t, m, "leftovers SIGKILL")
	oomKill(m, at(time.Second))
	m.reaped(killedBy(400, unix.SIGKILL), false, at(time.Second))
	got := m.take()
	if show(got) != "note oom kills; ended; list hooks" || got[0].n != 1 {
		t.Fatalf("actions %+v, want the pending kill counted (1), then the end", got)
	}
}

// The counter is the cgroup's, and vigil may be moved to another: a
// counter that goes down is a new base, not a kill.
func TestAnOOMCounterThatGoesDownIsANewBase(t *testing.T) {
	m := running(t, defaults())
	m.oomCounted(50, t0)
	m.oomCounted(2, t0)
	m.oomCounted(2, t0)
	if m.oomRun != 0 || m.oomPending != 0 {
		t.Errorf("%d kills counted, %d pending, want none", m.oomRun, m.oomPending)
	}
	expect(t, m, "")
}

func TestRepeatedStopSignalIsForwardedWithoutRestartingTheClock(t *testing.T) {
	r := defaults()
	r.GraceSet = true
	m := running(t, r)
	m.signal(unix.SIGTERM, t0)
	m.signal(unix.SIGINT, at(3*time.Second))
	expect(t, m, "tombstone; kill 100 SIGTERM; kill 100 SIGINT")
	if got := m.next(); !got.Equal(at(10 * time.Second)) {
		t.Errorf("deadline moved to %s, want 10s", got.Sub(t0))
	}
}

func TestStopSignalRewrittenToNoneStopsNothing(t *testing.T) {
	// dumb-init's -r 15:0: the user dropped TERM on purpose.
	r := defaults()
	r.Rewrite = signals.Rewrite{unix.SIGTERM: 0}
	r.GraceSet = true
	m := running(t, r)
	m.signal(unix.SIGTERM, t0)
	expect(t, m, "")
	if m.stop.active() || !m.next().IsZero() {
		t.Fatalf("a dropped TERM began a stop: %+v", m.stop)
	}
	w := newMachine(Config{StopSignals: r.StopSignals, Rewrite: r.Rewrite, WaitFor: someTarget}, false)
	w.begin(t0)
	w.take()
	w.signal(unix.SIGTERM, t0)
	if w.rec != nil {
		t.Fatalf("a dropped TERM ended the wait")
	}
}

func TestDrainDelaysTheStopAndAFailureDuringItIsAFailure(t *testing.T) {
	r := defaults()
	r.Drain = 5 * time.Second
	m := running(t, r)
	m.stopOnFired(t0)
	expect(t, m, "tombstone")
	if got := m.next(); !got.Equal(at(5 * time.Second)) {
		t.Fatalf("next %s, want the drain's end", got.Sub(t0))
	}
	m.reaped(exited(child, 1), false, at(time.Second))
	m.take()
	if r := finish(t, m); r.class != Failure || r.status != 1 {
		t.Errorf("class %s status %d: a child failing during the drain is a failure", r.class, r.status)
	}

	m = running(t, r)
	m.stopOnFired(t0)
	m.tick(at(5 * time.Second))
	expect(t, m, "tombstone; kill 100 SIGTERM")
	if r := ends(t, m, killedBy(child, unix.SIGTERM), at(6*time.Second)); r.class != Stopped || r.status != 0 {
		t.Errorf("class %s status %d, want stopped, exit 0", r.class, r.status)
	}
}

func TestTimeoutSendsItsSignalUnrewrittenThenKills(t *testing.T) {
	r := defaults()
	r.Timeout, r.TimeoutSignal = time.Minute, unix.SIGUSR1
	r.Rewrite = signals.Rewrite{unix.SIGUSR1: unix.SIGHUP}
	m := running(t, r)
	m.tick(at(time.Minute))
	expect(t, m, "note timeout; tombstone; kill 100 SIGUSR1")
	m.tick(at(time.Minute + 10*time.Second))
	expect(t, m, "note grace over; kill -100 SIGKILL")
	m.reaped(killedBy(child, unix.SIGKILL), false, at(71*time.Second))
	m.take()
	if r := finish(t, m); r.class != Timeout || r.status != 137 {
		t.Errorf("class %s status %d, want timeout 137", r.class, r.status)
	}
}

func TestTheFirstStopWins(t *testing.T) {
	r := defaults()
	r.Timeout = 10 * time.Second
	// A TERM from outside a second before the timeout: not a timeout.
	m := running(t, r)
	m.signal(unix.SIGTERM, at(9*time.Second))
	m.tick(at(10 * time.Second))
	expect(t, m, "tombstone; kill 100 SIGTERM")
	m.reaped(killedBy(child, unix.SIGTERM), false, at(11*time.Second))
	m.take()
	if r := finish(t, m); r.class != Signal {
		t.Errorf("class %s, want signal", r.class)
	}
	// The timeout first: a later TERM is forwarded, the class stays.
	m = running(t, r)
	m.tick(at(10 * time.Second))
	m.signal(unix.SIGTERM, at(11*time.Second))
	expect(t, m, "note timeout; tombstone; kill 100 SIGTERM; kill 100 SIGTERM")
	m.stopOnFired(at(12 * time.Second))
	expect(t, m, "")
	m.reaped(killedBy(child, unix.SIGTERM), false, at(12*time.Second))
	m.take()
	if r := finish(t, m); r.class != Timeout {
		t.Errorf("class %s, want timeout", r.class)
	}
}

func TestAChildThatDoesNotDieOfSIGKILLDoesNotHangTheShutdown(t *testing.T) {
	r := defaults()
	r.Timeout = time.Second
	m := running(t, r)
	m.tick(at(time.Second))
	m.tick(at(11 * time.Second))
	m.take()
	m.tick(at(11*time.Second + killWait))
	// It is still vigil's child, so the cleanup has a go at it too.
	expect(t, m, "note child stuck; tombstone; leftovers SIGTERM")
	m.reaped(nil, false, at(12*time.Second+killWait))
	expect(t, m, "ended; list hooks")
	if r := finish(t, m); r.exit.Signal != unix.SIGKILL || r.class != Timeout {
		t.Errorf("record %+v, want a timeout ending in SIGKILL", r)
	}
}

func TestStopBeforeTheChildExistsEndsWith128PlusN(t *testing.T) {
	r := defaults()
	r.WaitFor = someTarget
	m := newMachine(r, false)
	m.signal(unix.SIGTERM, t0) // caught during start-up, before begin
	m.begin(t0)
	expect(t, m, "tombstone; ended; list hooks")
	r0 := finish(t, m)
	var e *Error
	if r0.status != 143 || !errors.As(m.err, &e) || e.Code != 143 || r0.class != Signal {
		t.Errorf("status %d class %s err %v, want 143, signal, an *Error with code 143", r0.status, r0.class, m.err)
	}
	if strings.Contains(show(m.take()), "spawn") {
		t.Error("the child was started after a stop signal")
	}
}

func TestWaitingThenReadyThenTimeout(t *testing.T) {
	r := defaults()
	r.WaitFor, r.WaitTimeout = someTarget, 3*time.Second
	m := newMachine(r, false)
	m.begin(t0)
	expect(t, m, "tombstone")
	m.signal(unix.SIGUSR1, t0) // nothing to forward to yet
	expect(t, m, "")
	m.depsReady()
	expect(t, m, "spawn")

	m = newMachine(r, false)
	m.targetsPending("file:/x")
	m.begin(t0)
	m.take()
	m.tick(at(3 * time.Second))
	expect(t, m, "tombstone; ended; list hooks")
	if r := finish(t, m); r.status != ExitWaitTimeout || !strings.Contains(m.err.Error(), "file:/x") {
		t.Errorf("status %d err %v, want 124 naming the target", r.status, m.err)
	}
}

func TestExecFailureIsRecordedLikeAnyEnd(t *testing.T) {
	m := newMachine(defaults(), false)
	m.begin(t0)
	m.take()
	m.spawnFailed(fail(ExitNotFound, "nope: not found"), t0)
	expect(t, m, "tombstone; ended; list hooks")
	if r := finish(t, m); r.status != 127 || r.class != Failure || r.err != "nope: not found" || r.exit.Pid != 0 {
		t.Errorf("record %+v, want status 127, class failure, the error, no pid", r)
	}
}

func TestLeftoversGetTERMThenABoundThenKILL(t *testing.T) {
	m := running(t, defaults())
	m.reaped(exited(child, 0), true, t0)
	expect(t, m, "tombstone; leftovers SIGTERM")
	if got := m.next(); !got.Equal(at(2 * time.Second)) {
		t.Fatalf("leftovers get until %s, want the 2s cleanup grace", got.Sub(t0))
	}
	m.tick(at(2 * time.Second))
	expect(t, m, "leftovers SIGKILL")
	m.reaped(exited(9, 137), false, at(2*time.Second))
	expect(t, m, "ended; list hooks")

	// They do not outlast what is left of an explicit grace.
	r := defaults()
	r.GraceSet, r.Grace = true, 3*time.Second
	m = running(t, r)
	m.signal(unix.SIGTERM, t0)
	m.reaped(exited(child, 0), true, at(2500*time.Millisecond))
	m.take()
	if got := m.next(); !got.Equal(at(3 * time.Second)) {
		t.Errorf("leftovers get until %s, want the grace's end at 3s", got.Sub(t0))
	}

	// Survivors of SIGKILL are given up on after killWait.
	m = running(t, defaults())
	m.reaped(exited(child, 0), true, t0)
	m.tick(at(2 * time.Second))
	m.take()
	m.tick(at(2*time.Second + killWait))
	expect(t, m, "note leftovers survived; ended; list hooks")
}

func TestNoCleanupLeavesLeftoversAndDoesNotWaitForTheTail(t *testing.T) {
	r := defaults()
	r.NoCleanup, r.CaptureTail = true, 1024
	m := running(t, r)
	m.reaped(exited(child, 0), true, t0)
	expect(t, m, "tombstone; finish tail; ended; list hooks")
}

func TestTailIsAwaitedBoundedly(t *testing.T) {
	r := defaults()
	r.CaptureTail = 1024
	m := running(t, r)
	m.reaped(exited(child, 0), false, t0)
	expect(t, m, "tombstone; close tail")
	m.tailDone()
	expect(t, m, "finish tail; ended; list hooks")

	m = running(t, r)
	m.reaped(exited(child, 0), false, t0)
	m.take()
	m.tick(at(tailWait))
	expect(t, m, "finish tail; ended; list hooks")

	// Between runs the pipe stays the next run's: no end of file and no
	// close, but the run's tail is what the pipe held when it ended
	// (issue 19: a lagging copier lost the last lines), within the bound.
	rr := restarting(RestartAlways, 0)
	rr.CaptureTail = 1024
	m = running(t, rr)
	m.reaped(exited(child, 1), false, t0)
	expect(t, m, "tombstone; await tail")
	m.tailCaughtUp()
	expect(t, m, "finish tail; ended; list hooks")
	m = running(t, rr)
	m.reaped(exited(child, 1), false, t0)
	m.take()
	m.tick(at(tailWait))
	expect(t, m, "finish tail; ended; list hooks")

	// End of file before the child's end was even seen.
	m = running(t, r)
	m.tailDone()
	m.reaped(exited(child, 0), false, t0)
	expect(t, m, "tombstone; finish tail; ended; list hooks")
}

func TestHooksRunOneAtATimeBoundedThenTheirLeftoversGo(t *testing.T) {
	m := running(t, defaults())
	m.reaped(exited(child, 0), false, t0)
	m.take()
	m.hooksListed(3, t0)
	expect(t, m, "hook 0")
	m.hookStarted(200, t0)
	m.signal(unix.SIGTERM, t0) // hooks are bounded; stop signals wait
	expect(t, m, "")
	m.reaped(exited(200, 1), true, at(time.Second))
	expect(t, m, "hook 1")
	m.hookFailed(at(time.Second))
	expect(t, m, "hook 2")
	m.hookStarted(201, at(time.Second))
	m.tick(at(11 * time.Second))
	expect(t, m, "note hook timeout; kill -201 SIGKILL")
	m.tick(at(11*time.Second + killWait))
	expect(t, m, "note hook stuck; leftovers SIGTERM")
	m.reaped(nil, false, at(17*time.Second))
	expect(t, m, "flush")
	m.tick(at(17*time.Second + flushWait))
	if m.phase != phaseDone {
		t.Errorf("phase %s after the flush bound, want done", m.phase)
	}
}

func TestRemapExitAndStoppedStatus(t *testing.T) {
	r := defaults()
	r.RemapExit = map[int]bool{143: true}
	m := running(t, r)
	m.signal(unix.SIGTERM, t0)
	m.reaped(killedBy(child, unix.SIGTERM), false, t0)
	m.take()
	if r := finish(t, m); r.status != 0 || r.exit.Status() != 143 {
		t.Errorf("status %d (child %d), want 0 for a remapped 143", r.status, r.exit.Status())
	}
}

func TestJobControlFollowsTheChildWithoutStaleStops(t *testing.T) {
	m := newMachine(defaults(), false)
	m.begin(t0)
	m.take()
	m.spawned(child, true, t0)
	m.take()
	// Ctrl-Z reaches the child's group; vigil follows.
	stoppedReport := []reaper.Exit{{Pid: child, Signal: unix.SIGTSTP, Stopped: true}}
	m.reaped(stoppedReport, true, t0)
	expect(t, m, "stop self")
	m.signal(unix.SIGCONT, t0)
	expect(t, m, "resume")
	// kill -TSTP <vigil>: the group first, then vigil. When vigil runs
	// again, the child's stop report of that same stop is stale.
	m.signal(unix.SIGTSTP, t0)
	expect(t, m, "kill -100 SIGTSTP; stop self")
	m.reaped(stoppedReport, true, t0)
	expect(t, m, "")
	m.signal(unix.SIGCONT, t0)
	expect(t, m, "resume")
	// A new stop after that is followed again.
	m.reaped(stoppedReport, true, t0)
	expect(t, m, "stop self")

	// Without job control, TSTP is forwarded like any signal.
	n := running(t, defaults())
	n.signal(unix.SIGTSTP, t0)
	expect(t, n, "kill 100 SIGTSTP")
}

func TestCancelIsAStop(t *testing.T) {
	m := running(t, defaults())
	m.cancel(t0)
	expect(t, m, "tombstone; kill 100 SIGTERM")
	w := newMachine(Config{StopSignals: []unix.Signal{unix.SIGTERM}, WaitFor: someTarget}, false)
	w.begin(t0)
	w.take()
	w.cancel(t0)
	if w.rec == nil || w.rec.status != 143 {
		t.Errorf("cancel while waiting: record %+v, want status 143", w.rec)
	}
}

func TestSignalsAfterTheEndAreNotForwarded(t *testing.T) {
	m := running(t, defaults())
	m.reaped(exited(child, 0), false, t0)
	m.take()
	m.signal(unix.SIGUSR1, t0)
	m.signal(unix.SIGTERM, t0)
	expect(t, m, "")
}

func TestPhaseNames(t *testing.T) {
	for p := phaseWaiting; p <= phaseDone; p++ {
		if p.String() == "" {
			t.Errorf("phase %d has no name", p)
		}
	}
}

func restarting(policy RestartPolicy, maxRestarts int) Config {
	r := defaults()
	r.Restart, r.RestartMax = policy, maxRestarts
	r.RestartDelay, r.RestartDelayMax = time.Second, 8*time.Second
	return r
}

// endRun ends the current run with exits, runs no hooks, and returns the
// actions that follow the hooks.
func endRun(t *testing.T, m *machine, exits []reaper.Exit, now time.Time) string {
	t.Helper()
	m.reaped(exits, true, now)
	m.take()
	m.hooksListed(0, now)
	return show(m.take())
}

func TestOnFailureRestartsUpToTheMaximumThenExitsWithTheLastStatus(t *testing.T) {
	m := running(t, restarting(RestartOnFailure, 2))
	now := t0
	for run := 0; run < 2; run++ {
		// Detached workers of the run live on: no cleanup between runs.
		if got := endRun(t, m, exited(m.child, 3), now); got != "tombstone" {
			t.Fatalf("run %d: after the hooks %q, want only the tombstone (no cleanup)", run, got)
		}
		if m.phase != phaseBackoff || m.rec.restarts != run {
			t.Fatalf("run %d: phase %s, record restarts %d", run, m.phase, m.rec.restarts)
		}
		now = m.next()
		m.tick(now)
		expect(t, m, "spawn")
		m.spawned(child+run+1, false, now)
		m.take()
	}
	// The third run fails too: two restarts were all there was, and the
	// one cleanup comes now.
	m.reaped(exited(m.child, 4), true, now)
	expect(t, m, "tombstone; leftovers SIGTERM")
	m.reaped(nil, false, now)
	expect(t, m, "ended; list hooks")
	finish(t, m)
	if m.phase != phaseDone || m.rec.status != 4 || m.rec.restarts != 2 {
		t.Errorf("phase %s, status %d, restarts %d; want done, 4, 2", m.phase, m.rec.status, m.rec.restarts)
	}
}

func TestOnFailureEndsAfterASuccessAndAlwaysDoesNot(t *testing.T) {
	m := running(t, restarting(RestartOnFailure, 0))
	endRun(t, m, exited(child, 0), t0)
	if m.phase == phaseBackoff {
		t.Error("on-failure restarted after a success")
	}
	a := running(t, restarting(RestartAlways, 0))
	endRun(t, a, exited(child, 0), t0)
	if a.phase != phaseBackoff {
		t.Errorf("always: phase %s after a success, want backoff", a.phase)
	}
}

func TestBackoffDoublesAndResetsAfterALongRun(t *testing.T) {
	m := newMachine(restarting(RestartAlways, 0), false)
	var got []time.Duration
	for _, ran := range []time.Duration{0, 0, 0, 0, 0, 9 * time.Second, 0} {
		got = append(got, m.backoff(ran))
	}
	want := []time.Duration{1, 2, 4, 8, 8, 1, 2}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("delays %v, want %v seconds", got, want)
		}
	}
}

func TestNoRestartAfterAStopFromOutsideOrDuringTheBackoff(t *testing.T) {
	m := running(t, restarting(RestartAlways, 0))
	m.signal(unix.SIGTERM, t0)
	m.take()
	m.reaped(killedBy(child, unix.SIGTERM), true, t0)
	if got := show(m.take()); got != "tombstone; leftovers SIGTERM" || m.again {
		t.Errorf("after a stop signal: %q, again %v; want the cleanup, no restart", got, m.again)
	}
	m = running(t, restarting(RestartAlways, 0))
	m.stopOnFired(t0)
	m.take()
	endRun(t, m, killedBy(child, unix.SIGTERM), t0)
	if m.again {
		t.Error("restarted after a --stop-on stop")
	}
	// A --timeout is a failure of that run: restarted.
	r := restarting(RestartOnFailure, 0)
	r.Timeout = time.Second
	m = running(t, r)
	m.tick(at(time.Second))
	m.take()
	endRun(t, m, killedBy(child, unix.SIGTERM), at(2*time.Second))
	if !m.again || m.phase != phaseBackoff {
		t.Fatalf("a timed-out run was not restarted: phase %s", m.phase)
	}
	// A stop signal during the backoff ends vigil at once.
	m.signal(unix.SIGTERM, at(2*time.Second))
	expect(t, m, "tombstone; leftovers SIGTERM")
	m.reaped(nil, false, at(2*time.Second))
	expect(t, m, "flush")
	if m.rec.class != Timeout || m.again {
		t.Errorf("class %s again %v after a stop in the backoff", m.rec.class, m.again)
	}
}

func TestWaitAllWaitsForEveryDescendant(t *testing.T) {
	r := defaults()
	r.WaitAll = true
	m := running(t, r)
	m.reaped(exited(child, 5), true, t0)
	expect(t, m, "")
	if m.phase != phaseWaitAll || !m.next().IsZero() {
		t.Fatalf("phase %s next %v, want wait-all with no deadline", m.phase, m.next())
	}
	m.signal(unix.SIGHUP, t0)
	expect(t, m, "leftovers SIGHUP")
	m.signal(unix.SIGTERM, t0)
	expect(t, m, "leftovers SIGTERM")
	m.tick(at(10 * time.Second))
	expect(t, m, "note grace over; leftovers SIGKILL")
	m.reaped(exited(300, 137), false, at(10*time.Second))
	expect(t, m, "tombstone; ended; list hooks")
	if m.rec.status != 5 {
		t.Errorf("status %d, want the main child's 5", m.rec.status)
	}
}

func TestSignalsBeforeTheChildExistsReachItOnceItDoes(t *testing.T) {
	r := defaults()
	r.WaitFor = someTarget
	m := newMachine(r, false)
	m.signal(unix.SIGHUP, t0)
	m.signal(unix.SIGTSTP, t0) // no job to stop yet
	m.begin(t0)
	m.signal(unix.SIGUSR1, t0)
	expect(t, m, "tombstone")
	m.depsReady()
	expect(t, m, "spawn")
	m.spawned(child, false, t0)
	expect(t, m, "tombstone; kill 100 SIGHUP; kill 100 SIGUSR1")
	w := newMachine(r, false)
	for range 2 * maxEarly {
		w.signal(unix.SIGWINCH, t0)
	}
	if len(w.early) != maxEarly {
		t.Errorf("kept %d early signals, want at most %d", len(w.early), maxEarly)
	}
}

// The reviewer's scenarios: each stranded or misled the machine before.

func TestWatcherNewsBeforeBeginStartsTheCommandOnce(t *testing.T) {
	m := newMachine(defaults(), false)
	m.depsReady()
	m.stopOnFired(t0)
	m.readyOnHeld(t0)
	m.notified(readiness{ready: true}, t0)
	expect(t, m, "")
	m.begin(t0)
	expect(t, m, "spawn")
	r := defaults()
	r.WaitFor, r.Timeout = someTarget, time.Second
	w := newMachine(r, false)
	w.depsReady()
	w.begin(t0)
	w.depsReady() // as the loop does after begin, from the watchers' state
	expect(t, w, "tombstone; spawn")
	w.spawned(child, false, t0)
	w.take()
	if w.phase != phaseRunning || w.next().IsZero() {
		t.Errorf("phase %s, next %v: the run is not running with its --timeout armed", w.phase, w.next())
	}
}

func TestAStopBetweenRunsIsNotFollowedByARestart(t *testing.T) {
	m := running(t, restarting(RestartAlways, 0))
	m.reaped(exited(child, 1), true, t0)
	m.take()
	m.hooksListed(1, t0)
	m.hookStarted(200, t0)
	m.take()
	m.signal(unix.SIGTERM, t0)
	expect(t, m, "tombstone")
	m.reaped(exited(200, 0), true, t0)
	// The hook ran to its end; then the one cleanup, no backoff.
	expect(t, m, "leftovers SIGTERM")
	if m.again || m.phase != phaseCleanup {
		t.Errorf("again %v, phase %s: want the end, not a restart", m.again, m.phase)
	}
	// --stop-on firing during the backoff ends it too.
	b := running(t, restarting(RestartAlways, 0))
	endRun(t, b, exited(child, 1), t0)
	b.stopOnFired(t0)
	if b.again || b.phase == phaseBackoff {
		t.Errorf("a --stop-on during the backoff: again %v, phase %s", b.again, b.phase)
	}
}

func TestNoRestartOfACommandThatWasNeverStarted(t *testing.T) {
	r := restarting(RestartOnFailure, 0)
	r.WaitFor, r.WaitTimeout = someTarget, time.Second
	m := newMachine(r, false)
	m.begin(t0)
	m.signal(unix.SIGTERM, t0)
	if m.again {
		t.Error("a stop while waiting is followed by a restart")
	}
	w := newMachine(r, false)
	w.begin(t0)
	w.tick(at(time.Second))
	if w.again {
		t.Error("a --wait-timeout is followed by a restart")
	}
	s := newMachine(r, false)
	s.begin(t0)
	s.take()
	s.stopOnFired(t0)
	expect(t, s, "tombstone; ended; list hooks")
	if s.again || s.rec.class != Stopped || s.rec.status != 0 {
		t.Errorf("--stop-on while waiting: again %v, class %s, status %d; want stopped, 0", s.again, s.rec.class, s.rec.status)
	}
}

func TestWaitAllKeepsAStopRewrittenToNone(t *testing.T) {
	r := defaults()
	r.WaitAll, r.Rewrite = true, signals.Rewrite{unix.SIGTERM: 0}
	m := running(t, r)
	m.reaped(exited(child, 0), true, t0)
	m.take()
	m.signal(unix.SIGTERM, t0)
	m.tick(at(time.Minute))
	expect(t, m, "")
}

func TestTheChildsWatchdogIntervalLastsOneRun(t *testing.T) {
	r := restarting(RestartAlways, 0)
	r.Watchdog = time.Second
	m := running(t, r)
	off := time.Duration(0)
	m.notified(readiness{interval: &off}, t0)
	if !m.next().IsZero() {
		t.Fatal("WATCHDOG_USEC=0 left the watchdog on")
	}
	endRun(t, m, exited(child, 0), t0)
	m.tick(m.next())
	m.spawned(child+1, false, at(2*time.Second))
	if got := m.next(); !got.Equal(at(3 * time.Second)) {
		t.Errorf("the next run's watchdog at %v, want the configured 1s", got.Sub(t0))
	}
}

// Issue 19: a stop from outside in any phase of a run is the last word.
func TestAnOutsideStopInAnyPhaseIsNeverFollowedByARestart(t *testing.T) {
	// During a --timeout's grace: the timeout stop came first and keeps the
	// class, but the TERM from outside still means no new run.
	r := restarting(RestartOnFailure, 0)
	r.Timeout = time.Second
	m := running(t, r)
	m.tick(at(time.Second))
	expect(t, m, "note timeout; tombstone; kill 100 SIGTERM")
	m.signal(unix.SIGTERM, at(2*time.Second))
	expect(t, m, "kill 100 SIGTERM")
	endRun(t, m, killedBy(child, unix.SIGTERM), at(3*time.Second))
	if m.again || m.rec.class != Timeout {
		t.Errorf("TERM during the timeout's grace: again %v, class %s; want no restart, class timeout", m.again, m.rec.class)
	}

	// During the drain, with the child failing before the drain ends: a
	// failure, and no restart.
	r = restarting(RestartOnFailure, 0)
	r.Drain = 2 * time.Second
	m = running(t, r)
	m.signal(unix.SIGTERM, t0)
	expect(t, m, "tombstone")
	endRun(t, m, exited(child, 1), at(time.Second))
	if m.again || m.rec.class != Failure {
		t.Errorf("TERM during the drain, child failed: again %v, class %s; want no restart, failure", m.again, m.rec.class)
	}

	// A --stop-on during a watchdog's grace.
	r = restarting(RestartAlways, 0)
	r.Watchdog = time.Second
	m = running(t, r)
	m.tick(at(time.Second))
	m.take()
	m.stopOnFired(at(2 * time.Second))
	endRun(t, m, killedBy(child, unix.SIGABRT), at(3*time.Second))
	if m.again {
		t.Error("restarted after a --stop-on during the watchdog's grace")
	}
}

func TestCtrlCToTheChildsForegroundGroupIsAStop(t *testing.T) {
	for _, sig := range []unix.Signal{unix.SIGINT, unix.SIGQUIT} {
		m := running(t, restarting(RestartOnFailure, 0))
		m.terminal(true)
		endRun(t, m, killedBy(child, sig), t0)
		if m.again || m.rec.status != 128+int(sig) {
			t.Errorf("%s with the terminal's foreground: again %v, status %d; want no restart, %d",
				signals.Name(sig), m.again, m.rec.status, 128+int(sig))
		}
	}
	// Without the terminal (kill -INT <child> from elsewhere) it is a
	// death like any other, and a failure.
	m := running(t, restarting(RestartOnFailure, 0))
	m.terminal(false)
	endRun(t, m, killedBy(child, unix.SIGINT), t0)
	if !m.again {
		t.Error("a SIGINT from outside the terminal was taken for a Ctrl-C")
	}
	// Another death in the foreground is a failure still.
	m = running(t, restarting(RestartOnFailure, 0))
	m.terminal(true)
	endRun(t, m, killedBy(child, unix.SIGSEGV), t0)
	if !m.again {
		t.Error("a SIGSEGV in the foreground was not restarted")
	}
}

func TestStopSignalsDuringTheDrainAreForwardedInOrder(t *testing.T) {
	r := defaults()
	r.Drain = 2 * time.Second
	m := running(t, r)
	m.signal(unix.SIGHUP, t0)
	expect(t, m, "kill 100 SIGHUP")
	m.signal(unix.SIGTERM, t0)
	expect(t, m, "tombstone")
	m.signal(unix.SIGTERM, at(time.Second))
	expect(t, m, "kill 100 SIGTERM; kill 100 SIGTERM")
	if !m.next().IsZero() {
		t.Errorf("a deadline left after the drain ended: %v", m.next().Sub(t0))
	}
	m.tick(at(2 * time.Second))
	expect(t, m, "")
	m.reaped(killedBy(child, unix.SIGTERM), false, at(3*time.Second))
	m.take()
	if r := finish(t, m); r.status != 143 {
		t.Errorf("status %d, want 143", r.status)
	}
}

func TestAContInTheSameBatchCancelsAStopOfVigilsOwn(t *testing.T) {
	m := newMachine(defaults(), false)
	m.begin(t0)
	m.take()
	m.spawned(child, true, t0)
	m.take()
	m.signal(unix.SIGTSTP, t0)
	m.signal(unix.SIGCONT, t0)
	expect(t, m, "kill -100 SIGTSTP; resume")
}

func TestWatchdogCountsOnlyTimeVigilRan(t *testing.T) {
	r := defaults()
	r.Watchdog, r.WatchdogSignal = 2*time.Second, unix.SIGABRT
	// A freeze: vigil last ran at 1.5 s (a ping), its timer for 3.5 s fires
	// at 6.5 s. The child gets what it had left at 1.5 s: 2 s from the thaw.
	m := running(t, r)
	m.notified(readiness{pings: 1}, at(1500*time.Millisecond))
	m.woke(at(1500*time.Millisecond), time.Time{})
	m.woke(at(6500*time.Millisecond), at(3500*time.Millisecond))
	m.tick(at(6500 * time.Millisecond))
	expect(t, m, "")
	if got := m.next(); !got.Equal(at(8500 * time.Millisecond)) {
		t.Fatalf("watchdog at %v after the thaw, want 8.5s", got.Sub(t0))
	}
	// A hung child is ended one interval after the thaw, even if vigil is
	// late again (the credit is once per WATCHDOG=1).
	m.woke(at(9*time.Second), at(8500*time.Millisecond))
	m.tick(at(9 * time.Second))
	expect(t, m, "note watchdog; tombstone; kill 100 SIGABRT")

	// A timer a few milliseconds late is not a freeze.
	m = running(t, r)
	m.woke(at(2*time.Second+20*time.Millisecond), at(2*time.Second))
	m.tick(at(2*time.Second + 20*time.Millisecond))
	expect(t, m, "note watchdog; tombstone; kill 100 SIGABRT")

	// Ctrl-Z: the time vigil was stopped is known exactly.
	m = newMachine(r, false)
	m.begin(t0)
	m.take()
	m.spawned(child, true, t0)
	m.take()
	m.reaped([]reaper.Exit{{Pid: child, Signal: unix.SIGTSTP, Stopped: true}}, true, at(time.Second))
	expect(t, m, "stop self")
	m.woke(at(61*time.Second), time.Time{})
	m.signal(unix.SIGCONT, at(61*time.Second))
	expect(t, m, "resume")
	if got := m.next(); !got.Equal(at(62 * time.Second)) {
		t.Fatalf("watchdog at %v after a minute stopped, want 62s (1 s left when vigil stopped)", got.Sub(t0))
	}
}

func TestExitZeroOnStopOnlyForAStopTheChildHonoured(t *testing.T) {
	zero := defaults()
	zero.ExitZeroOnStop = true
	grace := zero
	grace.GraceSet, grace.Grace = true, time.Second
	quit := zero
	quit.Rewrite = signals.Rewrite{unix.SIGTERM: unix.SIGQUIT}
	tests := []struct {
		name        string
		r           Config
		stop        bool // vigil receives TERM first
		kill        bool // the grace runs out
		exit        reaper.Exit
		class       Class
		status      int
		childStatus int
	}{
		{"died of the TERM forwarded", zero, true, false, reaper.Exit{Pid: child, Signal: unix.SIGTERM}, Stopped, 0, 143},
		{"exited 143 after the TERM", zero, true, false, reaper.Exit{Pid: child, Code: 143}, Stopped, 0, 143},
		{"died of the QUIT the rewrite sent", quit, true, false, reaper.Exit{Pid: child, Signal: unix.SIGQUIT}, Stopped, 0, 131},
		{"failed on its own during the stop", zero, true, false, reaper.Exit{Pid: child, Code: 3}, Failure, 3, 3},
		{"crashed during the stop", zero, true, false, reaper.Exit{Pid: child, Signal: unix.SIGSEGV}, Fault, 139, 139},
		{"needed vigil's SIGKILL after the grace", grace, true, true, reaper.Exit{Pid: child, Signal: unix.SIGKILL}, Kill, 137, 137},
		{"a TERM from elsewhere, no stop", zero, false, false, reaper.Exit{Pid: child, Signal: unix.SIGTERM}, Signal, 143, 143},
		{"143 with no stop", zero, false, false, reaper.Exit{Pid: child, Code: 143}, Failure, 143, 143},
		{"without the flag, as today", defaults(), true, false, reaper.Exit{Pid: child, Signal: unix.SIGTERM}, Signal, 143, 143},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := running(t, tt.r)
			if tt.stop {
				m.signal(unix.SIGTERM, t0)
			}
			if tt.kill {
				m.tick(at(time.Second))
			}
			m.take()
			m.reaped([]reaper.Exit{tt.exit}, false, at(2*time.Second))
			m.take()
			r := finish(t, m)
			if r.class != tt.class || r.status != tt.status || r.exit.Status() != tt.childStatus {
				t.Errorf("class %s, status %d, child's %d; want %s, %d, %d", r.class, r.status, r.exit.Status(), tt.class, tt.status, tt.childStatus)
			}
		})
	}
}

func TestExitZeroOnStopIsNotAStopBeforeTheChildExists(t *testing.T) {
	r := defaults()
	r.ExitZeroOnStop, r.WaitFor = true, someTarget
	m := newMachine(r, false)
	m.begin(t0)
	m.take()
	m.signal(unix.SIGTERM, t0)
	m.take()
	if m.rec == nil || m.rec.status != 143 || m.rec.class == Stopped {
		t.Fatalf("record %+v, want 143 and not stopped: the command never ran", m.rec)
	}
}

// TestExitZeroOnStopOverRandomHistories drives the machine with seeded
// random histories (signals to vigil, the clock, the child's end) and
// checks what --exit-zero-on-stop may do, in terms of what vigil did: a
// status of 0 for a child that did not exit 0 needs the flag, a stop
// signal from outside received, and the child's death by (or 128 plus) a
// signal vigil actually sent it, never after a SIGKILL of vigil's own.
func TestExitZeroOnStopOverRandomHistories(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 17))
	sigs := []unix.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGUSR1, unix.SIGQUIT}
	classes := map[Class]int{}
	defer func() {
		// Not vacuous: the histories reach both sides of the rule.
		if classes[Stopped] < 200 || classes[Signal] < 100 || classes[Kill] < 10 {
			t.Errorf("classes reached: %v", classes)
		}
	}()
	for i := range 5000 {
		r := defaults()
		r.ExitZeroOnStop = rng.IntN(4) != 0
		if rng.IntN(3) == 0 {
			r.GraceSet, r.Grace = true, time.Duration(1+rng.IntN(3))*time.Second
		}
		if rng.IntN(3) == 0 {
			r.Rewrite = signals.Rewrite{unix.SIGTERM: sigs[rng.IntN(len(sigs))]}
		}
		m := running(t, r)
		now := t0
		stopSeen, sent, killedByVigil := false, sigSet(0), false
		var history []string
		for range rng.IntN(6) {
			switch rng.IntN(3) {
			case 0:
				sig := sigs[rng.IntN(len(sigs))]
				stopSeen = stopSeen || m.isStop(sig)
				m.signal(sig, now)
				history = append(history, signals.Name(sig))
			default:
				now = now.Add(time.Duration(rng.IntN(2000)) * time.Millisecond)
				m.tick(now)
				history = append(history, "tick")
			}
			for _, a := range m.take() {
				if a.kind == actKill && (a.pid == child || a.pid == -child) {
					sent.add(a.sig)
					killedByVigil = killedByVigil || a.sig == unix.SIGKILL
				}
			}
		}
		var e reaper.Exit
		var got []unix.Signal
		for _, sig := range sigs {
			if sent.has(sig) {
				got = append(got, sig)
			}
		}
		switch n := rng.IntN(5); {
		case n >= 3 && len(got) > 0:
			// The child honours what it was sent, one way or the other.
			sig := got[rng.IntN(len(got))]
			if n == 3 {
				e = reaper.Exit{Pid: child, Signal: sig}
			} else {
				e = reaper.Exit{Pid: child, Code: 128 + int(sig)}
			}
		}
		switch k := rng.IntN(3); {
		case e.Pid != 0:
		case k == 0:
			e = reaper.Exit{Pid: child, Code: []int{0, 1, 3, 128 + int(sigs[rng.IntN(len(sigs))])}[rng.IntN(4)]}
		case k == 1:
			e = reaper.Exit{Pid: child, Signal: append(sigs, unix.SIGKILL, unix.SIGSEGV)[rng.IntN(len(sigs)+2)]}
		default:
			if killedByVigil {
				e = reaper.Exit{Pid: child, Signal: unix.SIGKILL}
			} else {
				e = reaper.Exit{Pid: child, Code: 2}
			}
		}
		if m.phase == phaseRunning && m.rec == nil {
			m.reaped([]reaper.Exit{e}, false, now)
		} else {
			e = m.rec.exit
		}
		m.take()
		rec := m.rec
		classes[rec.class]++
		honoured := (e.Signal != 0 && e.Signal != unix.SIGKILL && sent.has(e.Signal)) ||
			(e.Signal == 0 && e.Code > 128 && sent.has(unix.Signal(e.Code-128)))
		ok := rec.status == e.Status() || rec.status == 0 && r.ExitZeroOnStop && stopSeen && honoured && !killedByVigil
		if !ok || (!r.ExitZeroOnStop && rec.class == Stopped) || (rec.class == Stopped) != (rec.status == 0 && e.Status() != 0) {
			t.Fatalf("history %d %v, child %+v, flag %v: class %s status %d (vigil sent %b)", i, history, e, r.ExitZeroOnStop, rec.class, rec.status, sent)
		}
	}
}

// next runs before every sleep: in a storm of exits, garbage there grows
// the heap by megabytes before the first collection.
func TestNextAllocatesNothing(t *testing.T) {
	m := running(t, defaults())
	oomKill(m, t0)
	if n := testing.AllocsPerRun(100, func() { m.next() }); n != 0 {
		t.Errorf("next allocates %v times per call, want 0", n)
	}
}

// TestReadyFdLineMarksTheRunReadyOnce: the --ready-fd line makes the
// running child ready as READY=1 does (tombstone, then the note that
// relays), once per run; before the spawn and after the reap it is
// nobody's.
func TestReadyFdLineMarksTheRunReadyOnce(t *testing.T) {
	r := defaults()
	r.Restart = RestartAlways
	m := newMachine(r, false)
	m.readyFdWritten(t0)
	m.begin(t0)
	expect(t, m, "spawn")
	m.spawned(child, false, t0)
	m.take()
	m.readyFdWritten(t0)
	expect(t, m, "tombstone; note ready-fd; relay READY=1")
	m.readyFdWritten(t0)
	m.notified(readiness{ready: true}, t0)
	expect(t, m, "")
	if !m.ready {
		t.Fatal("not ready after the line")
	}
	m.reaped([]reaper.Exit{{Pid: child, Code: 1}}, false, t0)
	m.take()
	m.readyFdWritten(t0)
	if acts := m.take(); len(acts) > 0 {
		t.Errorf("a line after the run ended made it ready: %v", acts)
	}
}

// actionOf returns the first action of kind in acts.
func actionOf(t *testing.T, acts []action, kind actionKind) action {
	t.Helper()
	for _, a := range acts {
		if a.kind == kind {
			return a
		}
	}
	t.Fatalf("no action of kind %d in %q", kind, show(acts))
	return action{}
}

// TestTheRecordIsBuiltByTheMachineAlone: the record the loop logs, writes
// and hooks is the machine's, whole: the command from the Config, the tail
// the loop handed over, the same record for the log line and the hooks.
func TestTheRecordIsBuiltByTheMachineAlone(t *testing.T) {
	r := defaults()
	r.Command, r.CaptureTail = []string{"/usr/bin/app", "-x"}, 1024
	m := running(t, r)
	m.reaped(exited(child, 2), false, at(time.Second))
	expect(t, m, "tombstone; close tail")
	m.tailDone()
	acts := m.take()
	if got := show(acts); got != "finish tail; ended; list hooks" {
		t.Fatalf("actions %q", got)
	}
	m.tailTaken([]byte("bye\n")) // what the loop does for finish tail
	ended, hooks := actionOf(t, acts, actEnded).rec, actionOf(t, acts, actListHooks).rec
	if ended == nil || ended != hooks {
		t.Fatalf("the log line's record %p, the hooks' %p: want the one record", ended, hooks)
	}
	if strings.Join(ended.command, " ") != "/usr/bin/app -x" || string(ended.tail) != "bye\n" || ended.status != 2 {
		t.Errorf("record command %q tail %q status %d", ended.command, ended.tail, ended.status)
	}
}

// TestTheTombstoneIsTheMachinesState: everything in the tombstone but
// which vigil wrote it comes from the machine.
func TestTheTombstoneIsTheMachinesState(t *testing.T) {
	r := defaults()
	r.Command = []string{"/usr/bin/app"}
	m := newMachine(r, false)
	if ts := m.tombstone(); ts.Name != "app" || ts.State != "starting" || ts.Pid != 0 || ts.StartedAt != "" {
		t.Errorf("before the spawn: %+v", ts)
	}
	m.begin(t0)
	m.spawned(child, false, t0)
	m.notified(readiness{ready: true, status: ptr("serving")}, at(time.Second))
	ts := m.tombstone()
	if ts.State != "ready" || ts.Pid != child || ts.Status != "serving" || ts.ReadyAt == nil || ts.RunID != "" || ts.Class != nil {
		t.Errorf("running: %+v", ts)
	}
	m.reaped(exited(child, 3), false, at(2*time.Second))
	ts = m.tombstone()
	if ts.State != "exited" || ts.Class == nil || *ts.Class != Failure || ts.ExitStatus == nil || *ts.ExitStatus != 3 {
		t.Errorf("ended: %+v", ts)
	}
	r.Name = "web"
	if n := newMachine(r, false).tombstone().Name; n != "web" {
		t.Errorf("name %q with --name web", n)
	}
}

func ptr[T any](v T) *T { return &v }

// TestTheTailPipeIsShutUnlessSomeoneStillNeedsIt: when the machine stops
// waiting for the tail, the pipe is closed, except with --no-cleanup (the
// leftovers keep it) and between runs (the next run's).
func TestTheTailPipeIsShutUnlessSomeoneStillNeedsIt(t *testing.T) {
	once := defaults()
	once.CaptureTail = 1024
	kept := once
	kept.NoCleanup = true
	again := restarting(RestartAlways, 0)
	again.CaptureTail = 1024
	for _, tt := range []struct {
		name string
		r    Config
		shut bool
	}{
		{"one run", once, true},
		{"no cleanup", kept, false},
		{"another run follows", again, false},
	} {
		m := running(t, tt.r)
		m.reaped(exited(child, 1), false, t0)
		acts := m.take()
		m.tick(at(tailWait))
		if a := actionOf(t, append(acts, m.take()...), actFinishTail); a.shut != tt.shut {
			t.Errorf("%s: shut %v, want %v", tt.name, a.shut, tt.shut)
		}
	}
}

// TestTheEndIsLoudOnlyWhenVigilKnowsMore: the line that says how the child
// ended warns for an OOM kill, a fault, a timeout and a SIGKILL that vigil
// did not send; the rest speak for themselves (debug).
func TestTheEndIsLoudOnlyWhenVigilKnowsMore(t *testing.T) {
	warn := map[Class]bool{OOM: true, Fault: true, Timeout: true, Kill: true}
	for _, c := range Classes() {
		m := newMachine(defaults(), false)
		m.rec = &record{class: c}
		want := slog.LevelDebug
		if warn[c] {
			want = slog.LevelWarn
		}
		if got := m.endLevel(); got != want {
			t.Errorf("%s: level %s, want %s", c, got, want)
		}
	}
	// A SIGKILL of vigil's own (the grace ran out) was warned of then.
	r := defaults()
	r.GraceSet = true
	m := running(t, r)
	m.signal(unix.SIGTERM, t0)
	m.tick(at(r.Grace))
	expect(t, m, "tombstone; kill 100 SIGTERM; note grace over; kill -100 SIGKILL")
	m.reaped(killedBy(child, unix.SIGKILL), false, at(r.Grace))
	if a := actionOf(t, m.take(), actEnded); a.rec.class != Kill || a.level != slog.LevelDebug {
		t.Errorf("vigil's own SIGKILL: class %s level %s, want kill at debug", a.rec.class, a.level)
	}
}

// TestWhoseTellsTheChildAndTheHookApart: the loop asks whose a reaped
// process is for its log lines, before it hands the drain over.
func TestWhoseTellsTheChildAndTheHookApart(t *testing.T) {
	m := running(t, defaults())
	if who, _ := m.whose(child); who != ownerChild || !m.ours(child) {
		t.Errorf("the running child: %d", who)
	}
	if who, _ := m.whose(7); who != ownerNone || m.ours(7) {
		t.Errorf("an orphan: %d", who)
	}
	m.reaped(exited(child, 0), false, t0)
	m.hooksListed(2, t0)
	m.hookStarted(200, t0)
	if who, _ := m.whose(child); who != ownerNone {
		t.Errorf("the child after its end: %d", who)
	}
	if who, n := m.whose(200); who != ownerHook || n != 0 || !m.ours(200) {
		t.Errorf("the hook: %d, number %d", who, n)
	}
}

// TestJobControlOnlyWithATerminalAndNotAsInit: vigil follows the child's
// stops (and asks the drain for them) only when the child's group has the
// terminal and vigil is not PID 1; otherwise TSTP is forwarded like any
// signal.
func TestJobControlOnlyWithATerminalAndNotAsInit(t *testing.T) {
	for _, tt := range []struct {
		tty, init bool
		follows   bool
	}{
		{tty: true, follows: true},
		{tty: true, init: true},
		{},
		{init: true},
	} {
		m := newMachine(defaults(), tt.init)
		m.begin(t0)
		m.spawned(child, tt.tty, t0)
		m.take()
		want := "kill 100 SIGTSTP"
		if tt.follows {
			want = "kill -100 SIGTSTP; stop self"
		}
		if m.untraced() != tt.follows {
			t.Errorf("tty %v, init %v: untraced %v", tt.tty, tt.init, m.untraced())
		}
		m.signal(unix.SIGTSTP, t0)
		if got := show(m.take()); got != want {
			t.Errorf("tty %v, init %v: TSTP gives %q, want %q", tt.tty, tt.init, got, want)
		}
	}
}

// TestTheTailPipeIsLetGoAtTheSpawnWhenNoRunFollows: with --restart no
// vigil closes its end of the stderr pipe right after the spawn (or the
// failed spawn), so the end of file comes with the child's tree; under
// --restart it keeps it for the next run.
func TestTheTailPipeIsLetGoAtTheSpawnWhenNoRunFollows(t *testing.T) {
	for _, policy := range []RestartPolicy{RestartNo, RestartOnFailure, RestartAlways} {
		r := restarting(policy, 0)
		r.CaptureTail = 1024
		m := newMachine(r, false)
		m.begin(t0)
		expect(t, m, "spawn")
		m.spawned(child, false, t0)
		got := show(m.take())
		want := "tombstone"
		if policy == RestartNo {
			want = "close tail; tombstone"
		}
		if got != want {
			t.Errorf("policy %d: spawned gives %q, want %q", policy, got, want)
		}
	}
	r := defaults()
	r.CaptureTail = 1024
	m := newMachine(r, false)
	m.begin(t0)
	m.take()
	m.spawnFailed(fail(127, "not found"), t0)
	if got := show(m.take()); !strings.HasPrefix(got, "close tail; ") {
		t.Errorf("a failed spawn gives %q, want the pipe let go first", got)
	}
	n := running(t, defaults())
	n.reaped(exited(child, 0), false, t0)
	if got := show(n.take()); strings.Contains(got, "tail") {
		t.Errorf("no --capture-tail, yet %q", got)
	}
}

// TestReadinessIsNotedAndRelayedApart: becoming ready by --ready-on or
// --ready-fd is one note (the log line) and one relay of READY=1 (to
// vigil's own service manager), two actions.
func TestReadinessIsNotedAndRelayedApart(t *testing.T) {
	m := running(t, defaults())
	m.readyOnHeld(t0)
	acts := m.take()
	if got := show(acts); got != "tombstone; note ready; relay READY=1" {
		t.Fatalf("ready-on: %q", got)
	}
	if a := actionOf(t, acts, actRelay); a.msg != "READY=1" {
		t.Errorf("relayed %q", a.msg)
	}
}

// mustPanic fails unless f panics: a closed set's unknown value is a bug
// that must not pass in silence.
func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s: no panic", what)
		}
	}()
	f()
}

// TestClosedSetsFailLoudly: an unknown phase or class is a bug of the
// machine's own (it makes them) and panics, in tests; a restart policy the
// caller of Run gave and vigil does not know is said (an error line) and
// taken as no restart; every reason has a name.
func TestClosedSetsFailLoudly(t *testing.T) {
	m := running(t, defaults())
	m.phase = phaseDone + 1
	mustPanic(t, "a signal in an unknown phase", func() { m.signal(unix.SIGHUP, t0) })
	m = running(t, defaults())
	m.rec = &record{class: "bogus"}
	mustPanic(t, "the end line of an unknown class", func() { m.endLevel() })

	r := defaults()
	r.Restart = RestartAlways + 7
	m = running(t, r)
	m.reaped(exited(child, 1), false, t0)
	if got := show(m.take()); got != "note bad restart policy; tombstone; ended; list hooks" {
		t.Errorf("an unknown restart policy: %q", got)
	}
	if m.again {
		t.Error("an unknown restart policy restarts")
	}

	for r := whyNone; int(r) < len(reasonNames); r++ {
		if n := r.String(); n == "" || strings.HasPrefix(n, "reason ") {
			t.Errorf("reason %d has no name", r)
		}
	}
	if n := reason(len(reasonNames)).String(); !strings.HasPrefix(n, "reason ") {
		t.Errorf("a reason past the list is named %q", n)
	}
}

// String names a phase in the tests' failures (%v); vigil itself never
// prints one.
func (p phase) String() string {
	return [...]string{"start", "waiting", "running", "cleanup", "tail", "hooks", "backoff", "wait-all", "flush", "done"}[p]
}

// TestReadyTimeoutStopsAChildThatIsNotReadyInTime: --ready-timeout is a
// timeout of each run, kept by the child's readiness.
func TestReadyTimeoutStopsAChildThatIsNotReadyInTime(t *testing.T) {
	r := defaults()
	r.Notify, r.ReadyTimeout = true, 30*time.Second
	m := running(t, r)
	if got := m.next(); !got.Equal(at(30 * time.Second)) {
		t.Fatalf("next %v, want the ready timeout at +30s", got.Sub(t0))
	}
	m.tick(at(30 * time.Second))
	expect(t, m, "note timeout; tombstone; kill 100 SIGTERM")
	if r := ends(t, m, killedBy(child, unix.SIGTERM), at(31*time.Second)); r.class != Timeout || r.status != 143 {
		t.Errorf("class %s status %d, want timeout 143", r.class, r.status)
	}
}

func TestReadyTimeoutIsKeptByReadiness(t *testing.T) {
	r := defaults()
	r.Notify, r.ReadyTimeout = true, 30*time.Second
	m := running(t, r)
	m.notified(readiness{ready: true}, at(10*time.Second))
	m.take()
	if got := m.next(); !got.IsZero() {
		t.Errorf("next %v once ready, want no deadline", got.Sub(t0))
	}
	m.tick(at(time.Hour))
	expect(t, m, "")
	if r := ends(t, m, exited(child, 0), at(2*time.Hour)); r.class != Success {
		t.Errorf("class %s, want success", r.class)
	}
}

// TestReadyTimeoutIsEachRuns: under --restart every run gets its own, from
// its own start, and a run that was ready does not keep the next one's.
func TestReadyTimeoutIsEachRuns(t *testing.T) {
	r := defaults()
	r.Notify, r.ReadyTimeout = true, 30*time.Second
	r.Restart, r.RestartDelay, r.RestartDelayMax = RestartAlways, time.Second, time.Second
	m := running(t, r)
	m.notified(readiness{ready: true}, at(5*time.Second))
	m.reaped(exited(child, 0), false, at(100*time.Second))
	m.take()
	m.hooksListed(0, at(100*time.Second))
	m.take()
	m.flushed()
	m.take()
	m.tick(at(101 * time.Second))
	expect(t, m, "spawn")
	m.spawned(child+1, false, at(101*time.Second))
	m.take()
	if got := m.next(); !got.Equal(at(131 * time.Second)) {
		t.Fatalf("next %v, want the second run's ready timeout at +131s", got.Sub(t0))
	}
	m.tick(at(131 * time.Second))
	expect(t, m, "note timeout; tombstone; kill 101 SIGTERM")
}

// TestReadyTimeoutCountsOnlyTimeTheChildCouldRun: a freeze (docker pause)
// or a job-control stop before the child is ready is credited to the
// ready timeout, as to the watchdog; EXTEND_TIMEOUT_USEC pushes it back.
func TestReadyTimeoutCountsOnlyTimeTheChildCouldRun(t *testing.T) {
	r := defaults()
	r.Notify, r.ReadyTimeout = true, 30*time.Second
	m := running(t, r)
	m.woke(at(time.Second), time.Time{})
	due := m.next()
	m.woke(at(5*time.Minute), due) // frozen from +1s to +5m
	m.tick(at(5 * time.Minute))
	expect(t, m, "")
	if got, want := m.next(), at(5*time.Minute+29*time.Second); !got.Equal(want) {
		t.Errorf("after the freeze the ready timeout passes at %v, want %v", got.Sub(t0), want.Sub(t0))
	}

	m = running(t, r)
	ext := 2 * time.Minute
	m.notified(readiness{extend: &ext}, at(20*time.Second))
	m.take()
	if got, want := m.next(), at(140*time.Second); !got.Equal(want) {
		t.Errorf("EXTEND_TIMEOUT_USEC=120s at +20s: the deadline is %v, want %v", got.Sub(t0), want.Sub(t0))
	}
	short := time.Second
	m.notified(readiness{extend: &short}, at(30*time.Second))
	if got, want := m.next(), at(140*time.Second); !got.Equal(want) {
		t.Errorf("a shorter EXTEND_TIMEOUT_USEC moved the deadline to %v, want it left at %v", got.Sub(t0), want.Sub(t0))
	}
	m.tick(at(140 * time.Second))
	expect(t, m, "note timeout; tombstone; kill 100 SIGTERM")
}
