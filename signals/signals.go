// Package signals names signals, decides which ones vigil forwards and
// rewrites them on the way to the child.
package signals

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// maxSignal is the highest signal number Linux delivers (SIGRTMAX).
const maxSignal = 64

// Parse reads a signal written as a name with or without the SIG prefix, in
// any case ("TERM", "SIGTERM", "term"), as "RTMIN+N"/"RTMAX-N", or as a number
// ("15").
func Parse(s string) (unix.Signal, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	if t == "" {
		return 0, fmt.Errorf("empty signal name")
	}
	t = strings.TrimPrefix(t, "SIG")
	// "15" and the "SIG32" that Name prints for unnamed signals.
	if n, err := strconv.Atoi(t); err == nil {
		if n < 1 || n > maxSignal {
			return 0, fmt.Errorf("signal %q: number out of range 1..%d", s, maxSignal)
		}
		return unix.Signal(n), nil
	}
	if sig := unix.SignalNum("SIG" + t); sig != 0 {
		return sig, nil
	}
	// Real-time signals have no name in x/sys; users write them the way
	// kill -l prints them.
	for _, rt := range []struct {
		prefix string
		base   int
		sign   int
	}{{"RTMIN+", rtmin, 1}, {"RTMAX-", maxSignal, -1}} {
		if rest, ok := strings.CutPrefix(t, rt.prefix); ok {
			if n, err := strconv.Atoi(rest); err == nil && n >= 0 {
				v := rt.base + rt.sign*n
				if v >= rtmin && v <= maxSignal {
					return unix.Signal(v), nil
				}
			}
		}
	}
	switch t {
	case "RTMIN":
		return rtmin, nil
	case "RTMAX":
		return maxSignal, nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

// rtmin is SIGRTMIN as the C library shows it to programs: glibc and musl
// keep 32 and 33 for themselves.
const rtmin = 34

// Name returns the conventional name of sig ("SIGTERM"), or "SIG<n>" for a
// signal without one.
func Name(sig unix.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	switch {
	case sig >= rtmin && sig <= maxSignal:
		return rtNames[sig-rtmin]
	case sig == 32 || sig == 33:
		return [...]string{"SIG32", "SIG33"}[sig-32]
	}
	return fmt.Sprintf("SIG%d", int(sig))
}

// rtNames are the real-time signals as kill -l shows them, written out so
// that naming one on the forwarding path allocates nothing.
var rtNames = [maxSignal - rtmin + 1]string{
	"SIGRTMIN+0", "SIGRTMIN+1", "SIGRTMIN+2", "SIGRTMIN+3", "SIGRTMIN+4", "SIGRTMIN+5", "SIGRTMIN+6", "SIGRTMIN+7",
	"SIGRTMIN+8", "SIGRTMIN+9", "SIGRTMIN+10", "SIGRTMIN+11", "SIGRTMIN+12", "SIGRTMIN+13", "SIGRTMIN+14", "SIGRTMIN+15",
	"SIGRTMIN+16", "SIGRTMIN+17", "SIGRTMIN+18", "SIGRTMIN+19", "SIGRTMIN+20", "SIGRTMIN+21", "SIGRTMIN+22", "SIGRTMIN+23",
	"SIGRTMIN+24", "SIGRTMIN+25", "SIGRTMIN+26", "SIGRTMIN+27", "SIGRTMIN+28", "SIGRTMIN+29", "SIGRTMIN+30",
}

// Forwardable reports whether vigil catches sig and passes it on. As PID 1
// the kernel drops any signal that has no handler, so vigil catches every
// one of them (internal/intake) for a `docker kill -s` to reach the child.
func Forwardable(sig unix.Signal) bool { return NotForwarded(sig) == "" }

// NotForwarded says why sig never reaches the child through vigil, or ""
// when it does. It is the one list of what vigil cannot catch: package
// intake catches every other signal. KILL and STOP cannot be caught; CHLD
// is vigil's own business (reaping); URG is the Go runtime's preemption
// signal; 32, 33 and 34 are reserved by the runtime for the C library and
// cannot be caught through it (34 is the C library's SIGRTMIN, so the
// first real-time signal programs use is 35; vigil survives all three, see
// internal/intake); PROF is the runtime's profiler tick.
func NotForwarded(sig unix.Signal) string {
	switch {
	case sig == unix.SIGKILL || sig == unix.SIGSTOP:
		return "it cannot be caught"
	case sig == unix.SIGCHLD:
		return "vigil keeps it for reaping"
	case sig == unix.SIGURG:
		return "the Go runtime uses it for preemption"
	case sig == unix.SIGPROF:
		return "the Go runtime keeps it for its profiler"
	case sig >= 32 && sig <= 34:
		return "the Go runtime reserves it for the C library and vigil cannot catch it"
	case sig < 1 || sig > maxSignal:
		return "it is not a signal"
	}
	return ""
}

// Rewrite maps a received signal to the one forwarded to the child. A
// mapping to 0 drops the signal.
type Rewrite map[unix.Signal]unix.Signal

// ParseRewrite reads one FROM:TO rule. TO may be "0" or "none" to drop FROM.
func ParseRewrite(spec string) (from, to unix.Signal, err error) {
	f, t, ok := strings.Cut(spec, ":")
	if !ok {
		return 0, 0, fmt.Errorf("rewrite %q: want FROM:TO", spec)
	}
	from, err = Parse(f)
	if err != nil {
		return 0, 0, fmt.Errorf("rewrite %q: %w", spec, err)
	}
	if why := NotForwarded(from); why != "" {
		return 0, 0, fmt.Errorf("rewrite %q: %s is never forwarded: %s", spec, Name(from), why)
	}
	switch strings.ToLower(strings.TrimSpace(t)) {
	case "0", "none":
		return from, 0, nil
	}
	to, err = Parse(t)
	if err != nil {
		return 0, 0, fmt.Errorf("rewrite %q: %w", spec, err)
	}
	return from, to, nil
}

// Apply returns the signal to forward for sig, and false when the table
// drops it.
func (r Rewrite) Apply(sig unix.Signal) (unix.Signal, bool) {
	to, ok := r[sig]
	if !ok {
		return sig, true
	}
	return to, to != 0
}
