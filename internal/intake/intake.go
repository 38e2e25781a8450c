// Package intake is vigil's one intake of events: every signal vigil
// catches, and every event its own goroutines produce (a watched file, a
// finished record write, a readiness message), lands in one pending set,
// and one
// capacity-1 channel wakes the supervisor to take it.
//
// Signals are caught in this package's init, the earliest point Go code can
// reach: the runtime initialises a package only after the packages it
// imports, and this one imports nothing of vigil's but internal/setpid,
// whose init may replace the process before anything is caught, and
// signals, which has nothing to initialise, so it runs before the command
// line is parsed and before the supervisor exists. A signal that
// lands before that still dies with the runtime's default (exit 2 for
// SIGTERM), a window only a C init can close; the README gives its size.
//
// Signals are kept in the order they arrived (a Queue), because order
// matters to the child: TSTP then CONT leaves it running, CONT then TSTP
// stopped. The queue is bounded; what finds it full becomes a counter, as
// in the kernel's own pending set, so a storm cannot grow vigil's memory
// and nothing is lost between the moment a signal is caught and the moment
// the supervisor is ready for it. The state is global because signal
// dispositions are.
package intake

import (
	"iter"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"

	// Its init, the internal mode, comes before this package's catch.
	_ "vigil/internal/setpid"
	"vigil/signals"
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
	queue   Queue
	sources atomic.Uint32
	wake    = make(chan struct{}, 1)
	// ignored lists the signals left ignored because they were ignored
	// when vigil started (see catch).
	ignored []syscall.Signal
)

func init() {
	saveStartMask()
	catch()
}

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
		case !catchable(sig), sig == syscall.SIGTERM:
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
		recordJobControl()
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
		if sig := sig.(syscall.Signal); jobControl(sig) && recording.Load() {
			takeJobControl()
		} else {
			queue.Put(sig)
		}
		poke()
	}
}

// queueSize bounds the signals kept in the order they came: 50 Ctrl-Z and
// fg pairs fit many times over.
const queueSize = 256

// Queue holds signals in the order they arrived, in fixed space. Once it
// is full, until the next Take, each signal is a counter instead (order
// among those is lost, as in the kernel's pending set), except job control:
// of TSTP, TTIN, TTOU and CONT only the last one is kept, which is what the
// kernel does with pending ones, so that a CONT never overtakes an earlier
// stop nor a stop an earlier CONT. SIGCHLD is a flag: its number says
// nothing, the drain reaps everything. The zero Queue is empty.
type Queue struct {
	mu       sync.Mutex
	order    [queueSize]uint8
	n        int
	overflow bool
	counts   [maxSignal + 1]uint32
	job      uint8 // the last job-control signal that found the queue full
	child    bool
}

// jobControl reports whether sig is one the kernel orders against the
// others of its kind (a stop cancels a pending CONT and the reverse).
func jobControl(sig syscall.Signal) bool {
	switch sig {
	case syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGCONT:
		return true
	}
	return false
}

// Put adds sig behind the signals already pending. Signals outside 1..64
// are dropped.
func (q *Queue) Put(sig syscall.Signal) {
	if sig < 1 || sig > maxSignal {
		return
	}
	q.mu.Lock()
	switch {
	case sig == syscall.SIGCHLD:
		q.child = true
	case !q.overflow && q.n < queueSize:
		q.order[q.n] = uint8(sig)
		q.n++
	case jobControl(sig):
		q.overflow, q.job = true, uint8(sig)
	default:
		q.overflow = true
		q.counts[sig]++
	}
	q.mu.Unlock()
}

// Take moves everything pending into p and reports whether there was any
// signal.
func (q *Queue) Take(p *Pending) bool {
	q.mu.Lock()
	p.n = copy(p.order[:], q.order[:q.n])
	p.counts, p.job, p.child = q.counts, q.job, q.child
	any := q.n > 0 || q.overflow || q.child
	q.n, q.overflow, q.counts, q.job, q.child = 0, false, [maxSignal + 1]uint32{}, 0, false
	q.mu.Unlock()
	return any
}

// catchable reports whether vigil catches sig: every signal it forwards
// (signals.NotForwarded says why the others cannot be caught) and SIGCHLD,
// which it keeps for reaping.
func catchable(sig syscall.Signal) bool {
	return sig == syscall.SIGCHLD || signals.Forwardable(sig)
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

// Pending is what Take hands over: the signals that arrived since the last
// Take, and which sources posted.
type Pending struct {
	Sources Source
	order   [queueSize]uint8
	n       int
	counts  [maxSignal + 1]uint32
	job     uint8
	child   bool
}

// Has reports whether src posted.
func (p *Pending) Has(src Source) bool { return p.Sources&src != 0 }

// Child reports whether SIGCHLD arrived.
func (p *Pending) Child() bool { return p.child }

// Signals yields the signals other than SIGCHLD in the order they arrived:
// those the queue held, then those that found it full (each as often as it
// came, by number), then the last job-control signal among them.
func (p *Pending) Signals() iter.Seq[syscall.Signal] {
	return func(yield func(syscall.Signal) bool) {
		for _, sig := range p.order[:p.n] {
			if !yield(syscall.Signal(sig)) {
				return
			}
		}
		for sig, count := range p.counts {
			for range count {
				if !yield(syscall.Signal(sig)) {
					return
				}
			}
		}
		if p.job != 0 {
			yield(syscall.Signal(p.job))
		}
	}
}

// Take moves everything pending into p and reports whether there was
// anything. A signal arriving during Take is either in p or still
// pending, never lost.
func Take(p *Pending) bool {
	any := queue.Take(p)
	p.Sources = Source(sources.Swap(0))
	return any || p.Sources != 0
}
