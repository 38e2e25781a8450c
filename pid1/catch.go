package pid1

import (
	"os"
	"os/signal"

	"golang.org/x/sys/unix"

	"vigil/signals"
)

// Catcher holds the channels vigil receives signals on. Catching is the
// first thing vigil does and the most expensive part of its start-up:
// os/signal enables each signal with a round trip to the runtime's
// signal-mask thread, about 25µs each, 1.5ms for the sixty signals PID 1
// must catch. Catch therefore does it in the background, so main can parse
// its command line meanwhile, and Run waits for it before spawning.
type Catcher struct {
	chld  chan os.Signal // SIGCHLD alone; capacity 1, see Catch
	sigs  chan os.Signal // every forwarded signal
	ready chan struct{}  // closed once every signal is caught
	// ignored lists the signals left ignored because they were ignored
	// when vigil started; Run logs them.
	ignored []unix.Signal
}

// Catch starts catching SIGCHLD and every forwardable signal, and returns
// at once. Call it as early as possible, once per process.
//
// SIGCHLD gets a channel of its own with room for one: when it is full a
// wake-up is already pending and the drain it causes reaps everything, so
// no SIGCHLD is ever lost and no timer is needed.
//
// A signal ignored when vigil started (SIGHUP under nohup, SIGINT for a
// shell's background job) stays ignored: it is neither caught nor
// forwarded, and the child inherits the ignored disposition through exec,
// as under tini. Catching it would make the runtime reset it to the default
// action in the child. The Go runtime keeps an inherited SIG_IGN only for
// SIGHUP and SIGINT; any other signal was already caught by the runtime
// before this code runs, so vigil cannot tell it was ignored, and it is
// forwarded like the rest.
//
// There is no Stop: vigil exits after Run, and undoing the sixty signals
// would cost as much again as catching them.
func Catch() *Catcher {
	c := &Catcher{chld: make(chan os.Signal, 1), sigs: make(chan os.Signal, 256), ready: make(chan struct{})}
	go func() {
		defer close(c.ready)
		signal.Notify(c.chld, unix.SIGCHLD)
		var osSigs []os.Signal
		for _, sig := range signals.Forwarded() {
			if signal.Ignored(sig) {
				c.ignored = append(c.ignored, sig)
				continue
			}
			osSigs = append(osSigs, sig)
		}
		signal.Notify(c.sigs, osSigs...)
	}()
	return c
}

// wait returns once every signal is caught.
func (c *Catcher) wait() { <-c.ready }
