package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Socket activation passed through (issue 21), with the real
// systemd-socket-activate.

func init() {
	helpers["socket-server"] = socketServer
}

// socketServer is a socket-activated service, as sd_listen_fds(3) checks:
// LISTEN_PID must be its own pid. It appends to FILE one line per run,
//
//	run=K pid=P listen_pid=L fds=N names=NAMES setpid=V
//
// (V the internal variable, which it must not see), then answers each
// connection on descriptors 3 to 3+N-1 with "served by P run K\n". With "fail-after
// C" its first run exits 1 after C connections; otherwise, and in later
// runs, it serves until SIGTERM.
func socketServer(args []string) int {
	file := args[0]
	failAfter := 0
	if len(args) == 3 && args[1] == "fail-after" {
		failAfter = mustAtoi(args[2])
	}
	c := make(chan os.Signal, 1)
	signal.Notify(c, unix.SIGTERM)
	prev, _ := os.ReadFile(file)
	run := strings.Count(string(prev), "\n") + 1
	lp, fds := os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS")
	writeFile(file, string(prev)+fmt.Sprintf("run=%d pid=%d listen_pid=%s fds=%s names=%s setpid=%s\n", run, os.Getpid(),
		lp, fds, os.Getenv("LISTEN_FDNAMES"), os.Getenv("VIGIL_INTERNAL_SETPID")))
	if lp != strconv.Itoa(os.Getpid()) || fds == "" || fds == "0" {
		// What sd_listen_fds does: not ours, not used.
		<-c
		return 0
	}
	go func() {
		<-c
		os.Exit(0)
	}()
	conns := make(chan net.Conn)
	for fd := 3; fd < 3+mustAtoi(fds); fd++ {
		ln, err := net.FileListener(os.NewFile(uintptr(fd), "listen"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "socket-server:", err)
			return 90
		}
		if run == 1 && failAfter > 0 {
			// Accept no more than it serves: a connection accepted on the
			// way out would be closed unanswered, and the next run's to
			// answer.
			for served := 0; served < failAfter; served++ {
				conn, err := ln.Accept()
				if err != nil {
					fmt.Fprintln(os.Stderr, "socket-server:", err)
					return 89
				}
				fmt.Fprintf(conn, "served by %d run %d\n", os.Getpid(), run)
				conn.Close()
			}
			return 1
		}
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					fmt.Fprintln(os.Stderr, "socket-server:", err)
					os.Exit(89)
				}
				conns <- conn
			}
		}()
	}
	for {
		conn := <-conns
		fmt.Fprintf(conn, "served by %d run %d\n", os.Getpid(), run)
		conn.Close()
	}
}

// ask connects to the socket at addr and returns the line it answers.
func ask(t *testing.T, network, addr string) string {
	t.Helper()
	c, err := net.DialTimeout(network, addr, 10*time.Second)
	if err != nil {
		t.Fatalf("connecting to %s: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("reading from %s: %v", addr, err)
	}
	return line
}

// runLines reads socket-server's report.
func runLines(t *testing.T, file string, n int) []map[string]string {
	t.Helper()
	waitFile(t, file, fmt.Sprintf("run=%d ", n), 20*time.Second)
	b, _ := os.ReadFile(file)
	var out []map[string]string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		m := map[string]string{}
		for _, f := range strings.Fields(line) {
			k, v, _ := strings.Cut(f, "=")
			m[k] = v
		}
		out = append(out, m)
	}
	return out
}

// TestSocketActivationReachesTheChild: systemd-socket-activate passes a
// socket to vigil (LISTEN_PID names vigil); the child gets it at 3 with
// LISTEN_PID its own pid, LISTEN_FDNAMES kept and vigil's internal
// variable gone, and so serves; under --restart the next run gets the same
// socket, with its own pid. As PID 1 and not.
func TestSocketActivationReachesTheChild(t *testing.T) {
	ssa, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Skip("needs systemd-socket-activate (Debian's systemd)")
	}
	for _, pid1 := range []bool{true, false} {
		t.Run(fmt.Sprintf("pid1=%v", pid1), func(t *testing.T) {
			if pid1 {
				needRoot(t)
			}
			dir := t.TempDir()
			sock, file := filepath.Join(dir, "sock"), filepath.Join(dir, "runs")
			argv := []string{ssa, "-l", sock, "--fdname=web", "-E", "E2E_HELPER=1",
				"-E", "GODEBUG=containermaxprocs=0,updatemaxprocs=0", "--",
				vigilBin, "--restart", "on-failure", "--restart-delay", "10ms", "--", self, "socket-server", file, "fail-after", "1"}
			if pid1 {
				argv = append([]string{self, "pid1-shim"}, argv...)
			}
			r := startVia(t, via{argv: argv, pid1: pid1})
			deadline := time.Now().Add(10 * time.Second)
			for {
				if _, err := os.Stat(sock); err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("systemd-socket-activate made no socket\nstderr:\n%s", r.stderr)
				}
				time.Sleep(5 * time.Millisecond)
			}
			first := ask(t, "unix", sock) // makes systemd-socket-activate exec vigil
			second := ask(t, "unix", sock)
			runs := runLines(t, file, 2)
			for i, run := range runs[:2] {
				if run["listen_pid"] != run["pid"] || run["fds"] != "1" || run["names"] != "web" || run["setpid"] != "" {
					t.Errorf("run %d saw %v: want LISTEN_PID its pid, LISTEN_FDS=1, LISTEN_FDNAMES=web, no VIGIL_INTERNAL_SETPID", i+1, run)
				}
			}
			if runs[0]["pid"] == runs[1]["pid"] {
				t.Errorf("both runs have pid %s", runs[0]["pid"])
			}
			if want := "served by " + runs[0]["pid"] + " run 1\n"; first != want {
				t.Errorf("first answer %q, want %q", first, want)
			}
			if want := "served by " + runs[1]["pid"] + " run 2\n"; second != want {
				t.Errorf("second answer %q, want %q", second, want)
			}
			r.signal(unix.SIGTERM)
			r.expect(0)
		})
	}
}

// TestSocketActivationOfAnotherProcessChangesNothing: LISTEN_PID names
// another process, so the variables are not vigil's: the child gets them
// as they are, directly (no internal mode), and no descriptor.
func TestSocketActivationOfAnotherProcessChangesNothing(t *testing.T) {
	dir := t.TempDir()
	file, fds := filepath.Join(dir, "runs"), filepath.Join(dir, "fds")
	r := start(t, opts{env: []string{"LISTEN_FDS=1", "LISTEN_PID=999999", "LISTEN_FDNAMES=x"}},
		"--", self, "socket-server", file)
	run := runLines(t, file, 1)[0]
	if run["listen_pid"] != "999999" || run["fds"] != "1" || run["names"] != "x" || run["setpid"] != "" {
		t.Errorf("the child saw %v, want the variables unchanged", run)
	}
	r.signal(unix.SIGTERM)
	r.expect(0)
	// And nothing above stdio reaches a child.
	status, stderr := vigil(t, opts{env: []string{"LISTEN_FDS=1", "LISTEN_PID=999999"}}, "--", self, "fds", fds)
	if status != 0 {
		t.Fatalf("status %d\n%s", status, stderr)
	}
	if b, _ := os.ReadFile(fds); strings.Count(string(b), "\n") != 3 {
		t.Errorf("the child holds more than stdio:\n%s", b)
	}
}

// TestSocketActivationWithoutProc: a root with no /proc (a runtime that
// mounts none) and LISTEN_FDS without LISTEN_PID, as podman may pass it:
// vigil, PID 1, finds itself by its argv[0] for the internal mode, and the
// child still gets the socket with its own pid.
func TestSocketActivationWithoutProc(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	files := map[string]string{vigilBin: "vigil", self: "server"}
	// The test binary may be linked dynamically (cgo): its loader and
	// libraries come along, at their paths.
	if out, err := exec.Command("ldd", self).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if strings.HasPrefix(f, "/") {
				files[f] = strings.TrimPrefix(f, "/")
			}
		}
	}
	for src, dst := range files {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Join(root, filepath.Dir(dst)), 0o755)
		if err := os.WriteFile(filepath.Join(root, dst), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(t.TempDir(), "sock"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lf, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	argv := []string{self, "chroot-shim", root, "rw", "/vigil", "-v", "--", "/server", "socket-server", "/runs"}
	r := startVia(t, via{argv: argv, pid1: true, env: []string{"LISTEN_FDS=1", "LISTEN_FDNAMES=api"}, extra: []*os.File{lf}})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(root, "runs")); err == nil {
			break
		}
		select {
		case <-r.done:
			t.Fatalf("vigil exited before the child reported\nstderr:\n%s", r.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the child did not report\nstderr:\n%s", r.stderr)
		}
		time.Sleep(5 * time.Millisecond)
	}
	run := runLines(t, filepath.Join(root, "runs"), 1)[0]
	if run["listen_pid"] != run["pid"] {
		t.Fatalf("the child saw %v\nstderr:\n%s", run, r.stderr)
	}
	got := ask(t, "unix", ln.Addr().String())
	if run["listen_pid"] != run["pid"] || run["fds"] != "1" || run["names"] != "api" || run["setpid"] != "" {
		t.Errorf("the child saw %v: want LISTEN_PID its pid, LISTEN_FDS=1, LISTEN_FDNAMES=api", run)
	}
	if want := "served by " + run["pid"] + " run 1\n"; got != want {
		t.Errorf("answer %q, want %q", got, want)
	}
	r.signal(unix.SIGTERM)
	r.expect(0)
	if !strings.Contains(r.stderr.String(), "via=/vigil") {
		t.Errorf("vigil did not start itself as /vigil, its argv[0]:\n%s", r.stderr)
	}
}
