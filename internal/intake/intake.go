// Package intake is vigil's one intake of events: every signal vigil
// catches, and every event its own goroutines produce (a watched file, a
// finished record write, a readiness message), lands in one pending set,
// and one
// capacity-1 channel wakes the supervisor to take it.
//
// Signals are caught in this package's init, the earliest point Go code can
// reach: the runtime initialises a package only after the packages it
// imports, and this one imports nothing of vigil's (but internal/setpid,
// whose init may replace the process before anything is caught), so it
// runs before the command line is parsed and before the supervisor exists. A signal that
// lands before that still dies with the runtime's default (exit 2 for
// SIGTERM), a window only a C init can close; the README gives its size.
//
// A pending set cannot overflow: a signal is a counter, not a queue slot,
// so a storm of one signal cannot crowd out another, and nothing is lost
// between the moment a signal is caught and the moment the supervisor is
// ready for it. The state is global because signal dispositions are.
package intake

import (
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	// Its init, the internal mode, comes before this package's catch.
	_ "vigil/internal/setpid"
)

// maxSignal is the highest signal number Linux delivers.
const maxSignal = 64

// Source is an event source other than a signal: a bit in the pending set.
type Source uint32

// The sources vigil's own goroutines post.
const (
	Deps    Source = 1 << iota // a --wait-for or --stop-on watcher has news
	Records                    // a record write has finished
	Tail                       // the --capture-tail copier reached end of file
	Notify                     // a readiness message arrived
	Cancel                     // Run's context was cancelled
	OOM                        // the memory cgroup's OOM-kill counter may have changed
)

var (
	counts  [maxSignal + 1]atomic.Uint32
	sources atomic.Uint32
	wake    = make(chan struct{}, 1)
	// ignored lists the signals left ignored because they were ignored
	// when vigil started (see catch).
	ignored []syscall.Signal
)

func init() { catch() }

// catch starts catching every signal a Go program can catch, SIGCHLD
// included, into the pending set.
//
// A signal ignored when vigil started (SIGHUP under nohup, SIGINT for a
// shell's background job) stays ignored: it is neither caught nor
// forwarded, and the child inherits the ignored disposition through exec,
// as under tini. The runtime keeps an inherited SIG_IGN only for SIGHUP and
// SIGINT; any other signal was caught by the runtime before this code runs.
func catch() {
	// The stop signals first, so that their window is the shortest. Only
	// SIGHUP and SIGINT can still be ignored here (see above).
	first := []os.Signal{syscall.SIGTERM}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGHUP} {
		if signal.Ignored(sig) {
			ignored = append(ignored, sig)
		} else {
			first = append(first, sig)
		}
	}
	var rest []os.Signal
	for n := 3; n <= maxSignal; n++ {
		sig := syscall.Signal(n)
		switch {
		case !Catchable(sig), sig == syscall.SIGTERM:
		case signal.Ignored(sig):
			ignored = append(ignored, sig)
		case deadly(sig):
			first = append(first, sig)
		default:
			rest = append(rest, sig)
		}
	}
	// os/signal drops a signal when the channel is full. The relay below
	// empties it at once into the counters, so it fills only if the relay
	// cannot run for as long as 256 signals take to arrive.
	c := make(chan os.Signal, 256)
	go relay(c)
	// os/signal enables each signal with a round trip to the runtime's
	// signal-mask thread (about 30 µs). The signals the runtime would die
	// of are enabled here, before anything else of vigil runs; the other
	// 45, which the runtime drops unseen until they are caught, are enabled
	// on a goroutine while the command line is parsed (1.3 ms of start-up
	// saved), and Ready waits for them before there is a child to forward
	// anything to.
	signal.Notify(c, first...)
	go func() {
		defer close(caught)
		signal.Notify(c, rest...)
	}()
}

// caught is closed once every signal is caught.
var caught = make(chan struct{})

// Ready returns once every catchable signal is caught.
func Ready() { <-caught }

// deadly reports whether the Go runtime ends the process when sig arrives
// before it is caught: SIGTERM, SIGINT and SIGHUP (exit 2, or death by the
// signal), and those it treats as crashes when sent with kill(2). The
// order puts the stop signals first.
func deadly(sig syscall.Signal) bool {
	switch sig {
	case syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGABRT,
		syscall.SIGILL, syscall.SIGTRAP, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGSEGV,
		syscall.SIGSTKFLT, syscall.SIGSYS:
		return true
	}
	return false
}

func relay(c <-chan os.Signal) {
	for sig := range c {
		counts[sig.(syscall.Signal)].Add(1)
		poke()
	}
}

// Catchable reports whether a Go program can catch sig. KILL and STOP
// cannot be caught by anyone; URG is the runtime's preemption signal;
// 32, 33 and 34 are reserved by the runtime (for the C library's threads)
// and os/signal cannot catch them (reserved.go keeps 32 and 34 from
// killing vigil); PROF is the runtime's profiler tick.
func Catchable(sig syscall.Signal) bool {
	switch sig {
	case syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGURG, syscall.SIGPROF, 32, 33, 34:
		return false
	}
	return sig >= 1 && sig <= maxSignal
}

// Ignored lists the signals that were ignored when vigil started and that
// vigil therefore leaves ignored.
func Ignored() []syscall.Signal { return ignored }

func poke() {
	select {
	case wake <- struct{}{}:
	default: // a wake-up is already pending; it will see this event too
	}
}

// Post records that src has news and wakes the supervisor.
func Post(src Source) {
	sources.Or(uint32(src))
	poke()
}

// Wake is the channel the supervisor sleeps on; a receive means the
// pending set may hold something.
func Wake() <-chan struct{} { return wake }

// Pending is what Take hands over: how often each signal arrived since the
// last Take, and which sources posted.
type Pending struct {
	Signals [maxSignal + 1]uint32
	Sources Source
}

// Has reports whether src posted.
func (p *Pending) Has(src Source) bool { return p.Sources&src != 0 }

// Take moves everything pending into p and reports whether there was
// anything. Counters are swapped to zero one by one, so a signal arriving
// during Take is either in p or still pending, never lost.
func Take(p *Pending) bool {
	any := false
	for n := range counts {
		p.Signals[n] = counts[n].Swap(0)
		any = any || p.Signals[n] != 0
	}
	p.Sources = Source(sources.Swap(0))
	return any || p.Sources != 0
}
