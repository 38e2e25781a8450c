package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Issue 19: stops from outside in every phase, signal order, and time in
// which vigil did not run.

func init() {
	helpers["stubborn"] = stubborn
}

// stubborn appends "start" to FILE, then ignores SIGTERM until killed.
func stubborn(args []string) int {
	c := make(chan os.Signal, 1)
	signal.Notify(c, unix.SIGTERM)
	f, err := os.OpenFile(args[0], os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return 90
	}
	fmt.Fprintln(f, "start")
	f.Close()
	for range c {
	}
	return 0
}

func countStarts(t *testing.T, file string) int {
	t.Helper()
	b, _ := os.ReadFile(file)
	return strings.Count(string(b), "start")
}

// TestStopDuringTheTimeoutGraceIsNotFollowedByARestart: --timeout fires,
// the child ignores its TERM, and during the grace a TERM comes from
// outside: the run ends as a timeout, and no run follows.
func TestStopDuringTheTimeoutGraceIsNotFollowedByARestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file, tomb := filepath.Join(dir, "runs"), filepath.Join(dir, "tomb.json")
	r := start(t, opts{pid1: true}, "--restart", "on-failure", "--restart-delay", "50ms", "--timeout", "500ms",
		"--grace", "2s", "--tombstone", tomb, "--", self, "stubborn", file)
	waitFile(t, tomb, `"state":"stopping"`, 10*time.Second)
	r.signal(unix.SIGTERM)
	r.expect(137)
	if n := countStarts(t, file); n != 1 {
		t.Errorf("%d runs, want 1: a TERM during the timeout's grace is a stop from outside\nstderr:\n%s", n, r.stderr)
	}
	readTombstone(t, tomb).check(t, map[string]any{"state": "exited", "class": "timeout"})
}

// TestStopDuringTheDrainIsNotFollowedByARestart: a TERM starts the drain,
// and the child fails before the drain ends: a failure, and no run follows.
func TestStopDuringTheDrainIsNotFollowedByARestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file, tomb := filepath.Join(dir, "runs"), filepath.Join(dir, "tomb.json")
	r := start(t, opts{pid1: true}, "--restart", "on-failure", "--restart-delay", "50ms", "--drain", "5s",
		"--tombstone", tomb, "--", self, "runs", file, "wait-file:3")
	waitFile(t, file, "start 0", 10*time.Second)
	r.signal(unix.SIGTERM)
	waitFile(t, tomb, `"state":"stopping"`, 10*time.Second)
	writeFile(file+".go", "")
	r.expect(3)
	if n := len(starts(t, file)); n != 1 {
		t.Errorf("%d runs, want 1: a TERM during the drain is a stop from outside\nstderr:\n%s", n, r.stderr)
	}
}

// TestCtrlCInATerminalIsNotFollowedByARestart: the terminal sends Ctrl-C
// (INT) and Ctrl-\ (QUIT) to its foreground group, which is the child's,
// not to vigil: under --restart that is a stop asked for all the same.
func TestCtrlCInATerminalIsNotFollowedByARestart(t *testing.T) {
	for _, key := range []struct {
		name string
		char string
		sig  unix.Signal
	}{{"ctrl-c", "\x03", unix.SIGINT}, {`ctrl-\`, "\x1c", unix.SIGQUIT}} {
		for _, pid1 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/pid1=%v", key.name, pid1), func(t *testing.T) {
				master, pts := openPTY(t)
				file := filepath.Join(t.TempDir(), "runs")
				r := start(t, opts{pid1: pid1, tty: pts}, "--restart", "always", "--restart-delay", "50ms", "--",
					"/bin/sh", "-c", `echo start >> "$0"; exec sleep 1000`, file)
				waitFile(t, file, "start", 10*time.Second)
				if _, err := master.Write([]byte(key.char)); err != nil {
					t.Fatal(err)
				}
				r.expect(128 + int(key.sig))
				if n := countStarts(t, file); n != 1 {
					t.Errorf("%d runs, want 1: %s to the child's foreground group is a stop", n, key.name)
				}
			})
		}
	}
}

// TestStopSignalsDuringTheDrainAreForwarded: HUP, TERM, TERM with a 5 s
// drain: HUP at once, and the second TERM ends the drain, so the child has
// a TERM long before the drain would have ended.
func TestStopSignalsDuringTheDrainAreForwarded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file, tomb := filepath.Join(dir, "stamps"), filepath.Join(dir, "tomb.json")
	r := start(t, opts{pid1: true}, "--drain", "5s", "--grace", "1s", "--tombstone", tomb, "--",
		self, "stamps", file, "stay")
	waitFile(t, file, "ready", 10*time.Second)
	r.signal(unix.SIGHUP)
	waitFile(t, file, "SIGHUP", 10*time.Second)
	r.signal(unix.SIGTERM)
	waitFile(t, tomb, `"state":"stopping"`, 10*time.Second)
	sent := time.Now()
	r.signal(unix.SIGTERM)
	got := waitFile(t, file, "SIGTERM", 10*time.Second)
	if took := time.Since(sent); took > 3*time.Second {
		t.Errorf("the child had its TERM %s after the second one: stop signals during the drain were held", took)
	}
	r.expect(137)
	names, _ := stampsOf(t, file)
	if len(names) < 2 || names[0] != "SIGHUP" || names[1] != "SIGTERM" {
		t.Errorf("the child got %v, want SIGHUP then SIGTERM\n%s", names, got)
	}
}

// logged is vigil started with -v, its stderr read as it comes.
type logged struct {
	*run
	mu    sync.Mutex
	lines []string
}

func startVerbose(t *testing.T, pid1 bool, args ...string) *logged {
	t.Helper()
	return startReading(t, pid1, 0, append([]string{"-v"}, args...)...)
}

// startReading starts vigil with its stderr read line by line; with a
// pace, at most 4 KiB every pace, as a slow terminal or log shipper reads.
func startReading(t *testing.T, pid1 bool, pace time.Duration, args ...string) *logged {
	t.Helper()
	l := &logged{run: &run{t: t, stderr: &bytes.Buffer{}, stdout: &bytes.Buffer{}, done: make(chan struct{})}}
	if pid1 {
		needRoot(t)
		l.cmd = exec.Command(self, append([]string{"pid1-shim", vigilBin}, args...)...)
		l.cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWPID | unix.CLONE_NEWNS}
	} else {
		l.cmd = exec.Command(vigilBin, args...)
	}
	l.cmd.Env = append(os.Environ(), "E2E_HELPER=1", "GODEBUG=containermaxprocs=0,updatemaxprocs=0")
	l.cmd.Dir = t.TempDir()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	l.cmd.Stdout, l.cmd.Stderr = l.stdout, pw
	l.launch()
	pw.Close()
	go func() {
		var in io.Reader = pr
		if pace > 0 {
			in = &paced{r: pr, pace: pace}
		}
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			l.mu.Lock()
			l.lines = append(l.lines, sc.Text())
			l.mu.Unlock()
		}
	}()
	return l
}

// paced reads at most 4 KiB every pace.
type paced struct {
	r    io.Reader
	pace time.Duration
}

func (p *paced) Read(b []byte) (int, error) {
	time.Sleep(p.pace) // the slowness is the test's input
	return p.r.Read(b[:min(len(b), 4096)])
}

// TestTailUnderRestartHoldsTheRunsLastLines: vigil's stderr is read slowly,
// so the copier lags behind the child; the first run's hook must still get
// the run's last line in its tail, as without --restart.
func TestTailUnderRestartHoldsTheRunsLastLines(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "tail")
	hook := fmt.Sprintf(`/bin/sh -c 'tail -c 100 "$VIGIL_STDERR_TAIL" > %s.$VIGIL_RESTARTS'`, out)
	l := startReading(t, true, 2*time.Millisecond, "--capture-tail", "1024", "--restart", "on-failure",
		"--restart-max", "1", "--restart-delay", "50ms", "--on-failure", hook, "--", self, "stderr-lines", "10000", "3")
	l.expect(3)
	for _, run := range []string{"0", "1"} {
		b, err := os.ReadFile(out + "." + run)
		if err != nil {
			t.Fatalf("run %s: the hook left no tail: %v", run, err)
		}
		if !strings.Contains(string(b), "line 10000 of") {
			t.Errorf("run %s: the tail ends %q, want the run's last line", run, b)
		}
	}
}

var jobLine = regexp.MustCompile(`msg=(received|sent) .*signal=(SIGTSTP|SIGCONT)`)

// settled waits until vigil has sent on every TSTP and CONT it received,
// the last one it sent being a CONT, and returns what it sent; it fails
// when a TSTP is the last word.
func (l *logged) settled(d time.Duration) []string {
	l.t.Helper()
	var received, sent []string
	var log string
	done := poll(d, func() bool {
		received, sent = nil, nil
		l.mu.Lock()
		for _, line := range l.lines {
			if m := jobLine.FindStringSubmatch(line); m != nil {
				if m[1] == "received" {
					received = append(received, m[2])
				} else {
					sent = append(sent, m[2])
				}
			}
		}
		log = strings.Join(l.lines, "\n")
		l.mu.Unlock()
		return len(sent) == len(received) && len(sent) > 0 && sent[len(sent)-1] == "SIGCONT"
	})
	if !done {
		l.t.Fatalf("after %s vigil received %v and sent %v: the child is left stopped\nlog:\n%s", d, received, sent, clipLog(log))
	}
	return sent
}

// childPid finds vigil's main child (the only child of pid).
func childPid(t *testing.T, pid int) int {
	t.Helper()
	var kids []child
	waitFor(t, 10*time.Second, fmt.Sprintf("a child of vigil (%d)", pid), func() bool {
		kids = childrenOf(pid)
		return len(kids) > 0
	})
	return kids[0].pid
}

// TestTSTPThenCONTLeavesTheChildRunning: `kill -TSTP; kill -CONT` to vigil,
// six times, then 50 pairs in a storm: each time the child must be left
// running, never stopped (tini and dumb-init: never). Without a terminal
// vigil forwards both, as PID 1 and not.
func TestTSTPThenCONTLeavesTheChildRunning(t *testing.T) {
	for _, pid1 := range []bool{false, true} {
		t.Run(fmt.Sprintf("pid1=%v", pid1), func(t *testing.T) {
			t.Parallel()
			l := startVerbose(t, pid1, "--grace", "2s", "--", "/bin/sleep", "1000")
			kid := childPid(t, l.cmd.Process.Pid)
			check := func(what string) {
				l.settled(10 * time.Second)
				waitFor(t, 5*time.Second, what+": the child running, not stopped", func() bool { return procState(kid) != "T" })
			}
			for i := range 6 {
				l.signal(unix.SIGTSTP)
				l.signal(unix.SIGCONT)
				check(fmt.Sprintf("pair %d", i+1))
			}
			for range 50 {
				l.signal(unix.SIGTSTP)
				l.signal(unix.SIGCONT)
			}
			check("a storm of 50 pairs")
			l.signal(unix.SIGTERM)
			l.expect(143)
		})
	}
}

// freezer is a cgroup v1 freezer cgroup of the test's own.
type freezer string

func newFreezer(t *testing.T) freezer {
	t.Helper()
	needRoot(t)
	root := "/sys/fs/cgroup/freezer"
	if _, err := os.Stat(filepath.Join(root, "freezer.state")); err != nil {
		if _, err := os.Stat(filepath.Join(root, "tasks")); err != nil {
			t.Skipf("no cgroup v1 freezer at %s (on cgroup v2 docker pause uses cgroup.freeze)", root)
		}
	}
	dir := filepath.Join(root, fmt.Sprintf("vigil-e2e-%d-%d", os.Getpid(), time.Now().UnixNano()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("creating a freezer cgroup: %v", err)
	}
	f := freezer(dir)
	t.Cleanup(func() {
		f.set(t, "THAWED")
		// Empty once the processes in it are gone.
		poll(10*time.Second, func() bool { return os.Remove(dir) == nil })
	})
	return f
}

func (f freezer) set(t *testing.T, state string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(string(f), "freezer.state"), []byte(state), 0o644); err != nil {
		t.Fatalf("freezer.state %s: %v", state, err)
	}
	waitFor(t, 10*time.Second, "freezer.state "+state, func() bool {
		b, _ := os.ReadFile(filepath.Join(string(f), "freezer.state"))
		return strings.TrimSpace(string(b)) == state
	})
}

// TestWatchdogDoesNotCountAFreeze: a healthy child pinging every 200 ms
// under --watchdog 1s, the whole container frozen for 3 s (what docker
// pause does): on thaw it is not ended as hung.
func TestWatchdogDoesNotCountAFreeze(t *testing.T) {
	f := newFreezer(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "notifier")
	r := start(t, opts{pid1: true, env: []string{"E2E_CGROUP_PROCS=" + filepath.Join(string(f), "cgroup.procs")}},
		"--notify", "--watchdog", "1s", "--", self, "notifier", file, "send:READY=1", "ping:200:45")
	waitFile(t, file, "env ", 10*time.Second)
	f.set(t, "FROZEN")
	frozen := time.Now()
	time.Sleep(3 * time.Second) // the freeze itself: its length is the test's input
	f.set(t, "THAWED")
	// Three intervals after the thaw the child must still be there.
	select {
	case <-r.done:
		t.Fatalf("vigil ended %s after the thaw\nstderr:\n%s", time.Since(frozen)-3*time.Second, r.stderr)
	case <-time.After(3 * time.Second):
	}
	r.signal(unix.SIGTERM)
	r.expect(0)
}

// TestWatchdogDoesNotCountCtrlZ: vigil in a terminal, not PID 1, stopped
// with its job (TSTP to vigil: the child's group, then vigil) for 3 s under
// --watchdog 1s: after fg the child is not ended as hung.
func TestWatchdogDoesNotCountCtrlZ(t *testing.T) {
	_, pts := openPTY(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "notifier")
	r := start(t, opts{tty: pts}, "--notify", "--watchdog", "1s", "--", self, "notifier", file, "send:READY=1", "ping:200:45")
	waitFile(t, file, "env ", 10*time.Second)
	pid := r.cmd.Process.Pid
	r.signal(unix.SIGTSTP)
	waitFor(t, 10*time.Second, "vigil stopped", func() bool { return procState(pid) == "T" })
	stopped := time.Now()
	time.Sleep(3 * time.Second) // the time stopped: the test's input
	r.signal(unix.SIGCONT)
	select {
	case <-r.done:
		t.Fatalf("vigil ended %s after fg\nstderr:\n%s", time.Since(stopped)-3*time.Second, r.stderr)
	case <-time.After(3 * time.Second):
	}
	r.signal(unix.SIGTERM)
	r.expect(0)
}

// TestJobControlSignalsLeaveLaterChildrenUnblocked: vigil blocks TSTP,
// TTIN, TTOU and CONT on its threads once they have taken one (to keep
// their order); a hook forked afterwards must still start with them as
// vigil found them, unblocked, or Ctrl-Z would not stop it.
func TestJobControlSignalsLeaveLaterChildrenUnblocked(t *testing.T) {
	for _, pid1 := range []bool{false, true} {
		t.Run(fmt.Sprintf("pid1=%v", pid1), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			file, mask := filepath.Join(dir, "runs"), filepath.Join(dir, "mask")
			hook := fmt.Sprintf(`/bin/sh -c 'grep SigBlk /proc/self/status > %s'`, mask)
			r := start(t, opts{pid1: pid1}, "--on-exit", hook, "--restart", "always", "--restart-max", "1",
				"--restart-delay", "10ms", "--", "/bin/sh", "-c", `echo start >> "$0"; grep SigBlk /proc/self/status >> "$0"; exec sleep 1000`, file)
			waitFile(t, file, "SigBlk", 10*time.Second)
			for range 200 {
				r.signal(unix.SIGTSTP)
				r.signal(unix.SIGCONT)
			}
			// The first run ends; the second and the hooks are forked
			// by threads that have had their share of the storm.
			for _, kid := range childrenOf(r.cmd.Process.Pid) {
				unix.Kill(kid.pid, unix.SIGKILL)
			}
			waitFor(t, 10*time.Second, "a second run", func() bool { return strings.Count(readOr(file), "SigBlk") >= 2 })
			r.signal(unix.SIGTERM)
			r.wait(30 * time.Second)
			for _, line := range append(strings.Split(strings.TrimSpace(readOr(file)), "\n"), readOr(mask)) {
				var blk uint64
				if _, err := fmt.Sscanf(strings.TrimPrefix(strings.TrimSpace(line), "SigBlk:"), "%x", &blk); err != nil {
					continue
				}
				if blk&0x3a0000 != 0 {
					t.Errorf("a child started with job-control signals blocked: %s (mask %#x)", line, blk)
				}
			}
			if readOr(mask) == "" {
				t.Errorf("the hook reported nothing\nstderr:\n%s", r.stderr)
			}
		})
	}
}

func readOr(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
