package notify

import (
	"fmt"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// SendTimeout is how long Send waits for room in a service manager's
// queue. Its reader is a service manager that reads at once; a manager
// that does not read for this long is stuck, and a PID 1 must not be
// stuck with it.
const SendTimeout = 200 * time.Millisecond

// Upstream is the service manager vigil itself reports to: the systemd
// that runs vigil as a Type=notify service, or podman with
// --sdnotify=container.
type Upstream struct {
	addr unix.SockaddrUnix
}

// NewUpstream reads the value of NOTIFY_SOCKET: an absolute path, or
// "@name" for an abstract socket, as sd_notify(3) defines. An empty value
// means there is no upstream: it returns nil and no error.
func NewUpstream(socket string) (*Upstream, error) {
	switch {
	case socket == "":
		return nil, nil
	case strings.IndexByte(socket, 0) >= 0:
		return nil, fmt.Errorf("NOTIFY_SOCKET %q: holds a NUL byte", socket)
	case socket[0] != '/' && socket[0] != '@':
		// sd_notify also knows vsock: addresses, which a container does
		// not use; refuse them rather than send to the wrong place.
		return nil, fmt.Errorf("NOTIFY_SOCKET %q: want an absolute path or @name", socket)
	case socket == "@":
		return nil, fmt.Errorf("NOTIFY_SOCKET %q: empty abstract name", socket)
	case len(socket) > len(unix.RawSockaddrUnix{}.Path)-1:
		return nil, fmt.Errorf("NOTIFY_SOCKET %q: longer than a socket address can be", socket)
	}
	return &Upstream{addr: unix.SockaddrUnix{Name: socket}}, nil
}

// Send sends msg as one datagram, waiting at most timeout for room in the
// receiver's queue. A full queue, a missing socket or a refusal is an
// error for the caller to log; nothing is retried.
func (u *Upstream) Send(msg string, timeout time.Duration) error {
	if len(msg) > MaxMessage {
		return fmt.Errorf("notify %s: %w", u.addr.Name, ErrTooLarge)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("notify %s: socket: %w", u.addr.Name, err)
	}
	defer unix.Close(fd)
	deadline := time.Now().Add(timeout)
	for {
		err = unix.Sendmsg(fd, []byte(msg), nil, &u.addr, unix.MSG_NOSIGNAL)
		if err == nil {
			return nil
		}
		if err == unix.EINTR {
			continue
		}
		if err != unix.EAGAIN {
			return fmt.Errorf("notify %s: %w", u.addr.Name, err)
		}
		// The receiver's queue is full: wait for room, within the bound.
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("notify %s: queue full for %s: %w", u.addr.Name, timeout, os.ErrDeadlineExceeded)
		}
		ms := int((left + time.Millisecond - 1) / time.Millisecond)
		if _, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}, ms); err != nil && err != unix.EINTR {
			return fmt.Errorf("notify %s: poll: %w", u.addr.Name, err)
		}
	}
}

// Relay is the part of u that vigil passes upstream: READY=1, STATUS=,
// STOPPING=1 and one WATCHDOG=1 for any number of pings. RELOADING=1 is
// not passed on: systemd wants it with a MONOTONIC_USEC= that vigil
// cannot vouch for, and a reload inside the container is no business of
// the service manager outside. It is the zero Message when there is
// nothing to pass on.
func (u Update) Relay() Message {
	var m Message
	m.Ready, m.Stopping, m.Status = u.Ready, u.Stopping, u.Status
	// Stopping comes last unless a READY=1 came after it: when a reload
	// came last, the order of the other two is not known, and a service
	// that said it is stopping is taken at its word.
	switch {
	case u.Stopping && u.Phase != PhaseReady:
		m.Phase = PhaseStopping
	case u.Ready:
		m.Phase = PhaseReady
	}
	if u.Pings > 0 {
		m.Pings = 1
	}
	return m
}

// Datagrams is m encoded (Encode) as datagrams of at most MaxMessage
// bytes each, in order, split between lines: what the relay merged from
// several messages (READY=1 from one, a STATUS= of 4096 bytes from the
// next) can be longer than one datagram, and is passed on, never
// refused. A STATUS= line is itself never longer than the datagram it
// came in; one made longer (by a caller, not a sender) is cut to fit.
func (m Message) Datagrams() []string {
	enc := m.Encode()
	if enc == "" {
		return nil
	}
	var out []string
	var cur strings.Builder
	for line := range strings.SplitSeq(enc, "\n") {
		if len(line) > MaxMessage {
			cut := MaxMessage
			for cut > 0 && !utf8.RuneStart(line[cut]) {
				cut--
			}
			line = line[:cut]
		}
		if cur.Len() > 0 && cur.Len()+1+len(line) > MaxMessage {
			out = append(out, cur.String())
			cur.Reset()
		}
		if cur.Len() > 0 {
			cur.WriteByte('\n')
		}
		cur.WriteString(line)
	}
	return append(out, cur.String())
}
