package notify

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The rate bound: a burst of RateBurst datagrams, then RatePerSecond. A
// program reports a handful of state changes and pings at most a few
// times per watchdog interval; a sender far above this is broken or
// hostile, and what it sends beyond the bound is dropped unread rather
// than costing vigil /proc lookups and supervisor wake-ups.
const (
	RateBurst     = 64
	RatePerSecond = 32
)

// maxFDs is the kernel's limit of descriptors in one message
// (SCM_MAX_FD); the control buffer has room for all of them, so every
// descriptor a sender attaches arrives and is closed, none is left half
// received.
const maxFDs = 253

// Config is what a Listener needs from its caller.
type Config struct {
	// Accept decides whether a message from the process with this pid
	// (in vigil's pid namespace) counts; vigil passes InTree for its own
	// pid. Nil accepts no one.
	Accept func(pid int) bool
	// Log gets debug lines about refused, dropped and ignored messages.
	// Nil discards them.
	Log *slog.Logger
	// Burst and Rate bound the datagrams handled (0: RateBurst and
	// RatePerSecond); Now is the clock for that (nil: time.Now).
	Burst int
	Rate  float64
	Now   func() time.Time
	// Notify, if set, is called instead of a send on Wake when there is
	// something to Take: vigil posts to its one intake.
	Notify func()
}

// Update is what arrived since the last Take, merged: flags stay set,
// the latest value of each setting wins, pings are counted. Nothing a
// message says is lost by merging: READY=1, then STATUS=, then
// WATCHDOG=1 in quick succession give one Update with all three.
type Update struct {
	Ready     bool  // a READY=1 arrived
	Reloading bool  // a RELOADING=1 arrived
	Stopping  bool  // a STOPPING=1 arrived
	Phase     Phase // the last of them to arrive; PhaseNone if none did

	Status           *string        // the latest STATUS=, nil if none
	Pings            int            // WATCHDOG=1 received
	LastPing         time.Time      // when the latest of them was read
	WatchdogTrigger  bool           // a WATCHDOG=trigger arrived
	WatchdogInterval *time.Duration // the latest WATCHDOG_USEC=
	ExtendTimeout    *time.Duration // the latest EXTEND_TIMEOUT_USEC=

	Refused int // datagrams refused: sender, size or form
	Dropped int // datagrams dropped over the rate bound
}

// Changed reports whether u holds anything for the supervisor to act on.
func (u Update) Changed() bool {
	return u.Ready || u.Reloading || u.Stopping || u.Status != nil || u.Pings > 0 ||
		u.WatchdogTrigger || u.WatchdogInterval != nil || u.ExtendTimeout != nil
}

// Listener receives sd_notify messages on an abstract unix datagram
// socket.
//
// Abstract, not a path: an abstract socket needs no writable directory
// (read-only root file systems are common in Kubernetes), leaves no file
// behind when vigil is killed, and has no file permissions to get wrong
// when the child runs as another user. The catch is that abstract names
// belong to the network namespace, which all containers of a pod (and a
// host-network container with the whole host) share: so the name carries
// 64 random bits and a bind that collides is retried under a new name,
// and no message is trusted for reaching the socket, only for the
// sender's credentials. A sender in another pid namespace (a neighbour
// container) arrives with pid 0 and is refused.
type Listener struct {
	f      *os.File
	raw    syscall.RawConn
	name   string
	cfg    Config
	wake   chan struct{}
	closed atomic.Bool

	mu      sync.Mutex
	pending Update

	// Used by the reading goroutine only.
	bucket   bucket
	dropping bool // inside a run of dropped datagrams
}

// Listen opens the socket. Call Serve (in a goroutine) to read it, and
// give the child NOTIFY_SOCKET=Socket().
func Listen(cfg Config) (*Listener, error) {
	if cfg.Burst <= 0 {
		cfg.Burst = RateBurst
	}
	if cfg.Rate <= 0 {
		cfg.Rate = RatePerSecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	// Before bind, so that no datagram can arrive without credentials.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("notify socket: SO_PASSCRED: %w", err)
	}
	name, err := bindAbstract(fd)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	// Non-blocking, so os.File hands it to the runtime's poller: the
	// reader sleeps in the poller without holding a thread.
	f := os.NewFile(uintptr(fd), name)
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	return &Listener{
		f: f, raw: raw, name: name, cfg: cfg, wake: make(chan struct{}, 1),
		bucket: bucket{burst: float64(cfg.Burst), rate: cfg.Rate, tokens: float64(cfg.Burst), last: cfg.Now()},
	}, nil
}

// bindAbstract binds fd to "@vigil-notify-" and 16 random hex digits.
// The name need not be secret (trust comes from the sender's credentials,
// not from reaching the socket), only unlikely to collide: the runtime's
// randomly seeded generator does, where crypto/rand would link a whole
// cryptographic module into every vigil.
func bindAbstract(fd int) (string, error) {
	var err error
	for range 8 {
		name := fmt.Sprintf("@vigil-notify-%016x", rand.Uint64())
		if err = unix.Bind(fd, &unix.SockaddrUnix{Name: name}); err == nil {
			return name, nil
		}
		if !errors.Is(err, unix.EADDRINUSE) {
			break
		}
	}
	return "", fmt.Errorf("notify socket: bind: %w", err)
}

// Socket is the value of NOTIFY_SOCKET for the child: "@" and the
// abstract name, as sd_notify(3) spells abstract sockets.
func (l *Listener) Socket() string { return l.name }

// Wake has a value whenever an Update with changes is waiting. It holds
// at most one: the supervisor calls Take once per wake-up and gets
// everything that arrived until then.
func (l *Listener) Wake() <-chan struct{} { return l.wake }

// Take returns what arrived since the last Take and starts afresh. A
// message that arrives between a wake-up and its Take is in that Take and
// leaves another wake-up behind, whose Take may then hold nothing new.
func (l *Listener) Take() Update {
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.pending
	l.pending = Update{}
	return u
}

// Close closes the socket; Serve returns.
func (l *Listener) Close() error {
	l.closed.Store(true)
	return l.f.Close()
}

// Serve reads datagrams until Close, then returns nil. It never blocks
// anyone but itself: senders are never made to wait on the supervisor,
// and the supervisor only ever takes the mutex for a copy. It returns an
// error only when the socket itself fails; notifications then stop, and
// the supervisor goes on without them.
func (l *Listener) Serve() error {
	buf := make([]byte, MaxMessage)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred)+unix.CmsgSpace(4*maxFDs))
	for {
		var n, oobn, flags int
		var rerr error
		err := l.raw.Read(func(fd uintptr) bool {
			for {
				n, oobn, flags, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_CMSG_CLOEXEC)
				if rerr != unix.EINTR {
					return rerr != unix.EAGAIN
				}
			}
		})
		if err != nil {
			if l.closed.Load() {
				return nil
			}
			return fmt.Errorf("notify socket: %w", err)
		}
		if rerr != nil {
			if l.closed.Load() {
				return nil
			}
			return fmt.Errorf("notify socket: recvmsg: %w", rerr)
		}
		l.handle(buf[:n], oob[:oobn], flags)
	}
}

// handle judges and applies one datagram. Every descriptor it carries is
// closed, whatever becomes of the message: kept, they would pile up in
// vigil, and closing them is also what a sender's BARRIER=1 waits for.
func (l *Listener) handle(b, oob []byte, flags int) {
	cred, fds := controls(oob)
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	now := l.cfg.Now()
	// A sender in another pid namespace (a neighbour container of the pod,
	// which sees the abstract socket too) costs nothing to refuse and
	// spends no token: it must not starve the child's own messages.
	if cred == nil || cred.Pid <= 0 {
		l.mu.Lock()
		l.pending.Refused++
		l.mu.Unlock()
		l.cfg.Log.Debug("notify message refused", "pid", 0, "reason", "no sender in vigil's pid namespace")
		return
	}
	if !l.bucket.take(now) {
		l.mu.Lock()
		l.pending.Dropped++
		l.mu.Unlock()
		if !l.dropping {
			l.dropping = true
			l.cfg.Log.Debug("notify messages arrive faster than the bound; dropping them until the rate falls",
				"burst", l.cfg.Burst, "per_second", l.cfg.Rate)
		}
		return
	}
	l.dropping = false
	pid := 0
	if cred != nil {
		pid = int(cred.Pid)
	}
	reason := ""
	switch {
	case flags&unix.MSG_TRUNC != 0:
		reason = ErrTooLarge.Error()
	case flags&unix.MSG_CTRUNC != 0:
		reason = "control data cut short"
	case pid <= 0:
		reason = "no sender in vigil's pid namespace"
	case l.cfg.Accept == nil || !l.cfg.Accept(pid):
		reason = "sender is not in vigil's process tree"
	}
	var m Message
	if reason == "" {
		var err error
		if m, err = Parse(b); err != nil {
			reason = err.Error()
		}
	}
	if reason != "" {
		l.mu.Lock()
		l.pending.Refused++
		l.mu.Unlock()
		l.cfg.Log.Debug("notify message refused", "pid", pid, "reason", reason)
		return
	}
	if len(m.Invalid) > 0 {
		l.cfg.Log.Debug("notify lines refused", "pid", pid, "lines", m.Invalid)
	}
	if len(m.Unknown) > 0 {
		l.cfg.Log.Debug("notify keys ignored", "pid", pid, "keys", m.Unknown)
	}
	if m.MainPID != 0 {
		l.cfg.Log.Debug("MAINPID ignored: vigil's main process is the one it started", "pid", pid, "mainpid", m.MainPID)
	}
	if l.merge(m, now) {
		if l.cfg.Notify != nil {
			l.cfg.Notify()
			return
		}
		select {
		case l.wake <- struct{}{}:
		default: // a wake-up is pending; the Take it leads to sees this too
		}
	}
}

// merge adds m to the pending Update and reports whether it changed it.
func (l *Listener) merge(m Message, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	u := &l.pending
	u.Ready = u.Ready || m.Ready
	u.Reloading = u.Reloading || m.Reloading
	u.Stopping = u.Stopping || m.Stopping
	if m.Phase != PhaseNone {
		u.Phase = m.Phase
	}
	if m.Status != nil {
		u.Status = m.Status
	}
	if m.Pings > 0 {
		u.Pings += m.Pings
		u.LastPing = now
	}
	u.WatchdogTrigger = u.WatchdogTrigger || m.WatchdogTrigger
	if m.WatchdogInterval != nil {
		u.WatchdogInterval = m.WatchdogInterval
	}
	if m.ExtendTimeout != nil {
		u.ExtendTimeout = m.ExtendTimeout
	}
	return m.Ready || m.Reloading || m.Stopping || m.Status != nil || m.Pings > 0 ||
		m.WatchdogTrigger || m.WatchdogInterval != nil || m.ExtendTimeout != nil
}

// controls reads the credentials and the descriptors out of a datagram's
// control data. It walks the headers one by one and keeps what it read
// before anything malformed, so that no descriptor escapes being closed.
func controls(oob []byte) (*unix.Ucred, []int) {
	var cred *unix.Ucred
	var fds []int
	for len(oob) >= unix.SizeofCmsghdr {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			break
		}
		oob = rest
		if h.Level != unix.SOL_SOCKET {
			continue
		}
		c := &unix.SocketControlMessage{Header: h, Data: data}
		switch h.Type {
		case unix.SCM_CREDENTIALS:
			if uc, err := unix.ParseUnixCredentials(c); err == nil {
				cred = uc
			}
		case unix.SCM_RIGHTS:
			if len(data)%4 != 0 {
				break // the kernel writes whole descriptors; this is not its data
			}
			if rights, err := unix.ParseUnixRights(c); err == nil {
				fds = append(fds, rights...)
			}
		}
	}
	return cred, fds
}

// bucket is a token bucket: burst tokens, refilled at rate per second.
type bucket struct {
	burst, rate float64
	tokens      float64
	last        time.Time
}

// take spends a token if there is one.
func (b *bucket) take(now time.Time) bool {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(b.burst, b.tokens+d.Seconds()*b.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
