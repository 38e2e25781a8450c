package pid1

import (
	"log/slog"
	"time"

	"golang.org/x/sys/unix"

	"vigil/signals"
)

// SubreaperMode says whether vigil registers as a child subreaper.
type SubreaperMode int

// The subreaper modes.
const (
	SubreaperAuto SubreaperMode = iota // when vigil is not PID 1
	SubreaperOn                        // always (-s)
	SubreaperOff                       // never
)

// Config is everything Run needs; main builds it from flags and VIGIL_*
// variables.
type Config struct {
	Command []string
	Env     []string // the child's environment; nil means vigil's own

	Group      bool // forward to the child's process group
	Subreaper  SubreaperMode
	PdeathSig  unix.Signal     // asked of the kernel for vigil itself; 0 for none
	RemapExit  map[int]bool    // child statuses that make vigil exit 0
	Rewrite    signals.Rewrite // applied to every forwarded signal
	WarnOnReap bool            // warn for each reaped process that is not the main child
	Log        *slog.Logger

	Timeout       time.Duration // 0: none
	TimeoutSignal unix.Signal
	// Grace is the time between a stop signal and vigil's SIGKILL. It
	// applies to the stops vigil starts itself (--timeout, --stop-on) and,
	// only when GraceSet, to stop signals from outside: the runtime that
	// sent one owns the deadline of that stop.
	Grace        time.Duration
	GraceSet     bool
	CleanupGrace time.Duration // leftovers between SIGTERM and SIGKILL
	Drain        time.Duration // between a stop signal and forwarding it
	StopSignals  []unix.Signal // received signals that begin a graceful stop
	NoCleanup    bool          // do not kill descendants left when the main child ends
	// ExitZeroOnStop makes a child that honoured a stop signal from
	// outside (it died of the signal forwarded, or exited 128+N for it)
	// class stopped, exit 0.
	ExitZeroOnStop bool

	Restart         RestartPolicy
	RestartMax      int           // restarts before vigil gives up; 0: no limit
	RestartDelay    time.Duration // before the first restart; doubled after each short run
	RestartDelayMax time.Duration
	WaitAll         bool // after the child, wait for every descendant

	Hooks       map[Class][][]string // argv per class; the key "exit" runs after any class
	HooksDir    string
	HookTimeout time.Duration
	CaptureTail int // bytes of the child's stderr kept for hooks; 0: stderr is inherited

	Name           string // for the tombstone; default: base name of the command
	Tombstone      string
	TerminationLog string

	// Readiness: --notify opens an sd_notify socket for the child;
	// --ready-on targets mark it ready for programs that do not speak it;
	// --watchdog ends it as hung when no WATCHDOG=1 comes in time.
	Notify         bool
	ReadyOn        []Target
	Watchdog       time.Duration
	WatchdogSignal unix.Signal

	WaitFor     []Target
	StopOn      []Target
	WaitTimeout time.Duration // 0: wait forever

	User       string // USER[:GROUP] for the child; "" keeps vigil's
	NoNewPrivs bool
}

// OnExit is the Hooks key for hooks that run whatever the class.
const OnExit Class = "exit"
