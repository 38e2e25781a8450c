package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// --listen (issue 21): a socket vigil holds across --restart.

func init() {
	helpers["crashy"] = crashy
}

// crashy is a server that crashes (SIGSEGV) after every K connections it
// served. It takes its socket from socket activation when LISTEN_PID is
// its own pid, or else binds ADDR itself, as servers usually do. It
// appends "run pid=P names=NAMES fds=N" to FILE at each start.
func crashy(args []string) int {
	file, k := args[0], mustAtoi(args[1])
	var ln net.Listener
	var err error
	if os.Getenv("LISTEN_PID") == strconv.Itoa(os.Getpid()) {
		ln, err = net.FileListener(os.NewFile(3, "listen"))
	} else {
		ln, err = net.Listen("tcp", args[2])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "crashy:", err)
		return 88
	}
	prev, _ := os.ReadFile(file)
	writeFile(file, string(prev)+fmt.Sprintf("run pid=%d names=%s fds=%s\n", os.Getpid(), os.Getenv("LISTEN_FDNAMES"), os.Getenv("LISTEN_FDS")))
	for served := 0; served < k; served++ {
		conn, err := ln.Accept()
		if err != nil {
			return 87
		}
		fmt.Fprintf(conn, "served by %d\n", os.Getpid())
		conn.Close()
	}
	segv(nil)
	return 0
}

// load is what a client loop saw.
type load struct {
	made, served, refused, lost atomic.Int64
}

// hammer runs clients goroutines, each making connections one after the
// other to addr until total connections were tried, each waiting up to
// 20 s for its answer.
func hammer(network, addr string, clients, total int) *load {
	var l load
	var tried atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for tried.Add(1) <= int64(total) {
				c, err := net.DialTimeout(network, addr, 10*time.Second)
				if err != nil {
					l.refused.Add(1)
					time.Sleep(time.Millisecond) // a refused dial returns at once
					continue
				}
				l.made.Add(1)
				c.SetDeadline(time.Now().Add(20 * time.Second))
				line, err := bufio.NewReader(c).ReadString('\n')
				c.Close()
				if err != nil || !strings.HasPrefix(line, "served by ") {
					l.lost.Add(1)
					continue
				}
				l.served.Add(1)
			}
		}()
	}
	wg.Wait()
	return &l
}

// TestListenSurvivesRestart: a server that crashes every 25 connections,
// restarted by vigil, behind vigil's --listen socket: every connection the
// kernel accepted is served, by this run or the next; none is refused.
// The same server binding its own socket refuses connections while it
// restarts (logged for comparison). As PID 1.
func TestListenSurvivesRestart(t *testing.T) {
	const clients, total, every = 4, 400, 25
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	addr := freePort(t)
	restart := []string{"--restart", "on-failure", "--restart-delay", "50ms", "--restart-delay-max", "50ms"}
	args := append(append([]string{"--listen", "web=tcp:" + addr}, restart...), "--", self, "crashy", runs, strconv.Itoa(every), addr)
	r := start(t, opts{pid1: os.Geteuid() == 0}, args...)
	waitFile(t, runs, "run ", 10*time.Second) // the socket is open before the first run
	began := time.Now()
	l := hammer("tcp", addr, clients, total)
	took := time.Since(began)
	b, _ := os.ReadFile(runs)
	nruns := strings.Count(string(b), "\n")
	t.Logf("--listen: %d clients, %d tried: %d made, %d served, %d refused, %d lost, %d runs, %s",
		clients, total, l.made.Load(), l.served.Load(), l.refused.Load(), l.lost.Load(), nruns, took.Round(time.Millisecond))
	if l.refused.Load() != 0 || l.lost.Load() != 0 || l.served.Load() != total {
		t.Errorf("made %d, served %d, refused %d, lost %d; want all %d served\nstderr:\n%s",
			l.made.Load(), l.served.Load(), l.refused.Load(), l.lost.Load(), total, r.stderr)
	}
	if nruns < total/every {
		t.Errorf("%d runs for %d connections at %d a run", nruns, total, every)
	}
	if !strings.Contains(string(b), "names=web fds=1\n") {
		t.Errorf("the runs saw %q, want LISTEN_FDNAMES=web LISTEN_FDS=1", b)
	}
	r.signal(unix.SIGTERM)
	r.wait(30 * time.Second) // the status is the last run's

	// The same without --listen: the server binds the port itself.
	addr = freePort(t)
	args = append(append([]string{}, restart...), "--", self, "crashy", filepath.Join(dir, "runs2"), strconv.Itoa(every), addr)
	r = start(t, opts{pid1: os.Geteuid() == 0}, args...)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server never listened\nstderr:\n%s", r.stderr)
		}
		time.Sleep(5 * time.Millisecond)
	}
	l = hammer("tcp", addr, clients, total)
	t.Logf("server's own socket: %d clients, %d tried: %d made, %d served, %d refused, %d lost",
		clients, total, l.made.Load(), l.served.Load(), l.refused.Load(), l.lost.Load())
	r.signal(unix.SIGTERM)
	r.wait(30 * time.Second)
}

// TestListenUnixSocketAfterActivation: a --listen unix socket comes after
// the socket of socket activation, named in LISTEN_FDNAMES after it, and
// replaces a stale socket file; the child serves both. Not PID 1.
func TestListenUnixSocketAfterActivation(t *testing.T) {
	dir := t.TempDir()
	sock, activated, file := filepath.Join(dir, "api.sock"), filepath.Join(dir, "act.sock"), filepath.Join(dir, "runs")
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	act, err := net.ListenUnix("unix", &net.UnixAddr{Name: activated, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer act.Close()
	af, err := act.File()
	if err != nil {
		t.Fatal(err)
	}
	defer af.Close()
	r := startVia(t, via{argv: []string{vigilBin, "--listen", "api=unix:" + sock, "--", self, "socket-server", file},
		env: []string{"LISTEN_FDS=1", "LISTEN_FDNAMES=act"}, extra: []*os.File{af}})
	run := runLines(t, file, 1)[0]
	if run["listen_pid"] != run["pid"] || run["fds"] != "2" || run["names"] != "act:api" || run["setpid"] != "" {
		t.Errorf("the child saw %v: want its pid, LISTEN_FDS=2, LISTEN_FDNAMES=act:api", run)
	}
	want := "served by " + run["pid"] + " run 1\n"
	for _, s := range []string{activated, sock} {
		if got := ask(t, "unix", s); got != want {
			t.Errorf("%s answered %q, want %q", s, got, want)
		}
	}
	r.signal(unix.SIGTERM)
	r.expect(0)
}
