// Package notify speaks the sd_notify protocol for vigil: a listener the
// child (and its whole process tree) reports readiness, status and
// watchdog pings to, the parser of those reports, and the relay that
// passes them on when vigil itself runs under a service manager that set
// NOTIFY_SOCKET.
//
// The protocol is systemd's (sd_notify(3)): each datagram on a unix
// datagram socket holds newline-separated KEY=VALUE assignments; the
// sender is identified by the SCM_CREDENTIALS the kernel attaches.
package notify

import (
	"bytes"
	"errors"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxMessage is the largest datagram accepted, in bytes. systemd's own
// manager reads notifications into a buffer of PIPE_BUF (4096) bytes and
// ignores longer ones, so no client can count on more; a longer datagram
// is refused whole, never cut and half-applied.
const MaxMessage = 4096

// Phase is the service state a message asks for.
type Phase uint8

const (
	PhaseNone      Phase = iota // no READY=1, RELOADING=1 or STOPPING=1
	PhaseReady                  // READY=1: start-up (or a reload) finished
	PhaseReloading              // RELOADING=1: reloading its configuration
	PhaseStopping               // STOPPING=1: shutting down
)

// Message is one datagram, parsed. Assignments vigil does not act on are
// named in Unknown; lines that are not assignments, or assign a value a
// known key cannot take, are refused one by one and quoted in Invalid,
// and the rest of the message still counts.
type Message struct {
	Ready     bool  // READY=1
	Reloading bool  // RELOADING=1
	Stopping  bool  // STOPPING=1
	Phase     Phase // the last of READY=1, RELOADING=1, STOPPING=1 in the message

	Status           *string        // STATUS=: free text, valid UTF-8; nil when absent
	Pings            int            // WATCHDOG=1 lines: the sender is alive
	WatchdogTrigger  bool           // WATCHDOG=trigger: the sender asks to be treated as hung
	WatchdogInterval *time.Duration // WATCHDOG_USEC=: a new watchdog interval; 0 turns it off
	ExtendTimeout    *time.Duration // EXTEND_TIMEOUT_USEC=: asks for more time than the current deadline
	MainPID          int            // MAINPID=: another process claims to be the main one; vigil ignores it
	Barrier          bool           // BARRIER=1: the sender waits until its descriptor is closed

	Unknown []string // keys of valid assignments vigil does not act on (ERRNO=, FDSTORE=, ...)
	Invalid []string // refused lines, each cut to invalidQuote bytes for a log line
}

// invalidQuote bounds how much of a refused line a log line repeats.
const invalidQuote = 64

// Errors for a datagram refused whole.
var (
	ErrEmpty    = errors.New("empty message")
	ErrTooLarge = errors.New("message larger than 4096 bytes")
	ErrNUL      = errors.New("message holds a NUL byte")
)

// Parse reads one datagram. It fails only for a datagram that cannot be a
// message at all (empty, too large, holding a NUL byte, as systemd refuses
// them); otherwise each line is applied or refused on its own.
func Parse(b []byte) (Message, error) {
	var m Message
	switch {
	case len(b) == 0:
		return m, ErrEmpty
	case len(b) > MaxMessage:
		return m, ErrTooLarge
	case bytes.IndexByte(b, 0) >= 0:
		return m, ErrNUL
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if line == "" {
			continue // a trailing newline, or a blank line between assignments
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok || key == "" {
			m.Invalid = append(m.Invalid, quoteLine(line))
			continue
		}
		if !m.apply(key, value) {
			m.Invalid = append(m.Invalid, quoteLine(line))
		}
	}
	return m, nil
}

// apply records one assignment and reports whether its value was valid.
// The flags take exactly the value sd_notify(3) documents ("1"), as
// systemd does: READY=yes is not READY=1.
func (m *Message) apply(key, value string) bool {
	switch key {
	case "READY", "RELOADING", "STOPPING":
		if value != "1" {
			return false
		}
		switch key {
		case "READY":
			m.Ready, m.Phase = true, PhaseReady
		case "RELOADING":
			m.Reloading, m.Phase = true, PhaseReloading
		default:
			m.Stopping, m.Phase = true, PhaseStopping
		}
	case "STATUS":
		if !utf8.ValidString(value) {
			return false
		}
		m.Status = &value
	case "WATCHDOG":
		switch value {
		case "1":
			m.Pings++
		case "trigger":
			m.WatchdogTrigger = true
		default:
			return false
		}
	case "WATCHDOG_USEC", "EXTEND_TIMEOUT_USEC":
		d, ok := usec(value)
		if !ok {
			return false
		}
		if key == "WATCHDOG_USEC" {
			m.WatchdogInterval = &d
		} else {
			m.ExtendTimeout = &d
		}
	case "MAINPID":
		n, err := strconv.ParseUint(value, 10, 31)
		if err != nil || n == 0 {
			return false
		}
		m.MainPID = int(n)
	case "BARRIER":
		if value != "1" {
			return false
		}
		m.Barrier = true
	default:
		if !validKey(key) {
			return false
		}
		m.Unknown = append(m.Unknown, key)
	}
	return true
}

// usec reads a count of microseconds that fits a time.Duration.
func usec(s string) (time.Duration, bool) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > math.MaxInt64/uint64(time.Microsecond) {
		return 0, false
	}
	return time.Duration(n) * time.Microsecond, true
}

// validKey is what an environment-style key may hold: upper-case letters,
// digits and underscores, not starting with a digit. sd_notify keys are
// all of that form; anything else is noise, not an unknown key.
func validKey(k string) bool {
	for i, c := range []byte(k) {
		if !(c >= 'A' && c <= 'Z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return k != ""
}

// quoteLine cuts a refused line for a log line, keeping it valid UTF-8.
func quoteLine(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= invalidQuote {
		return s
	}
	cut := invalidQuote
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// Encode writes m as a datagram that Parse reads back as m (without its
// Unknown and Invalid lines): the relay sends what it builds with it.
// The phase flags come in an order that leaves Phase the last.
func (m Message) Encode() string {
	var b strings.Builder
	flags := []struct {
		on    bool
		phase Phase
		line  string
	}{
		{m.Ready, PhaseReady, "READY=1\n"},
		{m.Reloading, PhaseReloading, "RELOADING=1\n"},
		{m.Stopping, PhaseStopping, "STOPPING=1\n"},
	}
	for _, f := range flags {
		if f.on && f.phase != m.Phase {
			b.WriteString(f.line)
		}
	}
	for _, f := range flags {
		if f.on && f.phase == m.Phase {
			b.WriteString(f.line)
		}
	}
	if m.Status != nil {
		// A newline would start a new assignment, a NUL void the datagram.
		b.WriteString("STATUS=" + strings.Map(func(r rune) rune {
			if r == '\n' || r == 0 {
				return ' '
			}
			return r
		}, *m.Status) + "\n")
	}
	for range m.Pings {
		b.WriteString("WATCHDOG=1\n")
	}
	if m.WatchdogTrigger {
		b.WriteString("WATCHDOG=trigger\n")
	}
	if m.WatchdogInterval != nil {
		b.WriteString("WATCHDOG_USEC=" + strconv.FormatInt(m.WatchdogInterval.Microseconds(), 10) + "\n")
	}
	if m.ExtendTimeout != nil {
		b.WriteString("EXTEND_TIMEOUT_USEC=" + strconv.FormatInt(m.ExtendTimeout.Microseconds(), 10) + "\n")
	}
	if m.MainPID != 0 {
		b.WriteString("MAINPID=" + strconv.Itoa(m.MainPID) + "\n")
	}
	if m.Barrier {
		b.WriteString("BARRIER=1\n")
	}
	return strings.TrimSuffix(b.String(), "\n")
}
