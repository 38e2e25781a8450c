package pid1

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Listen is one --listen socket: vigil opens it before the first run and
// holds it for its whole life, so that connections made while the child
// restarts wait in the kernel's backlog for the next run.
type Listen struct {
	Name    string // in LISTEN_FDNAMES; "listen" unless given as NAME=
	Network string // "tcp" or "unix"
	Addr    string // HOST:PORT for tcp; a path, or @name (abstract), for unix
}

func (l Listen) String() string {
	s := l.Network + ":" + l.Addr
	if l.Name != defaultListenName {
		s = l.Name + "=" + s
	}
	return s
}

// defaultListenName is what LISTEN_FDNAMES says for a --listen socket
// given no name.
const defaultListenName = "listen"

// ParseListen reads [NAME=]tcp:HOST:PORT or [NAME=]unix:PATH. NAME is what
// sd_listen_fds_with_names(3) reports: printable ASCII without ":", as
// systemd's FileDescriptorName=; an empty HOST listens on every IPv4
// address.
func ParseListen(s string) (Listen, error) {
	l := Listen{Name: defaultListenName}
	rest := s
	if name, after, ok := strings.Cut(s, "="); ok && !strings.ContainsAny(name, ":/") {
		if name == "" || len(name) > 255 || strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
			return Listen{}, fmt.Errorf("%q: a name is up to 255 printable ASCII characters, without spaces or \":\"", s)
		}
		l.Name, rest = name, after
	}
	kind, addr, _ := strings.Cut(rest, ":")
	switch kind {
	case "tcp":
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return Listen{}, fmt.Errorf("%q: want tcp:HOST:PORT: %w", s, err)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return Listen{}, fmt.Errorf("%q: bad port %q", s, port)
		}
		l.Network, l.Addr = "tcp", net.JoinHostPort(host, port)
	case "unix":
		if addr == "" || addr == "@" || strings.IndexByte(addr, 0) >= 0 || len(addr) > len(unix.RawSockaddrUnix{}.Path)-1 {
			return Listen{}, fmt.Errorf("%q: want unix:PATH (or unix:@NAME), shorter than %d bytes, without NUL", s, len(unix.RawSockaddrUnix{}.Path)-1)
		}
		l.Network, l.Addr = "unix", addr
	default:
		return Listen{}, fmt.Errorf("%q: want tcp:HOST:PORT or unix:PATH", s)
	}
	return l, nil
}

// open creates the listening socket: blocking, as a socket-activated
// service expects (an accept loop written for systemd's sockets may not
// handle EAGAIN), close-on-exec in vigil. It returns the descriptor.
func (l Listen) open() (int, error) {
	var sa unix.Sockaddr
	family := unix.AF_UNIX
	switch l.Network {
	case "tcp":
		a, err := net.ResolveTCPAddr("tcp", l.Addr)
		if err != nil {
			return -1, err
		}
		if ip4 := a.IP.To4(); ip4 != nil || a.IP == nil {
			s := &unix.SockaddrInet4{Port: a.Port}
			copy(s.Addr[:], ip4)
			sa, family = s, unix.AF_INET
		} else {
			s := &unix.SockaddrInet6{Port: a.Port}
			copy(s.Addr[:], a.IP.To16())
			if a.Zone != "" {
				if ifi, err := net.InterfaceByName(a.Zone); err == nil {
					s.ZoneId = uint32(ifi.Index)
				}
			}
			sa, family = s, unix.AF_INET6
		}
	case "unix":
		name := l.Addr
		if strings.HasPrefix(name, "@") {
			name = "\x00" + name[1:]
		} else if err := removeStaleSocket(name); err != nil {
			return -1, err
		}
		sa = &unix.SockaddrUnix{Name: name}
	default:
		panic("pid1: Listen of network " + l.Network)
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	if family != unix.AF_UNIX {
		// A restarted container binds again at once, as servers do.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("SO_REUSEADDR: %w", err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind: %w", err)
	}
	if err := unix.Listen(fd, unix.SOMAXCONN); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listen: %w", err)
	}
	return fd, nil
}

// removeStaleSocket removes a socket file left at path by an earlier
// vigil, as systemd does before binding; anything else there is an error.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case fi.Mode()&fs.ModeSocket == 0:
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	return os.Remove(path)
}

// listenNames is LISTEN_FDNAMES for n descriptors of socket activation
// (named by given, from the environment, or "unknown" as systemd says for
// a socket without a name) followed by the --listen sockets.
func listenNames(given string, n int, listen []Listen) string {
	names := make([]string, 0, n+len(listen))
	if given != "" {
		names = strings.Split(given, ":")
	}
	for len(names) < n {
		names = append(names, "unknown")
	}
	names = names[:n]
	for _, l := range listen {
		names = append(names, l.Name)
	}
	return strings.Join(names, ":")
}
