package pid1

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vigil/internal/intake"
)

func TestParseHTTPTarget(t *testing.T) {
	tests := []struct {
		in, addr, path string
	}{
		{"http:localhost:8080/healthz", "localhost:8080", "/healthz"},
		{"http://localhost:8080/healthz", "localhost:8080", "/healthz"},
		{"http:db:5432", "db:5432", "/"},
		{"http:web", "web:80", "/"},
		{"http://web/ready?full=1", "web:80", "/ready?full=1"},
		{"http::9000/x", "localhost:9000", "/x"},
		{"http:[::1]:8080/", "[::1]:8080", "/"},
		{"http://[::1]/", "[::1]:80", "/"},
	}
	for _, tt := range tests {
		tg, err := ParseTarget(tt.in)
		if err != nil || tg.Kind != "http" || tg.Addr != tt.addr || tg.Path != tt.path {
			t.Errorf("ParseTarget(%q) = %+v, %v; want http %s %s", tt.in, tg, err, tt.addr, tt.path)
		}
	}
	for _, bad := range []string{"http:", "http:x:0/", "http:x:70000/", "http:x:y/", "http:x/a b", "http:x/a\r\nHost: evil",
		"http:x/\x7f", "http:[::1/", "http:a:b:c/"} {
		if tg, err := ParseTarget(bad); err == nil {
			t.Errorf("ParseTarget(%q) = %+v, want an error", bad, tg)
		}
	}
}

func TestParseStatusLine(t *testing.T) {
	tests := []struct {
		in   string
		code int
		err  string // "" for none, "short" for errShortStatus
	}{
		{"HTTP/1.1 200 OK\r\n", 200, ""},
		{"HTTP/1.0 302 Found\r\n", 302, ""},
		{"HTTP/1.1 204\r\n", 204, ""},
		{"HTTP/1.1 503 Service Unavailable", 503, ""},
		{"HTTP/1.1 200\n", 200, ""},
		{"", 0, "short"},
		{"HTTP/1.1 20", 0, "short"},
		{"HTTP/1.1 200", 0, "short"},
		{"HTTP/1", 0, "short"},
		{"HTTP/2 200 OK\r\n", 0, "not an HTTP/1"},
		{"SSH-2.0-OpenSSH\r\n", 0, "not an HTTP/1"},
		{"HTTP/1.1 2000 OK\r\n", 0, "bad status code"},
		{"HTTP/1.1 20x OK\r\n", 0, "bad status code"},
		{"HTTP/1.1 099 OK\r\n", 0, "bad status code"},
		{"HTTP/1.x 200 OK\r\n", 0, "bad status line"},
		{"HTTP/1.1  200 OK\r\n", 0, "bad status code"},
	}
	for _, tt := range tests {
		code, err := parseStatusLine([]byte(tt.in))
		switch {
		case tt.err == "short" && !errors.Is(err, errShortStatus),
			tt.err == "" && (err != nil || code != tt.code),
			tt.err != "" && tt.err != "short" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("parseStatusLine(%q) = %d, %v; want %d, %q", tt.in, code, err, tt.code, tt.err)
		}
	}
}

// FuzzParseStatusLine: any response start gives a code from 100 to 999,
// "read more", or an error of one line; a prefix of a valid line is never
// refused, and the code does not change as more bytes arrive.
func FuzzParseStatusLine(f *testing.F) {
	for _, s := range []string{"HTTP/1.1 200 OK\r\n", "HTTP/1.0 404 Not Found\r\n", "HTTP/1.1 999\n", "HTTP/2 200", "\x00\xff", "HTTP/1.1 2"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		code, err := parseStatusLine(b)
		if err == nil && (code < 100 || code > 999) {
			t.Fatalf("parseStatusLine(%q) = %d", b, code)
		}
		if err != nil && strings.ContainsAny(err.Error(), "\r\n") {
			t.Fatalf("parseStatusLine(%q): error of more than a line: %q", b, err)
		}
		// The parser reads 13 bytes at most: longer prefixes add nothing.
		for i := range min(len(b), 16) {
			pc, perr := parseStatusLine(b[:i])
			if err == nil && perr != nil && !errors.Is(perr, errShortStatus) {
				t.Fatalf("the prefix %q of the valid %q is refused: %v", b[:i], b, perr)
			}
			if perr == nil && (err != nil || pc != code) {
				t.Fatalf("the prefix %q reads %d, the whole %q %d, %v", b[:i], pc, b, code, err)
			}
		}
	})
}

// TestCheckDialledSpeaksHTTP: a real HTTP server (net/http, in the test
// only) answers the GET; 2xx and 3xx hold (a redirect is not followed),
// 4xx and 5xx do not, a server that never answers is given up on in the
// bound, and a peer that is not HTTP does not hold.
func TestCheckDialledSpeaksHTTP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	seen := make(chan [2]string, 1) // Host and request target of each request
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		seen <- [2]string{r.Host, r.URL.RequestURI()}
		var code int
		fmt.Sscanf(r.URL.Path, "/%d", &code)
		if code == 302 {
			w.Header().Set("Location", "/500")
		}
		w.WriteHeader(code)
		fmt.Fprintln(w, "body")
	})
	go http.Serve(ln, mux)
	addr := ln.Addr().String()
	for code, want := range map[int]bool{200: true, 204: true, 302: true, 399: true, 404: false, 500: false} {
		tg, err := ParseTarget(fmt.Sprintf("http:%s/%d?q=1", addr, code))
		if err != nil {
			t.Fatal(err)
		}
		why, ok := checkDialled(tg, time.Second)
		if ok != want || !strings.Contains(why, fmt.Sprint(code)) {
			t.Errorf("GET /%d: %v %q, want %v", code, ok, why, want)
		}
		if got := <-seen; got[0] != addr || got[1] != fmt.Sprintf("/%d?q=1", code) {
			t.Errorf("the server saw Host %q and %q", got[0], got[1])
		}
	}

	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	began := time.Now()
	if why, ok := checkDialled(Target{Kind: "http", Addr: silent.Addr().String(), Path: "/"}, 200*time.Millisecond); ok {
		t.Errorf("a server that never answers holds: %q", why)
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("a silent server held the check %s, bound 200ms", took)
	}

	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	go func() {
		c, err := other.Accept()
		if err == nil {
			c.Write([]byte("SSH-2.0-OpenSSH_9.2\r\n"))
			c.Close()
		}
	}()
	if why, ok := checkDialled(Target{Kind: "http", Addr: other.Addr().String(), Path: "/"}, time.Second); ok || !strings.Contains(why, "not an HTTP/1") {
		t.Errorf("an SSH server: %v %q", ok, why)
	}
}

// TestSendQuietlyRaisesNoSIGPIPE: writing the request to a server that has
// already reset the connection fails, without a SIGPIPE that the loop
// would forward to the child.
func TestSendQuietlyRaisesNoSIGPIPE(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	connected := make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err == nil {
			<-connected
			c.(*net.TCPConn).SetLinger(0) // close with a reset
			c.Close()
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	close(connected)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read from a reset connection succeeded")
	}
	// What the intake holds now is older than this test's send.
	intake.Take(new(intake.Pending))
	if err := sendQuietly(c, []byte("GET / HTTP/1.1\r\n\r\n")); err == nil {
		t.Error("a send to a reset connection succeeded")
	}
	// A SIGPIPE is raised on the sending thread before the call returns,
	// so the intake, which the loop forwards from, would have it before
	// this marker.
	unix.Kill(os.Getpid(), unix.SIGUSR2)
	var p intake.Pending
	pipes, marker := 0, false
	deadline := time.After(10 * time.Second)
	for !marker {
		select {
		case <-intake.Wake():
		case <-deadline:
			t.Fatal("the marker signal never reached the intake")
		}
		intake.Take(&p)
		for sig := range p.Signals() {
			switch sig {
			case unix.SIGUSR2:
				marker = true
			case unix.SIGPIPE:
				pipes++
			}
		}
	}
	if pipes > 0 {
		t.Errorf("sending raised %d SIGPIPE", pipes)
	}
}
