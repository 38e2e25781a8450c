package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Supervision (issue 14): --restart and --wait-all, with vigil as PID 1.

func init() {
	helpers["runs"] = runs
	helpers["worker"] = worker
	helpers["append-env"] = appendEnv
}

// runs is a command that behaves differently on each run: it appends
// "start N UNIXNANO" to FILE, where N counts its earlier runs, and then
// follows SPECS[N] (the last one past the end):
//
//	exit:CODE            exit with CODE
//	worker:MS:CODE       leave a detached worker that lives MS ms, then exit CODE
//	noisy:MS:CODE        the same, with a worker that writes to stderr every 50 ms
//	wait-file:CODE       wait until FILE.go exists, then exit CODE
//	sleep                sleep until a signal ends it
func runs(args []string) int {
	file, specs := args[0], args[1:]
	b, _ := os.ReadFile(file)
	n := strings.Count(string(b), "start ")
	f, err := os.OpenFile(file, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return 90
	}
	fmt.Fprintf(f, "start %d %d\n", n, time.Now().UnixNano())
	f.Close()
	spec := strings.Split(specs[min(n, len(specs)-1)], ":")
	switch spec[0] {
	case "exit":
		return mustAtoi(spec[1])
	case "worker", "noisy":
		// Double fork into a new session: the worker is reparented to
		// vigil when its parent exits.
		mid := exec.Command(os.Args[0], "worker", file+".worker", spec[1], spec[0])
		mid.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		mid.Stderr = os.Stderr
		if err := mid.Start(); err != nil {
			return 91
		}
		awaitFile(file+".worker", "started")
		return mustAtoi(spec[2])
	case "wait-file":
		awaitFile(file+".go", "")
		return mustAtoi(spec[1])
	case "sleep":
		time.Sleep(time.Hour)
	}
	return 92
}

// awaitFile is waitFile for a helper: after a minute it gives up and
// exits 97, saying so, rather than hang.
func awaitFile(path, want string) {
	if !poll(time.Minute, func() bool {
		b, err := os.ReadFile(path)
		return err == nil && strings.Contains(string(b), want)
	}) {
		fmt.Fprintf(os.Stderr, "%s did not come to hold %q within a minute\n", path, want)
		os.Exit(97)
	}
}

// worker writes "started PID" to FILE, lives MS milliseconds (a SIGTERM
// ends it early, noted as "term"), then appends "done" and exits 0.
func worker(args []string) int {
	c := make(chan os.Signal, 1)
	signal.Notify(c, unix.SIGTERM)
	writeFile(args[0], fmt.Sprintf("started %d\n", os.Getpid()))
	if len(args) > 2 && args[2] == "noisy" {
		// A SIGPIPE here (no reader left on the stderr pipe) kills it.
		go func() {
			for {
				fmt.Fprintln(os.Stderr, "worker tick")
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	select {
	case <-time.After(time.Duration(mustAtoi(args[1])) * time.Millisecond):
		writeFile(args[0], fmt.Sprintf("started %d\ndone\n", os.Getpid()))
	case <-c:
		writeFile(args[0], fmt.Sprintf("started %d\nterm\n", os.Getpid()))
	}
	return 0
}

// appendEnv is a hook: it appends the value of VAR to FILE.
func appendEnv(args []string) int {
	f, err := os.OpenFile(args[0], os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return 90
	}
	defer f.Close()
	fmt.Fprintln(f, os.Getenv(args[1]))
	return 0
}

// starts reads the start times runs wrote.
func starts(t *testing.T, file string) []time.Time {
	t.Helper()
	b, _ := os.ReadFile(file)
	var out []time.Time
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 {
			ns, _ := strconv.ParseInt(f[2], 10, 64)
			out = append(out, time.Unix(0, ns))
		}
	}
	return out
}

func TestRestartOnFailureUpToTheMaximum(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file, tomb, hooks := filepath.Join(dir, "runs"), filepath.Join(dir, "tomb.json"), filepath.Join(dir, "hooks")
	status, stderr := vigil(t, opts{pid1: true}, "--restart", "on-failure", "--restart-max", "2", "--restart-delay", "50ms",
		"--tombstone", tomb, "--on-exit", hookLine(helper("append-env", hooks, "VIGIL_RESTARTS")...),
		"--", self, "runs", file, "exit:3")
	if status != 3 {
		t.Fatalf("status %d, want the last run's 3\nstderr:\n%s", status, stderr)
	}
	if n := len(starts(t, file)); n != 3 {
		t.Errorf("%d runs, want 3 (two restarts)", n)
	}
	ts := readTombstone(t, tomb)
	ts.check(t, map[string]any{"state": "exited", "class": "failure", "exit_status": 3, "restarts": 2})
	if b, _ := os.ReadFile(hooks); string(b) != "0\n1\n2\n" {
		t.Errorf("hooks saw VIGIL_RESTARTS %q, want 0, 1, 2", b)
	}
}

func TestRestartOnFailureEndsAfterASuccess(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "runs")
	status, stderr := vigil(t, opts{pid1: true}, "--restart", "on-failure", "--restart-delay", "50ms",
		"--", self, "runs", file, "exit:3", "exit:0", "exit:5")
	if status != 0 || len(starts(t, file)) != 2 {
		t.Errorf("status %d after %d runs, want 0 after 2\nstderr:\n%s", status, len(starts(t, file)), stderr)
	}
}

func TestRestartAlwaysBacksOffMoreEachTime(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "runs")
	status, stderr := vigil(t, opts{pid1: true}, "--restart", "always", "--restart-max", "3", "--restart-delay", "100ms",
		"--restart-delay-max", "5s", "--", self, "runs", file, "exit:0")
	at := starts(t, file)
	if status != 0 || len(at) != 4 {
		t.Fatalf("status %d after %d runs, want 0 after 4\nstderr:\n%s", status, len(at), stderr)
	}
	var gaps []time.Duration
	for i := 1; i < len(at); i++ {
		gaps = append(gaps, at[i].Sub(at[i-1]))
	}
	// 100, 200, 400 ms of delay plus each run's own start-up.
	if gaps[0] < 100*time.Millisecond || gaps[1] < gaps[0]+50*time.Millisecond || gaps[2] < gaps[1]+100*time.Millisecond {
		t.Errorf("gaps between starts %v: want each about twice the one before, from 100ms", gaps)
	}
}

func TestStopSignalDuringTheBackoffEndsVigilAtOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file, tomb := filepath.Join(dir, "runs"), filepath.Join(dir, "tomb.json")
	r := start(t, opts{pid1: true}, "--restart", "on-failure", "--restart-delay", "20s", "--tombstone", tomb,
		"--", self, "runs", file, "exit:3")
	// In the backoff: starting again, with the first run's end (starting
	// alone is also what vigil writes at start).
	waitFile(t, tomb, `"exit_status":3`, 10*time.Second)
	began := time.Now()
	r.signal(unix.SIGTERM)
	r.expect(3)
	if took := time.Since(began); took > 3*time.Second {
		t.Errorf("vigil took %s to end after a SIGTERM in its backoff", took)
	}
	if n := len(starts(t, file)); n != 1 {
		t.Errorf("%d runs, want 1: no restart after a stop", n)
	}
	readTombstone(t, tomb).check(t, map[string]any{"state": "exited", "exit_status": 3})
}

func TestStopSignalWhileRunningIsNotFollowedByARestart(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "runs")
	r := start(t, opts{pid1: true}, "--restart", "always", "--restart-delay", "50ms", "--", self, "runs", file, "sleep")
	waitFile(t, file, "start 0", 10*time.Second)
	r.signal(unix.SIGTERM)
	r.expect(143)
	if n := len(starts(t, file)); n != 1 {
		t.Errorf("%d runs, want 1", n)
	}
}

// TestDetachedWorkerOutlivesARestart is the server-and-workers case: the
// first run leaves a worker and fails; the restart does not touch it; it
// finishes its work and is reaped.
func TestDetachedWorkerOutlivesARestart(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "runs")
	r := start(t, opts{pid1: true}, "--restart", "on-failure", "--restart-delay", "50ms",
		"--", self, "runs", file, "worker:1500:3", "wait-file:0")
	waitFile(t, file, "start 1", 10*time.Second)
	got := waitFile(t, file+".worker", "started", 10*time.Second)
	wpid, _ := strconv.Atoi(strings.Fields(got)[1])
	if err := unix.Kill(wpid, 0); err != nil {
		t.Fatalf("the worker is gone after the restart: %v", err)
	}
	waitFile(t, file+".worker", "done", 10*time.Second)
	if !poll(10*time.Second, func() bool { return zombieChildren(r.cmd.Process.Pid) == 0 }) {
		t.Fatalf("the worker was left a zombie\nstderr:\n%s", r.stderr)
	}
	writeFile(file+".go", "go")
	r.expect(0)
}

func TestWaitAllWaitsForADetachedWorker(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "runs")
	began := time.Now()
	status, stderr := vigil(t, opts{pid1: true}, "--wait-all", "--", self, "runs", file, "worker:1000:4")
	if status != 4 {
		t.Fatalf("status %d, want the main child's 4\nstderr:\n%s", status, stderr)
	}
	if b, _ := os.ReadFile(file + ".worker"); !strings.Contains(string(b), "done") || time.Since(began) < time.Second {
		t.Errorf("vigil exited before the worker finished: %q", b)
	}
}

func TestWaitAllForwardsAStopToTheWorkers(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "runs")
	r := start(t, opts{pid1: true}, "--wait-all", "--", self, "runs", file, "worker:60000:4")
	waitFile(t, file+".worker", "started", 10*time.Second)
	// The main child has exited once its worker started; wait until vigil
	// has reaped it, so the TERM lands in the wait for the worker.
	if !poll(10*time.Second, func() bool { return len(childrenOf(r.cmd.Process.Pid)) == 1 }) {
		t.Fatalf("vigil's children never came down to the worker: %v", childrenOf(r.cmd.Process.Pid))
	}
	r.signal(unix.SIGTERM)
	r.expect(4)
	if b, _ := os.ReadFile(file + ".worker"); !strings.Contains(string(b), "term") {
		t.Errorf("the worker did not get the SIGTERM: %q", b)
	}
}

// child is a process whose parent was asked about.
type child struct {
	pid   int
	state string
}

// childrenOf lists the processes whose parent is pid, from the host's
// /proc.
func childrenOf(pid int) []child {
	names, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []child
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		end := strings.LastIndexByte(string(b), ')')
		f := strings.Fields(string(b[end+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			n, _ := strconv.Atoi(strings.Fields(string(b))[0])
			out = append(out, child{pid: n, state: f[0]})
		}
	}
	return out
}

// TestCapturedStderrSurvivesARestart: under --capture-tail the workers of
// an earlier run keep writing to the captured stderr after the restart;
// they must keep their reader, and the restart must not wait for an end
// of file they hold off.
func TestCapturedStderrSurvivesARestart(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "runs")
	r := start(t, opts{pid1: true}, "--capture-tail", "4096", "--restart", "on-failure", "--restart-delay", "50ms",
		"--", self, "runs", file, "noisy:1500:3", "wait-file:0")
	waitFile(t, file+".worker", "done", 10*time.Second)
	at := starts(t, file)
	if len(at) != 2 {
		t.Fatalf("%d runs, want 2", len(at))
	}
	if gap := at[1].Sub(at[0]); gap > time.Second {
		t.Errorf("the restart came %s after the first start: it waited for the end of a pipe a worker holds", gap)
	}
	writeFile(file+".go", "go")
	r.expect(0)
	if !strings.Contains(r.stderr.String(), "worker tick") {
		t.Errorf("the worker's stderr did not come through vigil:\n%s", r.stderr)
	}
}
