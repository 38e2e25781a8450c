package notify

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
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
// than costing vigil supervisor wake-ups. Only senders of the tree
// spend these tokens: a stranger is refused before it can take one.
const (
	RateBurst     = 64
	RatePerSecond = 32
)

// The read bound: the listener reads at most a burst of ReadBurst
// datagrams, then ReadPerSecond, whoever sends them. A flood from anyone
// who can reach the socket then costs vigil a bounded share of a core
// (each datagram is a recvmsg, a pidfd and a few lookups); what waits
// beyond it waits in the kernel's queue, where the flooder's own sends
// block. It is far above what a tree sends within RateBurst and
// RatePerSecond.
const (
	ReadBurst     = 256
	ReadPerSecond = 1024
)

// maxFDs is the kernel's limit of descriptors in one message
// (SCM_MAX_FD); the control buffer has room for all of them, so every
// descriptor a sender attaches arrives and is closed, none is left half
// received (a descriptor the kernel drops for lack of room is released
// by the receiving thread, and its release may block as a close would).
const maxFDs = 253

// closers is how many goroutines close the descriptors that arrive
// with datagrams, and closeBacklog how many may wait for them. A close
// may block (a TCP socket with SO_LINGER and unsent data waits up to its
// linger time, a file on a stuck FUSE or NFS mount may never return):
// never on the supervisor's loop, and never on the reader while a closer
// is free.
const (
	closers      = 4
	closeBacklog = 1024
)

// socketName is the socket's name inside its directory.
const socketName = "notify"

// DefaultDirs are the directories in which Listen makes the socket's
// own directory, the first that works: /run, $TMPDIR, /tmp, /dev/shm
// (which Docker and Kubernetes mount writable even on a read-only root).
func DefaultDirs() []string {
	dirs := []string{"/run"}
	if d := os.Getenv("TMPDIR"); d != "" && filepath.IsAbs(d) {
		dirs = append(dirs, d)
	}
	return append(dirs, "/tmp", "/dev/shm")
}

// Config is what a Listener needs from its caller.
type Config struct {
	// Accept decides whether a message from this sender counts; vigil
	// passes Tree(its own pid). Nil accepts no one.
	Accept func(Sender) bool
	// Log gets debug lines about refused, dropped and ignored messages.
	// Nil discards them.
	Log *slog.Logger
	// Burst and Rate bound the datagrams of accepted senders handled (0:
	// RateBurst and RatePerSecond); Now is the clock for that (nil:
	// time.Now).
	Burst int
	Rate  float64
	Now   func() time.Time
	// ReadBurst and ReadRate bound the datagrams read at all (0:
	// ReadBurst and ReadPerSecond), on the real clock.
	ReadBurst int
	ReadRate  float64
	// Notify, if set, is called whenever there is something to Take:
	// vigil posts to its one intake, which wakes the supervisor once for
	// any number of calls before its Take.
	Notify func()
	// Dirs are where the socket's directory may be made, tried in order;
	// nil means DefaultDirs, an empty list none. Where none works the
	// socket is abstract.
	Dirs []string
	// Owner, if set, is the user the socket's directory and the socket
	// belong to: the child's, when it runs as another user. Nil: the
	// caller's.
	Owner *syscall.Credential
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

// Listener receives sd_notify messages on a unix datagram socket.
//
// The socket is a path in a fresh directory of mode 0700 that belongs to
// the child's user: in a container no other container can reach it, even
// one sharing the network namespace (a pod), since the path is in this
// container's file system, and within the container only that user and
// root can. Where no directory is writable (a scratch image on a
// read-only root) it is abstract instead, "@vigil-notify-" and 64 random
// bits, which every process of the network namespace can reach and read
// the name of in /proc/net/unix.
//
// Either way no message is trusted for reaching the socket, only for its
// sender, as the kernel names it (Config.Accept); a sender in another PID
// namespace arrives with pid 0 and is refused before anything else.
type Listener struct {
	f      *os.File
	raw    syscall.RawConn
	name   string
	dir    string // the socket's own directory; "" for an abstract socket
	cfg    Config
	closed atomic.Bool

	mu      sync.Mutex
	pending Update

	closeq chan int // descriptors for the closers

	// Used by the reading goroutine only.
	bucket   bucket
	reads    bucket // the read bound, on the real clock
	logs     bucket // refusal lines, on the real clock
	dropping bool   // inside a run of dropped datagrams
	hushed   int    // refusal lines left out since the last one
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
	if cfg.ReadBurst <= 0 {
		cfg.ReadBurst = ReadBurst
	}
	if cfg.ReadRate <= 0 {
		cfg.ReadRate = ReadPerSecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Dirs == nil {
		cfg.Dirs = DefaultDirs()
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
	// The sender's pidfd (Linux 6.5): it names the sender even after it
	// exited. Older kernels refuse the option; the pid must do there.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSPIDFD, 1)
	name, dir, err := bindPath(fd, cfg.Dirs, cfg.Owner)
	if err != nil {
		cfg.Log.Warn("no directory for a private notify socket; using an abstract one, which every process of the network namespace can reach",
			"tried", cfg.Dirs, "err", err)
		if name, err = bindAbstract(fd); err != nil {
			unix.Close(fd)
			return nil, err
		}
	}
	// Non-blocking, so os.File hands it to the runtime's poller: the
	// reader sleeps in the poller without holding a thread.
	f := os.NewFile(uintptr(fd), name)
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		removeDir(dir)
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	now := time.Now()
	return &Listener{
		f: f, raw: raw, name: name, dir: dir, cfg: cfg,
		closeq: make(chan int, closeBacklog),
		bucket: bucket{burst: float64(cfg.Burst), rate: cfg.Rate, tokens: float64(cfg.Burst), last: cfg.Now()},
		reads:  bucket{burst: float64(cfg.ReadBurst), rate: cfg.ReadRate, tokens: float64(cfg.ReadBurst), last: now},
		logs:   bucket{burst: 16, rate: 1, tokens: 16, last: now},
	}, nil
}

// bindPath binds fd to a socket in a new directory of mode 0700 in the
// first of dirs where one can be made, both given to owner. It returns
// the socket's path and its directory.
func bindPath(fd int, dirs []string, owner *syscall.Credential) (string, string, error) {
	var errs []error
	for _, base := range dirs {
		if owner != nil && !passable(base, owner) {
			errs = append(errs, fmt.Errorf("%s: user %d cannot pass through it", base, owner.Uid))
			continue
		}
		dir, err := os.MkdirTemp(base, "vigil-notify-")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		path := filepath.Join(dir, socketName)
		if err := bindIn(fd, dir, path, owner); err != nil {
			removeDir(dir)
			errs = append(errs, err)
			continue
		}
		return path, dir, nil
	}
	if len(errs) == 0 {
		return "", "", errors.New("no directory to make it in")
	}
	// One line for the log, not errors.Join's one per directory.
	msgs := make([]string, len(errs))
	for i, err := range errs {
		msgs[i] = err.Error()
	}
	return "", "", errors.New(strings.Join(msgs, "; "))
}

// passable reports whether owner may pass through base and every
// directory above it: the child must reach the socket by its path.
func passable(base string, owner *syscall.Credential) bool {
	for d := filepath.Clean(base); ; d = filepath.Dir(d) {
		var st unix.Stat_t
		if unix.Stat(d, &st) != nil {
			return false
		}
		switch {
		case st.Uid == owner.Uid:
			if st.Mode&0o100 == 0 {
				return false
			}
		case st.Gid == owner.Gid:
			if st.Mode&0o010 == 0 {
				return false
			}
		case st.Mode&0o001 == 0:
			return false
		}
		if d == "/" {
			return true
		}
	}
}

// bindIn binds fd to path in dir, made private to owner.
func bindIn(fd int, dir, path string, owner *syscall.Credential) error {
	if len(path) >= len(unix.RawSockaddrUnix{}.Path) {
		return fmt.Errorf("%s: longer than a socket address can be", path)
	}
	// MkdirTemp makes it 0700, but a umask could take more away.
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		return fmt.Errorf("bind %s: %w", path, err)
	}
	// Sending needs write permission on the socket; the directory is
	// the gate.
	if err := os.Chmod(path, 0o600); err != nil {
		return err
	}
	if owner != nil {
		for _, p := range []string{path, dir} {
			if err := os.Lchown(p, int(owner.Uid), int(owner.Gid)); err != nil {
				return err
			}
		}
	}
	return nil
}

// removeDir removes the socket's directory and the socket in it.
func removeDir(dir string) {
	if dir == "" {
		return
	}
	os.Remove(filepath.Join(dir, socketName))
	os.Remove(dir)
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

// Socket is the value of NOTIFY_SOCKET for the child: the socket's path,
// or "@" and the abstract name, as sd_notify(3) spells abstract sockets.
func (l *Listener) Socket() string { return l.name }

// Take returns what arrived since the last Take and starts afresh. A
// message that arrives between a wake-up (Config.Notify) and its Take is
// in that Take and leaves another wake-up behind, whose Take may then hold
// nothing new.
func (l *Listener) Take() Update {
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.pending
	l.pending = Update{}
	return u
}

// drainMax bounds what Close reads from the queue: more than the kernel
// queues (net.unix.max_dgram_qlen, 512 at most by default), so a queue is
// read to its end, but a bound all the same.
const drainMax = 4096

// Close closes the socket and removes its directory; Serve returns. It
// first stops the socket from receiving and reads what is still queued:
// a descriptor left in the queue would be released by the close itself,
// on the caller's thread, and that release can block (a TCP socket with
// SO_LINGER). What it reads is closed on a goroutine Close does not wait
// for; the process's exit releases whatever that has not closed yet,
// without lingering.
func (l *Listener) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	var fds []int
	_ = l.raw.Control(func(fd uintptr) {
		_ = unix.Shutdown(int(fd), unix.SHUT_RD)
		oob := make([]byte, oobSize)
		for range drainMax {
			_, oobn, _, _, err := unix.Recvmsg(int(fd), nil, oob, unix.MSG_DONTWAIT|unix.MSG_CMSG_CLOEXEC)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				break
			}
			c := controls(oob[:oobn])
			if c.pidfd >= 0 {
				unix.Close(c.pidfd)
			}
			fds = append(fds, c.fds...)
		}
	})
	if len(fds) > 0 {
		go closeAll(fds)
	}
	err := l.f.Close()
	removeDir(l.dir)
	return err
}

// closeAll closes fds, each a socket first told not to linger: at
// Close nobody is left to want their unsent data.
func closeAll(fds []int) {
	for _, fd := range fds {
		noLinger(fd)
		unix.Close(fd)
	}
}

// noLinger makes closing fd, if it is a socket, return at once: a TCP
// socket with SO_LINGER and unsent data would otherwise hold its close
// for the linger time. It changes the socket for every holder, so it is
// done only to descriptors of senders who have no claim on them.
func noLinger(fd int) {
	if _, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil {
		return // not a socket
	}
	_ = unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
}

// oobSize holds the credentials, the pidfd and SCM_MAX_FD descriptors.
var oobSize = unix.CmsgSpace(unix.SizeofUcred) + unix.CmsgSpace(4) + unix.CmsgSpace(4*maxFDs)

// Serve reads datagrams until Close, then returns nil. It never blocks
// anyone but itself: senders are never made to wait on the supervisor,
// and the supervisor only ever takes the mutex for a copy. It starts the
// goroutines that close the descriptors datagrams carry, which end after
// it. It returns an error only when the socket itself fails;
// notifications then stop, and the supervisor goes on without them.
func (l *Listener) Serve() error {
	for range closers {
		go func() {
			for fd := range l.closeq {
				unix.Close(fd)
			}
		}()
	}
	defer close(l.closeq)
	buf := make([]byte, MaxMessage)
	oob := make([]byte, oobSize)
	for {
		if !l.reads.take(time.Now()) {
			// Over the read bound: leave the rest in the kernel's queue
			// until tokens come back (16 of them, so that a flood is
			// read in small batches, not one wake-up per datagram).
			time.Sleep(time.Duration(float64(time.Second) * 16 / l.cfg.ReadRate))
			if l.closed.Load() {
				return nil
			}
			continue
		}
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
		if l.closed.Load() {
			// Shut down by Close: what was read is Close's to drain
			// (an empty read), or a datagram that came just before.
			c := controls(oob[:oobn])
			if c.pidfd >= 0 {
				unix.Close(c.pidfd)
			}
			if len(c.fds) > 0 {
				go closeAll(c.fds)
			}
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("notify socket: recvmsg: %w", rerr)
		}
		l.handle(buf[:n], oob[:oobn], flags)
	}
}

// handle judges and applies one datagram. Every descriptor it carries is
// closed, whatever becomes of the message, by the closers: kept, they
// would pile up in vigil, closing them is also what a sender's BARRIER=1
// waits for, and a close can block.
func (l *Listener) handle(b, oob []byte, flags int) {
	c := controls(oob)
	s := Sender{Pid: -1, pidfd: c.pidfd}
	if c.cred != nil {
		s.Pid, s.Uid, s.Gid = int(c.cred.Pid), int(c.cred.Uid), int(c.cred.Gid)
	}
	stranger := true
	defer func() {
		if s.pidfd >= 0 {
			unix.Close(s.pidfd) // the kernel's own pidfd: its close never blocks
		}
		for _, fd := range c.fds {
			if stranger {
				noLinger(fd)
			}
			l.closeq <- fd
		}
	}()
	now := l.cfg.Now()
	// A sender in another pid namespace (a neighbour container) costs
	// nothing to refuse, and no sender outside the tree spends a token:
	// neither can starve the child's own messages.
	if s.Pid <= 0 {
		l.refuse(0, "no sender in vigil's pid namespace")
		return
	}
	if l.cfg.Accept == nil || !l.cfg.Accept(s) {
		l.refuse(s.Pid, "sender is not in vigil's process tree")
		return
	}
	stranger = false
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
	var m Message
	var err error
	switch {
	case flags&unix.MSG_TRUNC != 0:
		err = ErrTooLarge
	case flags&unix.MSG_CTRUNC != 0:
		err = errors.New("control data cut short")
	default:
		m, err = Parse(b)
	}
	if err != nil {
		l.refuse(s.Pid, err.Error())
		return
	}
	pid := s.Pid
	if len(m.Invalid) > 0 {
		l.cfg.Log.Debug("notify lines refused", "pid", pid, "lines", m.Invalid)
	}
	if len(m.Unknown) > 0 {
		l.cfg.Log.Debug("notify keys ignored", "pid", pid, "keys", m.Unknown)
	}
	if m.MainPID != 0 {
		l.cfg.Log.Debug("MAINPID ignored: vigil's main process is the one it started", "pid", pid, "mainpid", m.MainPID)
	}
	if l.merge(m, now) && l.cfg.Notify != nil {
		l.cfg.Notify()
	}
}

// refuse counts a refused datagram and logs it, within a bound of its
// own: a flood of refusals must not become a flood of log lines.
func (l *Listener) refuse(pid int, reason string) {
	l.mu.Lock()
	l.pending.Refused++
	l.mu.Unlock()
	if !l.logs.take(time.Now()) {
		l.hushed++
		return
	}
	if l.hushed > 0 {
		l.cfg.Log.Debug("notify message refused", "pid", pid, "reason", reason, "unlogged_before", l.hushed)
		l.hushed = 0
		return
	}
	l.cfg.Log.Debug("notify message refused", "pid", pid, "reason", reason)
}

// merge adds m, read at now, to the pending Update and reports whether
// it holds anything to act on (Update.Changed, the one predicate).
func (l *Listener) merge(m Message, now time.Time) bool {
	d := Update{Ready: m.Ready, Reloading: m.Reloading, Stopping: m.Stopping, Phase: m.Phase,
		Status: m.Status, Pings: m.Pings, WatchdogTrigger: m.WatchdogTrigger,
		WatchdogInterval: m.WatchdogInterval, ExtendTimeout: m.ExtendTimeout}
	if d.Pings > 0 {
		d.LastPing = now
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending.add(d)
	return d.Changed()
}

// add merges the news d, which came after u, into u: flags stay set, the
// latest value of each setting wins, pings add up. The counts of refused
// and dropped datagrams are not news; they go into the pending Update as
// they happen.
func (u *Update) add(d Update) {
	u.Ready = u.Ready || d.Ready
	u.Reloading = u.Reloading || d.Reloading
	u.Stopping = u.Stopping || d.Stopping
	if d.Phase != PhaseNone {
		u.Phase = d.Phase
	}
	if d.Status != nil {
		u.Status = d.Status
	}
	if d.Pings > 0 {
		u.Pings += d.Pings
		u.LastPing = d.LastPing
	}
	u.WatchdogTrigger = u.WatchdogTrigger || d.WatchdogTrigger
	if d.WatchdogInterval != nil {
		u.WatchdogInterval = d.WatchdogInterval
	}
	if d.ExtendTimeout != nil {
		u.ExtendTimeout = d.ExtendTimeout
	}
}

// control is what a datagram's control data holds.
type control struct {
	cred  *unix.Ucred
	pidfd int // -1 if none
	fds   []int
}

// controls reads the credentials, the sender's pidfd and the descriptors
// out of a datagram's control data. It walks the headers one by one and
// keeps what it read before anything malformed, so that no descriptor
// escapes being closed.
func controls(oob []byte) control {
	c := control{pidfd: -1}
	for len(oob) >= unix.SizeofCmsghdr {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			break
		}
		oob = rest
		if h.Level != unix.SOL_SOCKET {
			continue
		}
		m := &unix.SocketControlMessage{Header: h, Data: data}
		switch h.Type {
		case unix.SCM_CREDENTIALS:
			if uc, err := unix.ParseUnixCredentials(m); err == nil {
				c.cred = uc
			}
		case unix.SCM_PIDFD:
			// A negative value is the kernel's error for a sender it
			// could not make a pidfd for (gone, before Linux 6.16).
			if len(data) == 4 {
				if fd := int(int32(binary.NativeEndian.Uint32(data))); fd >= 0 {
					c.pidfd = fd
				}
			}
		case unix.SCM_RIGHTS:
			if len(data)%4 != 0 {
				break // the kernel writes whole descriptors; this is not its data
			}
			if rights, err := unix.ParseUnixRights(m); err == nil {
				c.fds = append(c.fds, rights...)
			}
		}
	}
	return c
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
