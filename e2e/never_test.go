package e2e

// Issue 10, items 6, 8, 9 and 10: what vigil does to itself never stops
// it or reaches the child; hooks run whatever the command line and their
// daemons are cleaned up; a /proc of another namespace never chooses a
// target; the signals Go reserves neither end vigil nor reach the child.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func init() {
	helpers["job-shell"] = jobShell
	helpers["job-child"] = jobChild
	helpers["hook-facts"] = hookFactsDump
	helpers["with-all-blocked"] = withAllBlocked
}

// A terminal whose output the test keeps.
type capturedPTY struct {
	pts  *os.File
	mu   sync.Mutex
	out  strings.Builder
	done chan struct{}
}

// openCapturedPTY opens a pseudo-terminal and keeps everything written to
// it, until every holder of its slave side has closed it.
func openCapturedPTY(t *testing.T) *capturedPTY {
	t.Helper()
	m, s := newPTY(t)
	p := &capturedPTY{pts: s, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		buf := make([]byte, 4096)
		for {
			n, err := m.Read(buf)
			p.mu.Lock()
			p.out.Write(buf[:n])
			p.mu.Unlock()
			if err != nil {
				return // EIO once the last slave descriptor is closed
			}
		}
	}()
	return p
}

// output closes the test's own slave descriptor and returns all that was
// written to the terminal, once the other holders have closed theirs.
func (p *capturedPTY) output(t *testing.T) string {
	t.Helper()
	p.pts.Close()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Errorf("the terminal was still held open 10s after the job ended")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// startShell runs the job-shell helper as the session leader of the
// terminal: a stand-in for an interactive shell running vigil as a job.
func startShell(t *testing.T, p *capturedPTY, env []string, args ...string) *run {
	t.Helper()
	r := &run{t: t, stderr: &bytes.Buffer{}, stdout: &bytes.Buffer{}, done: make(chan struct{})}
	r.cmd = exec.Command(self, append([]string{"job-shell"}, args...)...)
	r.cmd.Env = append(os.Environ(), "E2E_HELPER=1", "GODEBUG=containermaxprocs=0,updatemaxprocs=0")
	r.cmd.Env = append(r.cmd.Env, env...)
	r.cmd.Dir = t.TempDir()
	r.cmd.Stdin, r.cmd.Stdout, r.cmd.Stderr = p.pts, p.pts, p.pts
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	r.launch()
	return r
}

// shellArgs is job-shell's command line for vigil with args, as PID 1 of
// new namespaces or not.
func shellArgs(report, mode string, pid1 bool, args ...string) []string {
	ns := "host"
	if pid1 {
		ns = "pid1"
	}
	return append([]string{report, mode, ns, "--", vigilBin}, args...)
}

// jobShell does what an interactive shell does with a job, for vigil
// (ARGV, run as PID 1 of new namespaces when NS is "pid1"), and writes
// what happened to REPORT. It must be the session leader of the terminal
// on its stdin.
//
// MODE "bg": set tostop on the terminal, run vigil in a background
// process group and wait for it: "exit N", or "stopped SIG" if it stopped.
//
// MODE "tstp:N": run vigil as the foreground job, then N times: SIGTSTP to
// vigil, see it stop, give it the terminal back and SIGCONT its group (as
// fg does), see the child continued by vigil (job-child counts SIGCONTs)
// and a SIGUSR1 forwarded to it; then TERM, and "rounds=N exit S".
func jobShell(args []string) int {
	report, mode, ns, argv := args[0], args[1], args[2], args[4:]
	var rounds int
	switch {
	case mode == "bg":
		t, err := unix.IoctlGetTermios(0, unix.TCGETS)
		if err == nil {
			t.Lflag |= unix.TOSTOP
			err = unix.IoctlSetTermios(0, unix.TCSETS, t)
		}
		if err != nil {
			writeFile(report, "error tostop: "+err.Error())
			return 1
		}
	case strings.HasPrefix(mode, "tstp:"):
		rounds = mustAtoi(strings.TrimPrefix(mode, "tstp:"))
	default:
		writeFile(report, "error mode "+mode)
		return 1
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if ns == "pid1" {
		cmd.Args = append([]string{os.Args[0], "pid1-shim"}, argv...)
		cmd.Path = os.Args[0]
		cmd.SysProcAttr.Cloneflags = unix.CLONE_NEWPID | unix.CLONE_NEWNS
	}
	if rounds > 0 {
		cmd.SysProcAttr.Foreground, cmd.SysProcAttr.Ctty = true, 0
	}
	if err := cmd.Start(); err != nil {
		writeFile(report, "error start: "+err.Error())
		return 1
	}
	pid := cmd.Process.Pid
	fail := func(msg string) int {
		writeFile(report, msg)
		unix.Kill(-pid, unix.SIGKILL)
		unix.Kill(-pid, unix.SIGCONT)
		return 1
	}
	var log []string
	for i := 1; i <= rounds; i++ {
		if i == 1 {
			if !waitCount(os.Getenv("E2E_JOB_FILE"), "cont=0 usr1=0") {
				return fail("error: the child never said ready")
			}
		}
		unix.Kill(pid, unix.SIGTSTP)
		ws, ok, err := waitState(pid, 10*time.Second)
		if err != nil || !ok || !ws.Stopped() {
			return fail(fmt.Sprintf("round %d: vigil did not stop on SIGTSTP (%s, err %v)", i, describe(ws, ok), err))
		}
		// fg: the terminal to vigil's group, then SIGCONT to the group.
		if err := tcsetpgrp(pid); err != nil {
			return fail(fmt.Sprintf("round %d: tcsetpgrp: %v", i, err))
		}
		unix.Kill(-pid, unix.SIGCONT)
		if !waitCount(os.Getenv("E2E_JOB_FILE"), fmt.Sprintf("cont=%d usr1=%d", i, i-1)) {
			return fail(fmt.Sprintf("round %d: vigil did not continue the child (%s)", i, stateOf(pid)))
		}
		// Every signal vigil took before this one has been handled by the
		// time this one is forwarded: a stale stop report would have
		// stopped vigil again already.
		unix.Kill(pid, unix.SIGUSR1)
		if !waitCount(os.Getenv("E2E_JOB_FILE"), fmt.Sprintf("cont=%d usr1=%d", i, i)) {
			return fail(fmt.Sprintf("round %d: SIGUSR1 was not forwarded after fg (%s)", i, stateOf(pid)))
		}
		if ws, ok, err := wait4(pid, unix.WUNTRACED|unix.WNOHANG); err != nil || ok {
			return fail(fmt.Sprintf("round %d: after fg vigil changed state again: %s (err %v)", i, describe(ws, ok), err))
		}
		log = append(log, fmt.Sprintf("round %d ok", i))
	}
	if rounds > 0 {
		unix.Kill(pid, unix.SIGTERM)
	}
	ws, ok, err := waitState(pid, 20*time.Second)
	switch {
	case err != nil:
		return fail("error wait4: " + err.Error())
	case !ok:
		return fail(fmt.Sprintf("vigil neither exited nor stopped within 20s (%s)", stateOf(pid)))
	case ws.Stopped():
		return fail(fmt.Sprintf("stopped %s", unix.SignalName(ws.StopSignal())))
	}
	if rounds > 0 {
		log = append(log, fmt.Sprintf("rounds=%d %s", rounds, describe(ws, ok)))
		writeFile(report, strings.Join(log, "\n"))
		return 0
	}
	writeFile(report, describe(ws, ok))
	return 0
}

// waitState waits up to d for pid to stop or end; ok is false if neither
// happened.
func waitState(pid int, d time.Duration) (ws unix.WaitStatus, ok bool, err error) {
	poll(d, func() bool {
		ws, ok, err = wait4(pid, unix.WUNTRACED|unix.WNOHANG)
		return err != nil || ok
	})
	return ws, ok, err
}

// wait4 reports whether pid had news, and what.
func wait4(pid, options int) (ws unix.WaitStatus, ok bool, err error) {
	for {
		got, err := unix.Wait4(pid, &ws, options, nil)
		if !errors.Is(err, unix.EINTR) {
			return ws, got == pid, err
		}
	}
}

// describe says what a wait status reports: "exit N", "signal SIG" or
// "stopped SIG"; "none" for no report.
func describe(ws unix.WaitStatus, ok bool) string {
	switch {
	case !ok:
		return "none"
	case ws.Exited():
		return fmt.Sprintf("exit %d", ws.ExitStatus())
	case ws.Signaled():
		return "signal " + unix.SignalName(ws.Signal())
	case ws.Stopped():
		return "stopped " + unix.SignalName(ws.StopSignal())
	}
	return fmt.Sprintf("status %#x", int(ws))
}

func stateOf(pid int) string { return "vigil's state " + procState(pid) }

// tcsetpgrp makes pgrp the terminal's foreground group from a shell that
// is not in the foreground, which raises SIGTTOU unless the calling thread
// blocks it. It does so on a thread of its own that dies with the
// goroutine, so that no process this shell starts inherits the mask.
func tcsetpgrp(pgrp int) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		var set unix.Sigset_t
		set.Val[0] = 1<<(unix.SIGTTOU-1) | 1<<(unix.SIGTTIN-1)
		if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, nil); err != nil {
			errc <- err
			return
		}
		errc <- unix.IoctlSetPointerInt(0, unix.TIOCSPGRP, pgrp)
	}()
	return <-errc
}

// waitCount waits up to 10s for file to hold exactly want.
func waitCount(file, want string) bool {
	return poll(10*time.Second, func() bool {
		b, _ := os.ReadFile(file)
		return string(b) == want
	})
}

// jobChild counts the SIGCONTs and SIGUSR1s it receives in $E2E_JOB_FILE
// ("cont=C usr1=U") and exits 0 on SIGTERM. SIGTSTP stops it (default
// action).
func jobChild([]string) int {
	file := os.Getenv("E2E_JOB_FILE")
	c := make(chan os.Signal, 16)
	signal.Notify(c, unix.SIGCONT, unix.SIGUSR1, unix.SIGTERM)
	var conts, usr1s int
	writeFile(file, "cont=0 usr1=0")
	for sig := range c {
		switch sig {
		case unix.SIGCONT:
			conts++
		case unix.SIGUSR1:
			usr1s++
		case unix.SIGTERM:
			return 0
		}
		writeFile(file, fmt.Sprintf("cont=%d usr1=%d", conts, usr1s))
	}
	return 0
}

func TestVigilsOwnWritesNeverStopIt(t *testing.T) {
	// `stty tostop` and vigil in the background: a write of vigil's own to
	// the terminal must not raise SIGTTOU against it (which vigil would
	// take for job control, or spin on). Its log lines (-v), the child's
	// stderr copied by --capture-tail, and what it prints on stdout must
	// all appear.
	cases := []struct {
		name   string
		args   []string
		status int
		lines  []string
	}{
		{"log lines", vigilArgs([]string{"-v"}, helper("exit", "3")), 3,
			[]string{"spawned", "reaped main child"}},
		{"capture-tail copy", vigilArgs([]string{"-v", "--capture-tail", "4096"}, helper("stderr-lines", "200", "4")), 4,
			[]string{"line 00001 of the child's complaint", "line 00200 of the child's complaint", "spawned"}},
		{"the one line without -v", append([]string{"--"}, helper("segv")...), 139, []string{"child ended", "fault"}},
		{"--version", []string{"--version"}, 0, []string{"vigil "}},
		{"--help", []string{"--help"}, 0, []string{"--capture-tail"}},
		{"usage error", []string{"--no-such-flag"}, 2, []string{"no-such-flag"}},
	}
	for _, pid1 := range []bool{false, true} {
		for _, c := range cases {
			t.Run(fmt.Sprintf("pid1=%v/%s", pid1, c.name), func(t *testing.T) {
				if pid1 {
					needRoot(t)
				}
				p := openCapturedPTY(t)
				report := filepath.Join(t.TempDir(), "report")
				sh := startShell(t, p, nil, shellArgs(report, "bg", pid1, c.args...)...)
				sh.wait(30 * time.Second)
				out := p.output(t)
				got, _ := os.ReadFile(report)
				if want := fmt.Sprintf("exit %d", c.status); string(got) != want {
					t.Fatalf("vigil in the background with tostop: %q, want %q\nterminal:\n%s", got, want, clipLog(out))
				}
				for _, line := range c.lines {
					if !strings.Contains(out, line) {
						t.Errorf("the terminal does not show %q\nterminal:\n%s", line, clipLog(out))
					}
				}
			})
		}
	}
}

func TestStopThenFgNeverStopsTheJobAgain(t *testing.T) {
	// kill -TSTP <vigil>, then fg, six times in a row: after the SIGCONT
	// vigil must not act on the stop report of the child's stop it has
	// already followed. (As PID 1 vigil never stops itself: TSTP is
	// forwarded like any signal.)
	p := openCapturedPTY(t)
	dir := t.TempDir()
	report, file := filepath.Join(dir, "report"), filepath.Join(dir, "child")
	const rounds = 6
	sh := startShell(t, p, []string{"E2E_JOB_FILE=" + file},
		shellArgs(report, fmt.Sprintf("tstp:%d", rounds), false, vigilArgs([]string{"-v"}, helper("job-child"))...)...)
	sh.wait(60 * time.Second)
	out := p.output(t)
	got, _ := os.ReadFile(report)
	if !strings.HasSuffix(string(got), fmt.Sprintf("rounds=%d exit 0", rounds)) {
		t.Fatalf("job shell reported:\n%s\nwant %d rounds and exit 0\nterminal:\n%s", got, rounds, clipLog(out))
	}
}

// hookFactsDump is a hook: it writes to FILE, as JSON, the length of
// VIGIL_COMMAND, VIGIL_COMMAND itself and what it read on its stdin.
func hookFactsDump(args []string) int {
	stdin, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hook-facts:", err)
		return 90
	}
	cmd, set := os.LookupEnv("VIGIL_COMMAND")
	b, _ := json.Marshal(map[string]any{"command": cmd, "command_set": set, "stdin": string(stdin)})
	writeFile(args[0], string(b))
	return 0
}

func TestLongCommandLineStillRunsHooks(t *testing.T) {
	// 200 arguments of 1 KiB: a command line over the kernel's 128 KiB
	// limit for one environment string, which an unbounded VIGIL_COMMAND
	// would exceed, making every hook fail with E2BIG.
	argv := helper("exit", "5")
	for i := range 200 {
		argv = append(argv, fmt.Sprintf("%03d", i)+strings.Repeat("x", 1021))
	}
	full := strings.Join(argv, " ")
	for _, pid1 := range []bool{false, true} {
		t.Run(fmt.Sprintf("pid1=%v", pid1), func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "facts")
			r := start(t, opts{pid1: pid1}, vigilArgs([]string{"--on-exit", hookLine(self, "hook-facts", file)}, argv)...)
			r.expect(5)
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("the hook did not run: %v\nstderr:\n%s", err, clipLog(r.stderr.String()))
			}
			var got struct {
				Command    string `json:"command"`
				CommandSet bool   `json:"command_set"`
				Stdin      string `json:"stdin"`
			}
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("hook report: %v", err)
			}
			if !got.CommandSet || len(got.Command) >= 128<<10 || !strings.HasPrefix(full, strings.TrimSuffix(got.Command, "...")) {
				t.Errorf("VIGIL_COMMAND is %d bytes (set %v), want a prefix of the %d-byte command line under 128 KiB",
					len(got.Command), got.CommandSet, len(full))
			}
			var facts struct {
				Command []string `json:"command"`
			}
			if err := json.Unmarshal([]byte(got.Stdin), &facts); err != nil {
				t.Fatalf("the JSON on the hook's stdin: %v\n%.300s", err, got.Stdin)
			}
			if strings.Join(facts.Command, " ") != full || len(facts.Command) != len(argv) {
				t.Errorf("the JSON's command has %d words, want the whole argv of %d", len(facts.Command), len(argv))
			}
		})
	}
}

// startToFile starts vigil with args, as PID 1 of new namespaces or not,
// with its stdout and stderr in a file rather than pipes: a process that
// outlives vigil (the bug under test) must not keep the test waiting for
// the pipes to close. log returns what vigil wrote so far.
func startToFile(t *testing.T, pid1 bool, args ...string) (r *run, log func() string) {
	t.Helper()
	out, err := os.Create(filepath.Join(t.TempDir(), "vigil.out"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	argv := append([]string{vigilBin}, args...)
	if pid1 {
		argv = shimmed(nil, args...)
	}
	r = startVia(t, via{argv: argv, pid1: pid1, stdout: out, stderr: out})
	return r, func() string {
		b, _ := os.ReadFile(out.Name())
		return string(b)
	}
}

func TestDaemonStartedByAHookIsCleanedUp(t *testing.T) {
	// A hook that leaves a daemon behind: vigil ends it with SIGTERM after
	// the hooks, as it ends the child's leftovers, whether it is PID 1 (the
	// namespace's end would SIGKILL it, unannounced) or a subreaper (it
	// would outlive vigil).
	for _, pid1 := range []bool{false, true} {
		t.Run(fmt.Sprintf("pid1=%v", pid1), func(t *testing.T) {
			daemon := filepath.Join(t.TempDir(), "daemon")
			r, log := startToFile(t, pid1, vigilArgs([]string{"--on-exit", hookLine(self, "spawn-daemon", daemon, "0", "0")},
				helper("exit", "6"))...)
			if !pid1 {
				t.Cleanup(func() {
					// If vigil left it behind, the test does not.
					if b, err := os.ReadFile(daemon); err == nil {
						var pid int
						if _, err := fmt.Sscanf(string(b), "ready pid=%d", &pid); err == nil && pid > 1 {
							unix.Kill(pid, unix.SIGKILL)
						}
					}
				})
			}
			if status := r.wait(30 * time.Second); status != 6 {
				t.Fatalf("vigil exited %d, want 6\noutput:\n%s", status, log())
			}
			got, err := os.ReadFile(daemon)
			if err != nil {
				t.Fatalf("the hook's daemon never started: %v\noutput:\n%s", err, log())
			}
			lines := strings.Split(strings.TrimSpace(string(got)), "\n")
			if len(lines) < 2 || !strings.HasPrefix(lines[1], "SIGTERM ") {
				t.Errorf("the hook's daemon recorded %q, want a SIGTERM from vigil's cleanup\noutput:\n%s", got, log())
			}
		})
	}
}

func TestProcOfAnotherNamespaceIsNeverUsed(t *testing.T) {
	// vigil in a new PID namespace whose /proc is still the host's
	// (`unshare --pid --fork` without --mount-proc): its pids name other
	// processes, so vigil must not take targets from it, and says so once.
	// As PID 1, kill(-1) still ends the leftovers inside the namespace.
	needRoot(t)
	dir := t.TempDir()
	left, hookLeft := filepath.Join(dir, "left"), filepath.Join(dir, "hook-left")
	args := vigilArgs([]string{"--on-exit", hookLine(self, "spawn-daemon", hookLeft, "0", "0")},
		helper("spawn-daemon", left, "0", "3"))
	t.Run("pid1", func(t *testing.T) {
		// No shim: vigil itself is cloned into new PID and mount
		// namespaces and finds the host's /proc mounted.
		r := startVia(t, via{argv: append([]string{vigilBin}, args...), pid1: true})
		r.expect(3)
		stderr := r.stderr.String()
		if n := strings.Count(stderr, "/proc is not this PID namespace's"); n != 1 {
			t.Errorf("vigil said %d times that /proc cannot be trusted, want once\nstderr:\n%s", n, clipLog(stderr))
		}
		if strings.Contains(stderr, "killing leftover process") {
			t.Errorf("vigil named leftovers from a /proc that is not its own\nstderr:\n%s", clipLog(stderr))
		}
		for _, f := range []string{left, hookLeft} {
			if got, _ := os.ReadFile(f); !strings.Contains(string(got), "\nSIGTERM ") {
				t.Errorf("%s: %q, want a SIGTERM from kill(-1)\nstderr:\n%s", filepath.Base(f), got, clipLog(stderr))
			}
		}
	})
	t.Run("subreaper", func(t *testing.T) {
		// PID 1 of the namespace is a shell that runs vigil as its child:
		// vigil is a subreaper there and has no kill(-1) to fall back on.
		os.Remove(left)
		os.Remove(hookLeft)
		script := `"$@"; exit $?` // not exec: vigil must not become PID 1
		r := startVia(t, via{argv: append([]string{"/bin/sh", "-c", script, "sh", vigilBin}, args...), pid1: true})
		r.expect(3)
		stderr := r.stderr.String()
		if n := strings.Count(stderr, "/proc is not this PID namespace's"); n != 1 || !strings.Contains(stderr, "will outlive vigil") {
			t.Errorf("vigil said %d times that /proc cannot be trusted, want once, saying the leftovers outlive it\nstderr:\n%s", n, clipLog(stderr))
		}
		if strings.Contains(stderr, "killing leftover process") {
			t.Errorf("vigil named leftovers from a /proc that is not its own\nstderr:\n%s", clipLog(stderr))
		}
		// It cannot name them, so it does not wait for them either.
		if strings.Contains(stderr, "survived SIGKILL") {
			t.Errorf("vigil waited for leftovers it cannot signal\nstderr:\n%s", clipLog(stderr))
		}
	})
}

func TestReservedSignalsNeitherEndVigilNorReachTheChild(t *testing.T) {
	// 32 and 34 get no handler from the Go runtime, and their default
	// action ends a process that is not PID 1. vigil survives them without
	// changing what the child inherits; it does not forward them (it
	// cannot see them).
	for _, pid1 := range []bool{false, true} {
		t.Run(fmt.Sprintf("pid1=%v", pid1), func(t *testing.T) {
			dir := t.TempDir()
			file, pidFile := filepath.Join(dir, "got"), filepath.Join(dir, "pid")
			r, log := startToFile(t, pid1, helper("as", pidFile, "record", file)...)
			t.Cleanup(func() {
				if b, err := os.ReadFile(pidFile); err == nil && !pid1 {
					unix.Kill(atoi(t, string(b)), unix.SIGKILL) // if vigil left it behind
				}
			})
			waitFile(t, file, "ready", 10*time.Second)
			pid := r.cmd.Process.Pid
			for range 100 {
				unix.Kill(pid, 34) // errors: vigil is gone, which r.wait reports
				unix.Kill(pid, 32)
			}
			unix.Kill(pid, unix.SIGUSR1)
			if status := r.wait(30 * time.Second); status != 0 {
				t.Fatalf("vigil exited %d, want 0\noutput:\n%s", status, log())
			}
			if got := waitFile(t, file, "ready\n", time.Second); got != "ready\nSIGUSR1\n" {
				t.Errorf("child received %q, want SIGUSR1 only", got)
			}

			status2 := filepath.Join(dir, "status")
			r, log = startToFile(t, pid1, "/bin/sh", "-c", `grep ^Sig /proc/self/status > "$0"`, status2)
			if status := r.wait(30 * time.Second); status != 0 {
				t.Fatalf("vigil exited %d, want 0\noutput:\n%s", status, log())
			}
			got := waitFile(t, status2, "SigCgt", time.Second)
			for _, field := range []string{"SigCgt", "SigIgn"} {
				if m := sigField(t, got, field); m&(1<<31|1<<33) != 0 {
					t.Errorf("the child has 32 or 34 in %s (%x), want both at their default action\n%s", field, m, got)
				}
			}
		})
	}
}

// withAllBlocked blocks every signal on the thread that then execs ARGV.
func withAllBlocked(args []string) int {
	runtime.LockOSThread()
	all := unix.Sigset_t{Val: [16]uint64{^uint64(0)}}
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &all, nil); err != nil {
		fmt.Fprintln(os.Stderr, "with-all-blocked:", err)
		return 98
	}
	return execArgv(args)
}
