package pid1

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// http: targets are one HTTP/1.1 GET written by hand: net/http would add
// 3.7 MB to a 5 MB binary (README, Benchmarks) for a request line and a
// status code. What it reads is the status line only: no headers, no
// body, no redirects followed, no TLS.

// statusLineMax is the most of a response read while looking for its
// status code: a peer that sends without end cannot keep a check busy.
const statusLineMax = 512

// parseHTTPTarget reads what follows "http:" in a target: HOST[:PORT][/PATH],
// or the same after "//" as in a URL. PORT defaults to 80 and PATH to "/".
func parseHTTPTarget(s, rest string) (Target, error) {
	rest = strings.TrimPrefix(rest, "//")
	hostport, path := rest, "/"
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		hostport, path = rest[:i], rest[i:]
	}
	// Both go into the request as they are: no byte may end a line.
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; c <= ' ' || c >= 0x7f {
			return Target{}, fmt.Errorf("target %q: printable ASCII only (byte %#x); percent-encode the rest of the path", s, c)
		}
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		// No port: 80, if what is there is a host alone.
		host, port = hostport, "80"
		if h, ok := strings.CutPrefix(host, "["); ok && strings.HasSuffix(h, "]") {
			host = h[:len(h)-1]
		} else if strings.Contains(host, ":") {
			return Target{}, fmt.Errorf("target %q: want http:HOST:PORT/PATH", s)
		}
	}
	if strings.ContainsAny(host, "[]") {
		return Target{}, fmt.Errorf("target %q: want http:HOST:PORT/PATH", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return Target{}, fmt.Errorf("target %q: bad port %q", s, port)
	}
	if host == "" {
		host = "localhost"
	}
	return Target{Kind: "http", Addr: net.JoinHostPort(host, port), Path: path}, nil
}

// dialled reports whether t is checked over the network (and so by a
// dialling goroutine with backoff) rather than watched as a path.
func (t Target) dialled() bool { return t.Kind == "tcp" || t.Kind == "http" }

// checkDialled checks a tcp: or http: target once and says why it holds
// or not. timeout bounds the connection and, for http:, the exchange
// (request written, status line read) again: the callers give 1s, as
// Kubernetes' httpGet probe does by default.
func checkDialled(t Target, timeout time.Duration) (string, bool) {
	c, err := dialTCP(t.Addr, timeout)
	if err != nil {
		return err.Error(), false
	}
	defer c.Close()
	if t.Kind == "tcp" {
		return "connected to " + t.Addr, true
	}
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err.Error(), false
	}
	req := "GET " + t.Path + " HTTP/1.1\r\nHost: " + t.Addr + "\r\nUser-Agent: vigil\r\nAccept: */*\r\nConnection: close\r\n\r\n"
	if err := sendQuietly(c, []byte(req)); err != nil {
		return err.Error(), false
	}
	buf := make([]byte, 0, statusLineMax)
	for len(buf) < cap(buf) {
		n, err := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if code, perr := parseStatusLine(buf); !errors.Is(perr, errShortStatus) {
			if perr != nil {
				return perr.Error(), false
			}
			return fmt.Sprintf("GET %s: status %d", t.Path, code), code >= 200 && code <= 399
		}
		if err != nil {
			return fmt.Sprintf("GET %s: no status line: %v", t.Path, err), false
		}
	}
	return fmt.Sprintf("GET %s: no status line in %d bytes", t.Path, statusLineMax), false
}

// sendQuietly writes b to c with MSG_NOSIGNAL: a write to a peer that has
// closed raises SIGPIPE, and vigil catches every signal to forward it to
// the child, so its own must never be raised.
func sendQuietly(c net.Conn, b []byte) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return fmt.Errorf("%T: no descriptor to send on", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Write(func(fd uintptr) bool {
		for len(b) > 0 {
			n, err := unix.SendmsgN(int(fd), b, nil, nil, unix.MSG_NOSIGNAL)
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				return false // the poller waits, within the deadline
			case err != nil:
				serr = fmt.Errorf("write: %w", err)
				return true
			}
			b = b[n:]
		}
		return true
	})
	if err != nil {
		return err
	}
	return serr
}

// errShortStatus says the response so far is too short to hold a status
// code: read more.
var errShortStatus = errors.New("status line incomplete")

// parseStatusLine reads the status code from the start of an HTTP/1.x
// response, "HTTP/1.1 200 OK\r\n": the version, one space, three digits,
// then a space or the end of the line. It returns errShortStatus while b
// could still become a valid status line.
func parseStatusLine(b []byte) (int, error) {
	const prefix = "HTTP/1."
	for i := 0; i < len(b) && i < len(prefix); i++ {
		if b[i] != prefix[i] {
			return 0, fmt.Errorf("not an HTTP/1 response: %q", oneLine(string(b[:min(len(b), 32)])))
		}
	}
	// "HTTP/1.x 200" and the byte after the code.
	if len(b) < len("HTTP/1.x 200")+1 {
		return 0, errShortStatus
	}
	if v := b[7]; v < '0' || v > '9' || b[8] != ' ' {
		return 0, fmt.Errorf("bad status line: %q", oneLine(string(b[:min(len(b), 32)])))
	}
	code := 0
	for _, c := range b[9:12] {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("bad status code: %q", oneLine(string(b[9:12])))
		}
		code = code*10 + int(c-'0')
	}
	if after := b[12]; after != ' ' && after != '\r' && after != '\n' {
		return 0, fmt.Errorf("bad status code: %q", oneLine(string(b[9:13])))
	}
	if code < 100 {
		return 0, fmt.Errorf("bad status code %d", code)
	}
	return code, nil
}
