package e2e

import (
	"encoding/json"
	"fmt"
	"io"
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

// Issue 10, "a PID 1 that is never lost", and the stop budget of issue 11,
// seen from outside with vigil as PID 1.

func init() {
	helpers["hwm"] = parentHWM
	helpers["spew-bytes"] = spewBytes
}

// parentHWM is a hook: it writes its parent's (vigil's) VmHWM in kB and the
// size and validity of the JSON on its stdin to FILE.
func parentHWM(args []string) int {
	payload, _ := io.ReadAll(os.Stdin)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", os.Getppid()))
	if err != nil {
		return 90
	}
	hwm := ""
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			hwm = strings.TrimSuffix(strings.TrimSpace(v), " kB")
		}
	}
	writeFile(args[0], fmt.Sprintf("hwm=%s json=%d valid=%v\n", hwm, len(payload), json.Valid(payload)))
	return 0
}

// spewBytes writes MIB mebibytes of every byte value to stderr and exits 3.
func spewBytes(args []string) int {
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i * 7)
	}
	for range mustAtoi(args[0]) {
		os.Stderr.Write(chunk)
	}
	return 3
}

func mkfifo(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(p, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRecordPathsAreCheckedAtStart(t *testing.T) {
	dir := t.TempDir()
	fifo := mkfifo(t, dir)
	missing := filepath.Join(dir, "no", "such", "dir", "record.json")
	for _, tt := range []struct{ flag, path string }{
		{"--termination-log", fifo}, {"--tombstone", fifo},
		{"--termination-log", missing}, {"--tombstone", missing},
	} {
		t.Run(tt.flag+" "+filepath.Base(filepath.Dir(tt.path)), func(t *testing.T) {
			started := filepath.Join(t.TempDir(), "started")
			status, stderr := vigil(t, opts{pid1: os.Geteuid() == 0}, tt.flag, tt.path, "--", self, "started", started)
			if status != 2 || !strings.Contains(stderr, tt.flag+" "+strconv.Quote(tt.path)) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
				t.Errorf("status %d, want 2 with one line naming %s %q\nstderr:\n%s", status, tt.flag, tt.path, stderr)
			}
			if pathExists(started) {
				t.Error("the command ran although a record path was bad")
			}
		})
	}
}

// TestAFIFOTargetNeverBlocksTheLoop: a --stop-on tombstone that is a FIFO
// used to block vigil in read(2), with the child left a zombie and signals
// never forwarded.
func TestAFIFOTargetNeverBlocksTheLoop(t *testing.T) {
	dir := t.TempDir()
	fifo, file := mkfifo(t, dir), filepath.Join(dir, "stamps")
	r := start(t, opts{pid1: true}, vigilArgs([]string{"--stop-on", "tombstone:" + fifo}, helper("stamps", file, "5"))...)
	readyPid(t, file)
	r.signal(unix.SIGUSR1)
	if got := r.wait(10 * time.Second); got != 5 {
		t.Fatalf("vigil exited %d, want 5 (the child's answer to a forwarded USR1)\nstderr:\n%s", got, r.stderr)
	}
}

func TestExecFailureIsRecordedAndHooked(t *testing.T) {
	dir := t.TempDir()
	tomb, term, hook := filepath.Join(dir, "tomb.json"), filepath.Join(dir, "term"), filepath.Join(dir, "hook")
	status, stderr := vigil(t, opts{pid1: true}, "--tombstone", tomb, "--termination-log", term,
		"--on-exit", hookLine(helper("hookdump", hook)...), "--", "vigil-no-such-command")
	if status != 127 || !strings.Contains(stderr, "vigil-no-such-command: not found") {
		t.Fatalf("status %d, want 127 with the error\nstderr:\n%s", status, stderr)
	}
	readTombstone(t, tomb).check(t, map[string]any{"state": "exited", "class": "failure", "exit_status": 127,
		"exit_code": 127, "pid": 0, "signal": ""})
	if b, _ := os.ReadFile(term); !strings.HasPrefix(string(b), "vigil-no-such-command: failure, exit status 127\n") {
		t.Errorf("termination log %q", b)
	}
	rep := readReport(t, hook, stderr)
	for k, want := range map[string]string{"VIGIL_CLASS": "failure", "VIGIL_EXIT_STATUS": "127",
		"VIGIL_ERROR": "vigil-no-such-command: not found", "VIGIL_PID": "0"} {
		if rep.Env[k] != want {
			t.Errorf("hook saw %s=%q, want %q", k, rep.Env[k], want)
		}
	}
}

// TestOrphansAreReapedWhileWaiting: processes that enter the namespace
// while vigil waits for --wait-for targets (docker exec, probes) and
// leave orphans behind are reaped at once, not after the wait.
func TestOrphansAreReapedWhileWaiting(t *testing.T) {
	needRoot(t)
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		t.Skip("needs nsenter (util-linux) to enter vigil's PID namespace")
	}
	dir := t.TempDir()
	r := start(t, opts{pid1: true}, "--wait-for", "file:"+filepath.Join(dir, "never"), "--", self, "exit", "0")
	vpid := r.cmd.Process.Pid
	waitFile(t, fmt.Sprintf("/proc/%d/status", vpid), "vigil", 10*time.Second)
	for range 5 {
		// "detach" starts a grandchild in a new session and exits: the
		// grandchild is an orphan of the namespace's PID 1, vigil.
		cmd := exec.Command(nsenter, "-t", strconv.Itoa(vpid), "-p", "--", self, "detach")
		cmd.Env = append(os.Environ(), "E2E_HELPER=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nsenter: %v\n%s", err, out)
		}
	}
	var zombies int
	if !poll(10*time.Second, func() bool { zombies = zombieChildren(vpid); return zombies == 0 }) {
		t.Fatalf("%d orphans are still zombies of vigil while it waits\nstderr:\n%s", zombies, r.stderr)
	}
	r.signal(unix.SIGTERM)
	r.expect(143)
}

// zombieChildren counts the zombies whose parent is pid, from the host's
// /proc.
func zombieChildren(pid int) int {
	n := 0
	for _, c := range childrenOf(pid) {
		if c.state == "Z" {
			n++
		}
	}
	return n
}

// TestOutsideStopWaitsForASlowChild: docker stop -t 30 on an app that
// needs 12 s to stop cleanly exits 0 under tini; vigil used to SIGKILL it
// at its own 10 s. The runtime owns that deadline now.
func TestOutsideStopWaitsForASlowChild(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "ready")
	r := start(t, opts{pid1: true}, "--", self, "slow-stop", file, "12s")
	waitFile(t, file, "ready", 10*time.Second)
	r.signal(unix.SIGTERM)
	r.expect(0)
}

func TestExplicitGraceStillKillsAfterAnOutsideStop(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "ready")
	r := start(t, opts{pid1: true}, "--grace", "1s", "--", self, "slow-stop", file, "20s")
	waitFile(t, file, "ready", 10*time.Second)
	began := time.Now()
	r.signal(unix.SIGTERM)
	r.expect(137)
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("the explicit 1s grace ended the child after %s", took)
	}
}

// TestLeftoverIgnoringTERMDoesNotHoldTheExitLong: the main child is done;
// a leftover that ignores SIGTERM gets the short cleanup grace, not 10 s.
func TestLeftoverIgnoringTERMDoesNotHoldTheExitLong(t *testing.T) {
	t.Parallel()
	daemon := filepath.Join(t.TempDir(), "daemon")
	began := time.Now()
	status, stderr := vigil(t, opts{pid1: true}, "--", self, "spawn-daemon", daemon, "stay", "4")
	took := time.Since(began)
	if status != 4 {
		t.Fatalf("status %d, want 4\nstderr:\n%s", status, stderr)
	}
	if took > 6*time.Second {
		t.Errorf("vigil took %s to exit after its child; the leftover should get about 2s", took)
	}
}

// TestAStopSignalBeforeTheTimeoutIsNotATimeout: the first stop wins.
func TestAStopSignalBeforeTheTimeoutIsNotATimeout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file, tomb := filepath.Join(dir, "ready"), filepath.Join(dir, "tomb.json")
	r := start(t, opts{pid1: true}, "--timeout", "1500ms", "--tombstone", tomb, "--", self, "slow-stop", file, "1500ms")
	waitFile(t, file, "ready", 10*time.Second)
	r.signal(unix.SIGTERM)
	r.expect(0)
	readTombstone(t, tomb).check(t, map[string]any{"state": "exited", "class": "success", "exit_status": 0})
}

func TestStopSignalRewrittenToNoneStopsNothing(t *testing.T) {
	file := filepath.Join(t.TempDir(), "stamps")
	r := start(t, opts{pid1: true}, "-r", "TERM:none", "--grace", "1s", "--", self, "stamps", file, "0")
	readyPid(t, file)
	r.signal(unix.SIGTERM)
	r.signal(unix.SIGUSR1) // the child ends on the first signal it gets
	r.expect(0)
	if names, _ := stampsOf(t, file); strings.Join(names, ",") != "SIGUSR1" {
		t.Errorf("child received %v, want only SIGUSR1: a TERM rewritten to none reaches no one", names)
	}
}

func TestScriptWithoutShebangRunsThroughTheShell(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	script := filepath.Join(t.TempDir(), "script")
	os.WriteFile(script, []byte("exit $(( $1 + 2 ))\n"), 0o755)
	status, stderr := vigil(t, opts{pid1: os.Geteuid() == 0}, "--", script, "3")
	if status != 5 {
		t.Errorf("status %d, want 5 from a script without #! run by /bin/sh\nstderr:\n%s", status, stderr)
	}
}

// TestCaptureTailMemoryStaysNearItsSize: vigil's peak memory used to reach
// 30 times --capture-tail at the end of a run with binary stderr.
func TestCaptureTailMemoryStaysNearItsSize(t *testing.T) {
	const tailMiB = 16
	dir := t.TempDir()
	report := filepath.Join(dir, "hwm")
	devnull, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	defer devnull.Close()
	argv := shimmed(nil, vigilBin, "--capture-tail", strconv.Itoa(tailMiB<<20), "--on-exit", hookLine(helper("hwm", report)...),
		"--", self, "spew-bytes", "48")
	r := startVia(t, via{argv: argv, pid1: true, stderr: devnull})
	if got := r.wait(60 * time.Second); got != 3 {
		t.Fatalf("vigil exited %d, want 3", got)
	}
	var hwm, size int
	var valid bool
	got := waitFile(t, report, "hwm=", 10*time.Second)
	if _, err := fmt.Sscanf(got, "hwm=%d json=%d valid=%t", &hwm, &size, &valid); err != nil {
		t.Fatalf("hook report %q: %v", got, err)
	}
	limit := 2*tailMiB<<10 + 20<<10 // kB: twice the tail plus what vigil needs anyway
	t.Logf("--capture-tail %d MiB of binary stderr: vigil's VmHWM %d kB, the hook's JSON %d bytes", tailMiB, hwm, size)
	if hwm > limit {
		t.Errorf("vigil's peak memory %d kB, want at most %d kB (2 x the tail + 20 MiB)", hwm, limit)
	}
	if !valid || size > 1<<20 {
		t.Errorf("the hook's JSON is %d bytes, valid %v: want valid and bounded", size, valid)
	}
}

// TestEndLineComesAfterTheChildsStderr: vigil's own end-of-run line must
// not land in the middle of the child's stderr that it passes through.
func TestEndLineComesAfterTheChildsStderr(t *testing.T) {
	for range 5 {
		status, stderr := vigil(t, opts{pid1: true}, "-v", "--capture-tail", "4096", "--", self, "stderr-lines", "20000", "3")
		if status != 3 {
			t.Fatalf("status %d, want 3", status)
		}
		last := strings.LastIndex(stderr, "line 20000 of the child's complaint")
		end := strings.Index(stderr, `msg="child ended"`)
		if last < 0 || end < 0 || end < last {
			t.Fatalf("the end line (at %d) is not after the child's last line (at %d)", end, last)
		}
	}
}

func init() { helpers["oom-then-stay"] = oomThenStay }

// oomThenStay runs a memory hog as a worker of its own and waits for the
// OOM killer to end it, then writes "ready" to FILE and ignores SIGTERM:
// a gunicorn-style server whose worker was OOM-killed, stopping slowly.
func oomThenStay(args []string) int {
	hog := exec.Command(os.Args[0], "hog", "1024")
	err := hog.Run()
	signal.Ignore(unix.SIGTERM)
	writeFile(args[0], fmt.Sprintf("ready worker=%v", err))
	time.Sleep(time.Hour)
	return 0
}

// TestOwnSIGKILLIsNeverOOM: vigil's SIGKILL after the grace period used to
// be classed oom when some other process of the cgroup had been OOM-killed
// earlier, turning a slow shutdown into an OOM alert.
func TestOwnSIGKILLIsNeverOOM(t *testing.T) {
	procs := memoryCgroup(t, 32<<20)
	dir := t.TempDir()
	ready, tomb := filepath.Join(dir, "ready"), filepath.Join(dir, "tomb.json")
	r := start(t, opts{pid1: true, env: []string{"E2E_CGROUP_PROCS=" + procs}},
		"--grace", "500ms", "--tombstone", tomb, "--", self, "oom-then-stay", ready)
	got := waitFile(t, ready, "ready", 20*time.Second)
	if !strings.Contains(got, "killed") {
		t.Fatalf("the worker was not OOM-killed: %s", got)
	}
	r.signal(unix.SIGTERM)
	r.expect(137)
	readTombstone(t, tomb).check(t, map[string]any{"state": "exited", "class": "kill", "signal": "SIGKILL"})
}
