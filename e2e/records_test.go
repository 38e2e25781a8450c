package e2e

import (
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func init() {
	helpers["on-stop"] = onStop
	helpers["no-hosts"] = func([]string) int {
		if _, err := os.Stat("/etc/hosts"); err == nil {
			return 1
		}
		return 0
	}
}

// onStop writes "ready PID" to FILE and then, by HOW: "dies" waits with
// SIGTERM's default action (it dies of it), "exits N" exits N on SIGTERM
// (as a shell's trap or the JVM do), "ignores" ignores SIGTERM, "fails N"
// exits N at once on its own.
func onStop(args []string) int {
	file, how := args[0], args[1]
	c := make(chan os.Signal, 1)
	switch how {
	case "exits":
		signal.Notify(c, unix.SIGTERM)
	case "ignores":
		signal.Ignore(unix.SIGTERM)
	case "fails":
		return mustAtoi(args[2])
	}
	writeFile(file, "ready "+strconv.Itoa(os.Getpid()))
	if how == "exits" {
		<-c
		return mustAtoi(args[2])
	}
	time.Sleep(time.Hour)
	return 0
}

// TestExitZeroOnStop: with --exit-zero-on-stop a child that honours a stop
// signal from outside ends vigil with 0 (class stopped, the tombstone says
// how it died); one that fails on its own, is sent TERM by someone else, or
// needs vigil's SIGKILL still fails with its status; without the flag
// nothing changes. As PID 1 and not.
func TestExitZeroOnStop(t *testing.T) {
	cases := []struct {
		name   string
		flags  []string
		how    []string
		stop   string // "vigil": TERM to vigil; "child": TERM to the child directly; "": none
		status int
		class  string
		signal string
	}{
		{"dies of the TERM forwarded", []string{"--exit-zero-on-stop"}, []string{"dies"}, "vigil", 0, "stopped", "SIGTERM"},
		{"exits 143 on the TERM", []string{"--exit-zero-on-stop"}, []string{"exits", "143"}, "vigil", 0, "stopped", ""},
		{"dies of the HUP a rewrite forwarded", []string{"--exit-zero-on-stop", "-r", "TERM:HUP"}, []string{"dies"}, "vigil", 0, "stopped", "SIGHUP"},
		{"exits 1 on the TERM", []string{"--exit-zero-on-stop"}, []string{"exits", "1"}, "vigil", 1, "failure", ""},
		{"fails on its own", []string{"--exit-zero-on-stop"}, []string{"fails", "3"}, "", 3, "failure", ""},
		{"TERM from elsewhere", []string{"--exit-zero-on-stop"}, []string{"dies"}, "child", 143, "signal", "SIGTERM"},
		{"SIGKILLed after the grace", []string{"--exit-zero-on-stop", "--grace", "500ms"}, []string{"ignores"}, "vigil", 137, "kill", "SIGKILL"},
		{"without the flag", nil, []string{"dies"}, "vigil", 143, "signal", "SIGTERM"},
		{"from the variable", nil, []string{"dies"}, "vigil", 0, "stopped", "SIGTERM"},
	}
	for _, pid1 := range []bool{true, false} {
		for _, tc := range cases {
			name := tc.name
			if pid1 {
				name += " as PID 1"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				file, tomb := filepath.Join(dir, "ready"), filepath.Join(dir, "tomb.json")
				o := opts{pid1: pid1}
				if tc.name == "from the variable" {
					o.env = []string{"VIGIL_EXIT_ZERO_ON_STOP=1"}
				}
				args := append(append([]string{"--tombstone", tomb}, tc.flags...), "--")
				args = append(append(args, self, "on-stop", file), tc.how...)
				r := start(t, o, args...)
				if tc.stop != "" {
					pid := mustAtoi(strings.Fields(waitFile(t, file, "ready ", 10*time.Second))[1])
					if tc.stop == "vigil" {
						r.signal(unix.SIGTERM)
					} else if err := unix.Kill(pidOutside(t, r, pid, pid1), unix.SIGTERM); err != nil {
						t.Fatal(err)
					}
				}
				r.expect(tc.status)
				ts := readTombstone(t, tomb)
				sig, _ := ts["signal"].(string)
				if ts["class"] != tc.class || sig != tc.signal || ts["exit_status"] != float64(tc.status) {
					t.Errorf("tombstone class %v, signal %v, exit_status %v; want %s, %q, %d", ts["class"], ts["signal"],
						ts["exit_status"], tc.class, tc.signal, tc.status)
				}
			})
		}
	}
}

// pidOutside turns the pid a helper reported into one the test can
// signal: as PID 1 the helper saw its pid in vigil's namespace, so it is
// found as vigil's child in the test's.
func pidOutside(t *testing.T, r *run, pid int, pid1 bool) int {
	t.Helper()
	if !pid1 {
		return pid
	}
	return childOf(t, r.cmd.Process.Pid, 10*time.Second)
}

// TestLoopbackTargetsNeedNoResolver: in an image that holds only vigil
// (here: /etc hidden under an empty tmpfs, as PID 1), tcp::PORT and
// tcp:localhost:PORT reach the loopback, 127.0.0.1 or ::1, for --wait-for
// and --probe (--ready-on dials the same way).
func TestLoopbackTargetsNeedNoResolver(t *testing.T) {
	needRoot(t)
	listen := func(network, addr string) string {
		l, err := net.Listen(network, addr)
		if err != nil {
			t.Skipf("cannot listen on %s: %v", addr, err)
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		_, port, _ := net.SplitHostPort(l.Addr().String())
		return port
	}
	v4, v6 := listen("tcp4", "127.0.0.1:0"), listen("tcp6", "[::1]:0")
	// A port nothing listens on, for the probe that must fail.
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, closed, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	hidden := opts{pid1: true, env: []string{"E2E_HIDE_ETC=1"}}
	for _, tc := range []struct {
		args   []string
		status int
	}{
		{[]string{"--wait-for", "tcp::" + v4, "--wait-timeout", "10s", "--", self, "exit", "0"}, 0},
		{[]string{"--wait-for", "tcp:localhost:" + v6, "--wait-timeout", "10s", "--", self, "exit", "0"}, 0},
		{[]string{"--wait-for", "tcp:LOCALHOST.:" + v4, "--wait-timeout", "10s", "--", self, "exit", "0"}, 0},
		{[]string{"--probe", "tcp::" + v4}, 0},
		{[]string{"--probe", "tcp:localhost:" + v6}, 0},
		{[]string{"--probe", "tcp::" + closed}, 1},
	} {
		status, stderr := vigil(t, hidden, tc.args...)
		if status != tc.status {
			t.Errorf("vigil %s with no /etc: exit %d, want %d\n%s", strings.Join(tc.args, " "), status, tc.status, stderr)
		}
	}
	// The shim really hid /etc: a child sees no /etc/hosts.
	if status, _ := vigil(t, hidden, "--", self, "no-hosts"); status != 0 {
		t.Errorf("/etc/hosts is visible to the child (status %d): the test proves nothing", status)
	}
}

// cpuTicks is the user and system time of pid, in clock ticks, from
// /proc/PID/stat.
func cpuTicks(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// The fields after the command's closing parenthesis: state is the
	// first, utime the 12th, stime the 13th.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return mustAtoi(f[11]) + mustAtoi(f[12])
}

// readCalls is the number of read system calls pid has made, from
// /proc/PID/io.
func readCalls(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "syscr: "); ok {
			return mustAtoi(v)
		}
	}
	t.Fatalf("no syscr in /proc/%d/io", pid)
	return 0
}

// TestOthersActivityInAWatchedDirectoryCostsNothing: vigil watches a
// directory for --stop-on tombstone:DIR/main.json while another process
// appends to a log there as fast as it can (then also creates and renames
// files of other names): vigil's reads and CPU time stay within a small
// bound, and the target still fires when it is written.
func TestOthersActivityInAWatchedDirectoryCostsNothing(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	tomb := filepath.Join(dir, "main.json")
	file := filepath.Join(t.TempDir(), "ready")
	r := start(t, opts{pid1: true}, "--stop-on", "tombstone:"+tomb, "--", self, "on-stop", file, "dies")
	waitFile(t, file, "ready ", 10*time.Second)
	pid := r.cmd.Process.Pid
	const span = 3 * time.Second
	measure := func(renames bool) (share float64, reads int) {
		stop := make(chan struct{})
		done := make(chan int)
		go func() {
			lines := 0
			log, err := os.OpenFile(filepath.Join(dir, "other.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
			if err != nil {
				panic(err)
			}
			defer log.Close()
			line := []byte("2026-12-02T07:00:00Z info a line of the neighbour's log\n")
			for {
				select {
				case <-stop:
					done <- lines
					return
				default:
				}
				for range 100 {
					log.Write(line)
					lines++
				}
				if renames {
					tmp := filepath.Join(dir, ".other.tmp")
					os.WriteFile(tmp, line, 0o644)
					os.Rename(tmp, filepath.Join(dir, "other.json"))
				}
			}
		}()
		ticks, calls := cpuTicks(t, pid), readCalls(t, pid)
		time.Sleep(span) // the measurement's own length, not a wait for an effect
		ticks, calls = cpuTicks(t, pid)-ticks, readCalls(t, pid)-calls
		close(stop)
		lines := <-done
		// Clock ticks are 1/100 s (USER_HZ) on Linux.
		share = float64(ticks) / 100 / span.Seconds()
		t.Logf("renames %v: vigil used %d ticks (%.1f%% of a core) and made %d reads in %s while a neighbour wrote %d lines (%.0f/s)",
			renames, ticks, 100*share, calls, span, lines, float64(lines)/span.Seconds())
		return share, calls
	}
	if share, reads := measure(false); share > 0.01 || reads > 10 {
		t.Errorf("a neighbour's log cost vigil %.1f%% of a core and %d reads; want at most 1%% and 10", 100*share, reads)
	}
	if share, _ := measure(true); share > 0.03 {
		t.Errorf("a neighbour's log and renames cost vigil %.1f%% of a core; want at most 3%%", 100*share)
	}
	writeFile(tomb, `{"name":"main","state":"exited"}`)
	r.expect(0)
}
