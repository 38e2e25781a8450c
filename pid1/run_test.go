package pid1

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vigil/reaper"
)

// These tests run the whole supervisor in the test process, on real
// children started through /bin/sh, without root: the loop, the reaper,
// the records, the hooks and the watchers, wired as vigil wires them. The
// test process becomes a subreaper on the first Run, as vigil would.

// runMu serialises Runs: a Run reaps every child of the process.
var runMu sync.Mutex

type logBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func sh(script string) []string { return []string{"/bin/sh", "-c", script} }

// runCfg runs cfg to the end, with a bound, and returns status, error and
// vigil's log.
func runCfg(t *testing.T, ctx context.Context, cfg Config) (int, string, error) {
	t.Helper()
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	runMu.Lock()
	defer runMu.Unlock()
	log := &logBuf{}
	cfg.Log = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// Shorter than DefaultConfig's, so that a test that goes wrong ends
	// sooner; the settings whose zero means the default are left at zero.
	if cfg.Grace == 0 {
		cfg.Grace = 5 * time.Second
	}
	if cfg.CleanupGrace == 0 {
		cfg.CleanupGrace = time.Second
	}
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, err := Run(ctx, cfg)
		done <- result{code, err}
	}()
	select {
	case r := <-done:
		return r.code, log.String(), r.err
	case <-time.After(30 * time.Second):
		t.Fatalf("Run did not return within 30s\nlog:\n%s", log)
	}
	return 0, "", nil
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v\n%s", path, err, b)
	}
}

func TestRunRecordsHooksAndTail(t *testing.T) {
	dir := t.TempDir()
	tomb, term := filepath.Join(dir, "tomb.json"), filepath.Join(dir, "term")
	hookOut, dirHookOut := filepath.Join(dir, "hook"), filepath.Join(dir, "dirhook")
	hooksDir := filepath.Join(dir, "hooks")
	os.MkdirAll(filepath.Join(hooksDir, "on-exit.d"), 0o755)
	os.WriteFile(filepath.Join(hooksDir, "on-exit.d", "10-record"),
		[]byte("#!/bin/sh\ncat > "+dirHookOut+"\n"), 0o755)
	os.WriteFile(filepath.Join(hooksDir, "on-exit.d", "20-not-executable"), []byte("#!/bin/sh\n"), 0o644)
	cfg := Config{
		Command:        sh("echo oops >&2; sleep 60 & exit 3"),
		Tombstone:      tomb,
		TerminationLog: term,
		HooksDir:       hooksDir,
		CaptureTail:    1024,
		Hooks: map[Class][][]string{
			Failure: {{"/bin/sh", "-c", `echo "$VIGIL_CLASS $VIGIL_EXIT_STATUS $(cat "$VIGIL_STDERR_TAIL")" > ` + hookOut}},
			OnExit:  {{"/nonexistent/hook"}},
		},
	}
	code, log, err := runCfg(t, context.Background(), cfg)
	if code != 3 || err != nil {
		t.Fatalf("Run = %d, %v; want 3, nil\nlog:\n%s", code, err, log)
	}
	var ts Tombstone
	readJSON(t, tomb, &ts)
	if ts.State != "exited" || ts.Class == nil || *ts.Class != Failure || *ts.ExitStatus != 3 {
		t.Errorf("tombstone %+v, want exited failure 3", ts)
	}
	if b, _ := os.ReadFile(term); !strings.HasPrefix(string(b), "sh: failure, exit status 3\nlast stderr:\noops\n") {
		t.Errorf("termination log %q", b)
	}
	if b, _ := os.ReadFile(hookOut); string(b) != "failure 3 oops\n" {
		t.Errorf("--on-failure hook wrote %q, want %q\nlog:\n%s", b, "failure 3 oops\n", log)
	}
	var facts hookFacts
	readJSON(t, dirHookOut, &facts)
	if facts.Class != Failure || facts.StderrTail == nil || *facts.StderrTail != "oops\n" {
		t.Errorf("hooks dir hook read %+v", facts)
	}
	for _, want := range []string{"killing leftover process", "hook not run", "skipping hook file that is not executable"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

func TestRunExecFailureIsRecorded(t *testing.T) {
	dir := t.TempDir()
	tomb, hookOut := filepath.Join(dir, "tomb.json"), filepath.Join(dir, "hook")
	code, log, err := runCfg(t, context.Background(), Config{
		Command:   []string{"/nonexistent/command"},
		Tombstone: tomb,
		Hooks:     map[Class][][]string{OnExit: {sh(`echo "$VIGIL_CLASS $VIGIL_EXIT_STATUS $VIGIL_ERROR" > ` + hookOut)[0:3]}},
	})
	var e *Error
	if code != ExitNotFound || !errors.As(err, &e) || e.Code != ExitNotFound {
		t.Fatalf("Run = %d, %v; want 127 with an *Error\nlog:\n%s", code, err, log)
	}
	var ts Tombstone
	readJSON(t, tomb, &ts)
	if ts.State != "exited" || *ts.ExitStatus != 127 || !strings.Contains(ts.Error, "not found") {
		t.Errorf("tombstone %+v", ts)
	}
	if b, _ := os.ReadFile(hookOut); !strings.HasPrefix(string(b), "failure 127 /nonexistent/command: not found") {
		t.Errorf("hook wrote %q", b)
	}
}

func TestRunStopsOnCancelAndTimeout(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	code, log, _ := runCfg(t, ctx, Config{Command: sh("exec sleep 60")})
	if code != 143 {
		t.Errorf("cancelled Run = %d, want 143\nlog:\n%s", code, log)
	}
	code, log, _ = runCfg(t, context.Background(), Config{
		Command: sh(`trap "" TERM; sleep 60 & wait; sleep 60`), Timeout: 100 * time.Millisecond, Grace: 100 * time.Millisecond,
	})
	if code != 137 || !strings.Contains(log, "class=timeout") || !strings.Contains(log, "grace period over") {
		t.Errorf("timed-out Run = %d, want 137 with class timeout\nlog:\n%s", code, log)
	}
}

func TestRunWaitsForFilesAndStopsOnThem(t *testing.T) {
	dir := t.TempDir()
	ready, stop := filepath.Join(dir, "sub", "ready"), filepath.Join(dir, "stop")
	time.AfterFunc(100*time.Millisecond, func() {
		os.MkdirAll(filepath.Dir(ready), 0o755)
		os.WriteFile(ready, nil, 0o644)
	})
	started := filepath.Join(dir, "started")
	time.AfterFunc(500*time.Millisecond, func() { os.WriteFile(stop, nil, 0o644) })
	code, log, err := runCfg(t, context.Background(), Config{
		Command: sh("touch " + started + "; exec sleep 60"),
		WaitFor: []Target{{Kind: "file", Path: ready}},
		StopOn:  []Target{{Kind: "file", Path: stop}},
	})
	if code != 0 || err != nil || !strings.Contains(log, "class=stopped") {
		t.Errorf("Run = %d, %v; want 0, stopped\nlog:\n%s", code, err, log)
	}
	if _, err := os.Stat(started); err != nil {
		t.Errorf("the child never ran: %v", err)
	}

	code, _, err = runCfg(t, context.Background(), Config{
		Command: sh("exit 0"), WaitFor: []Target{{Kind: "file", Path: filepath.Join(dir, "never")}},
		WaitTimeout: 100 * time.Millisecond,
	})
	if code != ExitWaitTimeout || err == nil || !strings.Contains(err.Error(), "file:"+filepath.Join(dir, "never")) {
		t.Errorf("Run = %d, %v; want 124 naming the target", code, err)
	}
}

func TestRunNeverBlocksOnAFIFO(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, err := runCfg(t, context.Background(), Config{Command: sh("exit 0"), TerminationLog: fifo})
	if code != ExitUsage || err == nil || !strings.Contains(err.Error(), fifo) {
		t.Errorf("FIFO termination log: Run = %d, %v; want 2 naming the path", code, err)
	}
	code, _, err = runCfg(t, context.Background(), Config{Command: sh("exit 0"), Tombstone: fifo})
	if code != ExitUsage || err == nil {
		t.Errorf("FIFO tombstone: Run = %d, %v; want 2", code, err)
	}
	// A FIFO as a --stop-on tombstone is read without blocking: the child
	// runs to its end, nothing hangs.
	code, log, err := runCfg(t, context.Background(), Config{
		Command: sh("sleep 0.2; exit 4"), StopOn: []Target{{Kind: "tombstone", Path: fifo}},
	})
	if code != 4 || err != nil {
		t.Errorf("FIFO stop-on: Run = %d, %v; want 4\nlog:\n%s", code, err, log)
	}
	code, _, err = runCfg(t, context.Background(), Config{
		Command: sh("exit 0"), Tombstone: filepath.Join(dir, "missing", "tomb.json"),
	})
	if code != ExitUsage || err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("tombstone in a missing directory: Run = %d, %v; want 2", code, err)
	}
}

func TestRunForwardsSignals(t *testing.T) {
	dir := t.TempDir()
	got := filepath.Join(dir, "got")
	go func() {
		// Wait for the child to install its trap, then signal ourselves:
		// the intake catches it and the loop forwards it.
		for i := 0; i < 500; i++ {
			if _, err := os.Stat(got + ".ready"); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		unix.Kill(os.Getpid(), unix.SIGUSR2)
	}()
	code, log, _ := runCfg(t, context.Background(), Config{
		Command: sh(`trap 'echo USR2 > ` + got + `; exit 7' USR2; touch ` + got + `.ready; while :; do sleep 0.05; done`),
		Group:   true,
	})
	if code != 7 {
		t.Errorf("Run = %d, want 7 (the child's trap)\nlog:\n%s", code, log)
	}
}

func TestParseStatAndDescendants(t *testing.T) {
	line := []byte("42 (a (weird) name) S 7 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 12345 0 0")
	st, ok := parseStat(line)
	if !ok || st.comm != "a (weird) name" || st.ppid != 7 || st.state != 'S' || st.startTime != 12345 {
		t.Fatalf("parseStat = %+v, %v", st, ok)
	}
	if _, ok := parseStat([]byte("42 (x) S 7")); ok {
		t.Error("a short stat line parsed")
	}
	table := map[int]procStat{10: {ppid: 1}, 11: {ppid: 10}, 12: {ppid: 11}, 20: {ppid: 2}, 21: {ppid: 21}}
	got := map[int]bool{}
	for _, l := range descendants(10, table) {
		got[l.pid] = true
	}
	if len(got) != 2 || !got[11] || !got[12] {
		t.Errorf("descendants of 10 = %v, want 11 and 12", got)
	}
	if ours, _ := procView(); !ours {
		t.Log("this /proc is not the test's own namespace's")
	}
}

func TestReadRecordFileIsBounded(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	os.WriteFile(big, make([]byte, recordMax+1), 0o644)
	if _, _, err := readRecordFile(big); err == nil {
		t.Error("an oversized record was read")
	}
	link := filepath.Join(dir, "link")
	os.Symlink(big, link)
	if _, _, err := readRecordFile(link); err == nil {
		t.Error("a symlink was followed")
	}
	if _, _, err := readRecordFile(dir); err == nil {
		t.Error("a directory was read as a record")
	}
}

func TestTruncateAndHookVars(t *testing.T) {
	long := strings.Repeat("x", commandEnvMax+10)
	r := &record{command: []string{long}, started: t0, ended: t0}
	for _, kv := range r.env() {
		if len(kv) > commandEnvMax+len("VIGIL_COMMAND=") {
			t.Errorf("%.20s... is %d bytes", kv, len(kv))
		}
	}
	if got := withoutHookVars([]string{"VIGIL_CLASS=x", "PATH=/bin", "VIGIL_ERROR=y"}); len(got) != 1 || got[0] != "PATH=/bin" {
		t.Errorf("withoutHookVars = %q", got)
	}
}

// TestHookVarsAreOneList: the variables a hook gets and the ones dropped
// from what it inherits are the same list (hookVars, and the tail's file),
// with the values the README documents.
func TestHookVarsAreOneList(t *testing.T) {
	r := &record{class: Failure, exit: reaper.Exit{Pid: 7, Code: 3}, status: 3, command: []string{"app", "-x"},
		started: t0, ended: t0.Add(1500 * time.Millisecond), restarts: 2, oomKills: 1, statusText: "busy"}
	want := []string{"VIGIL_CLASS=failure", "VIGIL_EXIT_STATUS=3", "VIGIL_EXIT_CODE=3", "VIGIL_SIGNAL=", "VIGIL_CORE_DUMPED=0",
		"VIGIL_PID=7", "VIGIL_COMMAND=app -x", "VIGIL_STARTED_AT=2026-11-23T12:00:00Z", "VIGIL_ENDED_AT=2026-11-23T12:00:01.5Z",
		"VIGIL_DURATION_MS=1500", "VIGIL_ERROR=", "VIGIL_RESTARTS=2", "VIGIL_OOM_KILLS=1", "VIGIL_STATUS=busy"}
	got := r.env()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("env:\n got  %q\n want %q", got, want)
	}
	killed := &record{class: Fault, exit: reaper.Exit{Pid: 7, Signal: unix.SIGSEGV, CoreDumped: true}, started: t0, ended: t0}
	for _, kv := range []string{"VIGIL_EXIT_CODE=", "VIGIL_SIGNAL=SIGSEGV", "VIGIL_CORE_DUMPED=1"} {
		if !slices.Contains(killed.env(), kv) {
			t.Errorf("a core dump's env has no %s: %q", kv, killed.env())
		}
	}
	stale := append(slices.Clone(got), stderrTailVar+"=/tmp/old", "NOTIFY_SOCKET=/run/n", "WATCHDOG_USEC=1", "WATCHDOG_PID=1", "PATH=/bin", "VIGIL_OTHER=kept")
	if kept := withoutHookVars(stale); strings.Join(kept, " ") != "PATH=/bin VIGIL_OTHER=kept" {
		t.Errorf("withoutHookVars kept %q", kept)
	}
}

// TestRunReadinessRestartAndRelay drives the readiness, restart and relay
// paths of the loop in-process: --ready-on, --notify with the real
// systemd-notify when installed, the relay to this test's own socket,
// --watchdog's environment, --capture-tail across a restart.
func TestRunReadinessRestartAndRelay(t *testing.T) {
	dir := t.TempDir()
	up := "@vigil-unit-upstream-" + strconv.Itoa(os.Getpid())
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: up, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t.Setenv("NOTIFY_SOCKET", up)
	t.Setenv("WATCHDOG_PID", "4242") // vigil's manager's; never the child's
	tomb, flag, env := filepath.Join(dir, "tomb.json"), filepath.Join(dir, "flag"), filepath.Join(dir, "env")
	notifyCmd := "true"
	if sn, err := exec.LookPath("systemd-notify"); err == nil {
		notifyCmd = sn + " --status=serving"
	}
	script := `env > ` + env + `; touch ` + flag + `; ` + notifyCmd + `; echo oops >&2; sleep 0.2; exit 1`
	code, log, err := runCfg(t, context.Background(), Config{
		Command: sh(script), Tombstone: tomb, Notify: true, Watchdog: 5 * time.Second,
		WatchdogSignal: unix.SIGABRT, ReadyOn: []Target{{Kind: "file", Path: flag}},
		Restart: RestartOnFailure, RestartMax: 1, RestartDelay: 10 * time.Millisecond,
		RestartDelayMax: time.Second, CaptureTail: 1024,
	})
	if code != 1 || err != nil {
		t.Fatalf("Run = %d, %v; want the last run's 1\nlog:\n%s", code, err, log)
	}
	var ts Tombstone
	readJSON(t, tomb, &ts)
	if ts.State != "exited" || ts.Restarts != 1 || ts.ReadyAt == nil {
		t.Errorf("tombstone %+v: want exited after 1 restart, with ready_at", ts)
	}
	b, _ := os.ReadFile(env)
	// The socket is a path in a private directory (/run as root, else
	// TMPDIR or /tmp).
	for _, want := range []string{"NOTIFY_SOCKET=/", "/vigil-notify-", "WATCHDOG_USEC=5000000"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the child's environment lacks %s", want)
		}
	}
	if strings.Contains(string(b), "WATCHDOG_PID=") {
		t.Error("the child got vigil's manager's WATCHDOG_PID")
	}
	// vigil's own READY=1 (from --ready-on), relayed upstream.
	// The child's STATUS= may come first: read until READY=1.
	l.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got []string
	for {
		buf := make([]byte, 4096)
		n, err := l.Read(buf)
		if err != nil {
			t.Errorf("upstream got %q, then %v; want READY=1", got, err)
			break
		}
		if got = append(got, string(buf[:n])); strings.Contains(string(buf[:n]), "READY=1") {
			break
		}
	}
}

func TestRunWaitAllWaitsForADetachedProcess(t *testing.T) {
	began := time.Now()
	code, log, err := runCfg(t, context.Background(), Config{Command: sh("(sleep 0.3 &) ; exit 2"), WaitAll: true})
	if code != 2 || err != nil || time.Since(began) < 300*time.Millisecond {
		t.Errorf("Run = %d, %v after %s; want 2 once the detached sleep ended\nlog:\n%s", code, err, time.Since(began), log)
	}
}
