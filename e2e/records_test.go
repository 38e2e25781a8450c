package e2e

import (
	"encoding/json"
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

func init() {
	helpers["fill"] = fill
}

// fill writes DIR/ballast until the file system is full, says "full" in
// FILE, and exits CODE.
func fill(args []string) int {
	f, err := os.Create(filepath.Join(args[0], "ballast"))
	if err != nil {
		panic(err)
	}
	block := make([]byte, 4096)
	for {
		if _, err := f.Write(block); err != nil {
			break
		}
	}
	f.Close()
	writeFile(args[1], "full")
	return mustAtoi(args[2])
}

// smallTmpfs mounts a tmpfs of size bytes for the test and unmounts it at
// the end.
func smallTmpfs(t *testing.T, size int) string {
	t.Helper()
	needRoot(t)
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size="+strconv.Itoa(size)); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// fillUp fills the file system at dir with a file of its own, to the last
// byte.
func fillUp(t *testing.T, dir string) {
	t.Helper()
	if status := runHelper("fill", []string{dir, filepath.Join(t.TempDir(), "full"), "0"}); status != 0 {
		t.Fatalf("fill: %d", status)
	}
}

// TestRecordsOnAFullFileSystem: on a tmpfs that is full at start, vigil
// refuses with one line and starts nothing; when the disk fills while the
// child runs, the records are still written at the end, with the room
// taken at start. As PID 1.
func TestRecordsOnAFullFileSystem(t *testing.T) {
	t.Run("full at start", func(t *testing.T) {
		for _, flag := range []string{"--tombstone", "--termination-log"} {
			dir := smallTmpfs(t, 64<<10)
			fillUp(t, dir)
			started := filepath.Join(t.TempDir(), "started")
			path := filepath.Join(dir, "record")
			status, stderr := vigil(t, opts{pid1: true}, flag, path, "--", self, "started", started)
			if status != 2 || !strings.Contains(stderr, flag+" "+strconv.Quote(path)) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
				t.Errorf("%s on a full tmpfs: status %d, want 2 with one line naming it\nstderr:\n%s", flag, status, stderr)
			}
			if pathExists(started) {
				t.Errorf("%s on a full tmpfs: the command ran", flag)
			}
		}
	})
	t.Run("filled during the run", func(t *testing.T) {
		dir := smallTmpfs(t, 256<<10)
		tomb, log := filepath.Join(dir, "tomb.json"), filepath.Join(dir, "termination-log")
		full := filepath.Join(t.TempDir(), "full")
		status, stderr := vigil(t, opts{pid1: true}, "--tombstone", tomb, "--termination-log", log, "--", self, "fill", dir, full, "3")
		if status != 3 {
			t.Fatalf("status %d, want 3\nstderr:\n%s", status, stderr)
		}
		if !pathExists(full) {
			t.Fatal("the child did not fill the file system")
		}
		if strings.Contains(stderr, "cannot write") {
			t.Errorf("a record write failed:\n%s", stderr)
		}
		readTombstone(t, tomb).check(t, map[string]any{"state": "exited", "class": "failure", "exit_status": 3.0})
		b, err := os.ReadFile(log)
		if err != nil || !strings.Contains(string(b), "failure, exit status 3") {
			t.Errorf("termination log %q (%v), want the summary", b, err)
		}
	})
}

// TestARecordLeftByAGoneVigilIsNotTakenForALiveOne: a vigil SIGKILLed
// while its child runs leaves a tombstone that says running; --probe
// tombstone: and ready:, and --wait-for, see that its vigil is gone.
func TestARecordLeftByAGoneVigilIsNotTakenForALiveOne(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	tomb, file := filepath.Join(dir, "tomb.json"), filepath.Join(dir, "ready")
	r := start(t, opts{pid1: true}, "--tombstone", tomb, "--ready-on", "file:"+file, "--", self, "on-stop", file, "dies")
	waitFile(t, tomb, `"ready"`, 10*time.Second)
	probe := func(target string) (int, string) {
		r := start(t, opts{}, "--probe", target)
		status := r.wait(30 * time.Second)
		return status, r.stdout.String()
	}
	if status, out := probe("ready:" + tomb); status != 0 {
		t.Fatalf("--probe of a live vigil's ready record: %d, want 0\n%s", status, out)
	}
	r.cmd.Process.Kill() // the PID 1 of its namespace: the child goes with it
	<-r.done
	if !strings.Contains(readFileString(t, tomb), `"ready"`) {
		t.Fatal("the record changed when its vigil died: the test proves nothing")
	}
	for _, target := range []string{"ready:" + tomb, "tombstone:" + tomb} {
		if status, out := probe(target); status != 1 || !strings.Contains(out, "gone") {
			t.Errorf("--probe %s of a record left by a killed vigil: %d %q, want 1 saying its vigil is gone", target, status, out)
		}
	}
	started := filepath.Join(t.TempDir(), "started")
	status, stderr := vigil(t, opts{pid1: true}, "--wait-for", "ready:"+tomb, "--wait-timeout", "1s", "--", self, "started", started)
	if status != 124 || pathExists(started) {
		t.Errorf("--wait-for ready: on a record left by a killed vigil: %d, want 124 and nothing started\n%s", status, stderr)
	}
	if !strings.Contains(stderr, "waiting before starting the command") || !strings.Contains(stderr, "of a vigil that runs") {
		t.Errorf("--wait-for's log line does not say what it waits for:\n%s", stderr)
	}
}

func readFileString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestASidecarPairRunsAgainOnTheSameVolume: the volume pattern (main:
// --wait-for ready:sidecar.json; sidecar: --stop-on tombstone:main.json),
// run once to its end, then again on the same directory with the records
// of the first run still there, the sidecar first, the main first, and
// both at once: the sidecar never stops on the main's old exited record,
// the main never takes the sidecar's old one, and both end 0. Each vigil
// is PID 1 of its own namespace, as containers sharing an emptyDir.
func TestASidecarPairRunsAgainOnTheSameVolume(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	mainTomb, sideTomb, up := filepath.Join(dir, "main.json"), filepath.Join(dir, "sidecar.json"), filepath.Join(dir, "sidecar-up")
	sidecar := func() *run {
		os.Remove(up) // the child's own marker, not a record
		return start(t, opts{pid1: true}, "--tombstone", sideTomb, "--ready-on", "file:"+up, "--stop-on", "tombstone:"+mainTomb,
			"--exit-zero-on-stop", "--", self, "on-stop", up, "dies")
	}
	main := func() *run {
		return start(t, opts{pid1: true}, "--tombstone", mainTomb, "--wait-for", "ready:"+sideTomb, "--wait-timeout", "10s",
			"--", self, "exit", "0")
	}
	record := func(path string) (state, run string) {
		var ts map[string]any
		b, _ := os.ReadFile(path)
		json.Unmarshal(b, &ts)
		state, _ = ts["state"].(string)
		run, _ = ts["run_id"].(string)
		return state, run
	}
	pair := func(order string) {
		var s, m *run
		_, before := record(mainTomb)
		switch order {
		case "sidecar first":
			s = sidecar()
			// Up and ready in this run (the record of the last one says
			// exited), before the main exists.
			if !poll(10*time.Second, func() bool { state, _ := record(sideTomb); return state == "ready" && pathExists(up) }) {
				t.Fatalf("%s: the sidecar never became ready\n%s", order, s.stderr)
			}
			m = main()
		case "main first":
			m = main()
			waitFile(t, mainTomb, `"starting"`, 10*time.Second)
			s = sidecar()
		default:
			s, m = sidecar(), main()
		}
		if got := m.wait(30 * time.Second); got != 0 {
			t.Errorf("%s: the main container's vigil exited %d, want 0\nstderr:\n%s\nsidecar's stderr:\n%s", order, got, m.stderr, s.stderr)
		}
		if got := s.wait(30 * time.Second); got != 0 {
			t.Errorf("%s: the sidecar's vigil exited %d, want 0\nstderr:\n%s", order, got, s.stderr)
		}
		if _, id := record(mainTomb); id == "" || id == before {
			t.Errorf("%s: the main's record is of run %q, the run before was %q", order, id, before)
		}
		readTombstone(t, mainTomb).check(t, map[string]any{"state": "exited", "class": "success"})
		readTombstone(t, sideTomb).check(t, map[string]any{"state": "exited", "class": "stopped"})
	}
	pair("first run")
	for _, order := range []string{"sidecar first", "main first", "both at once"} {
		pair(order)
	}
}
