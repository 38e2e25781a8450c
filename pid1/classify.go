package pid1

import (
	"golang.org/x/sys/unix"

	"vigil/reaper"
)

// Class is how the main child ended; each class has its own hooks.
type Class string

// The classes, in the order the README documents them.
const (
	Success  Class = "success"  // exited 0
	Failure  Class = "failure"  // exited non-zero
	Signal   Class = "signal"   // killed by a signal that is neither a fault nor KILL
	Fault    Class = "fault"    // killed by SEGV, BUS, ILL, FPE, ABRT, SYS or TRAP
	Kill     Class = "kill"     // killed by KILL, no OOM evidence
	OOM      Class = "oom"      // killed by KILL, the victim of an OOM kill the cgroup counted
	Timeout  Class = "timeout"  // vigil ended it because --timeout expired
	Watchdog Class = "watchdog" // vigil ended it as hung: no WATCHDOG=1 within --watchdog
	Stopped  Class = "stopped"  // vigil ended it because a --stop-on target fired
)

// Classes lists every class, in the README's order.
func Classes() []Class {
	return []Class{Success, Failure, Signal, Fault, Kill, OOM, Timeout, Watchdog, Stopped}
}

// Cause says what vigil itself did to the child before it ended, which
// outranks how it died: a child killed after --timeout is a timeout however
// it went.
type Cause int

// The causes.
const (
	CauseNone     Cause = iota
	CauseSignal         // a stop signal from outside was forwarded
	CauseTimeout        // --timeout expired
	CauseStopOn         // a --stop-on target fired
	CauseWatchdog       // no WATCHDOG=1 within --watchdog
)

// Classify decides the class of one termination. oomRose reports whether
// the child was the victim of an OOM kill that vigil's memory cgroup
// counted (a kill not yet tied to another process vigil reaped) and the
// SIGKILL was not vigil's own: a kill vigil sent is never an OOM, even
// when some other process of the cgroup was OOM-killed before.
func Classify(e reaper.Exit, cause Cause, oomRose bool) Class {
	switch cause {
	case CauseTimeout:
		return Timeout
	case CauseStopOn:
		return Stopped
	case CauseWatchdog:
		return Watchdog
	}
	switch e.Signal {
	case 0:
		if e.Code == 0 {
			return Success
		}
		return Failure
	case unix.SIGKILL:
		if oomRose {
			return OOM
		}
		return Kill
	case unix.SIGSEGV, unix.SIGBUS, unix.SIGILL, unix.SIGFPE, unix.SIGABRT, unix.SIGSYS, unix.SIGTRAP:
		return Fault
	}
	return Signal
}
