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
	Stopped  Class = "stopped"  // vigil ended it on purpose: a --stop-on target fired, or (--exit-zero-on-stop) it honoured a stop from outside
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
	CauseTimeout        // --timeout or --ready-timeout expired
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

// sigSet is a set of signals 1 to 64.
type sigSet uint64

func (s *sigSet) add(sig unix.Signal) {
	if sig >= 1 && sig <= 64 {
		*s |= 1 << (sig - 1)
	}
}

func (s sigSet) has(sig unix.Signal) bool { return sig >= 1 && sig <= 64 && s&(1<<(sig-1)) != 0 }

// honouredStop reports whether e is how a child ends that honoured a stop:
// it died of one of the signals vigil forwarded to it, or exited with
// 128 plus one of them, as shells and the JVM do on the way out. A KILL
// is never one: a child that needed it did not stop on its own.
func honouredStop(e reaper.Exit, forwarded sigSet) bool {
	switch {
	case e.Signal == unix.SIGKILL:
		return false
	case e.Signal != 0:
		return forwarded.has(e.Signal)
	}
	return e.Code > 128 && unix.Signal(e.Code-128) != unix.SIGKILL && forwarded.has(unix.Signal(e.Code-128))
}
