// Package e2e tests the built vigil binary from the outside, as a real
// PID 1 in a new PID namespace (with its own /proc) and as a subreaper.
//
// The test binary doubles as every helper program: vigil runs it with
// E2E_HELPER set and TestMain dispatches on os.Args[1], the way Go's own
// os/exec tests do.
package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// vigilBin is the binary under test, built once by TestMain.
var vigilBin string

// self is this test binary, run by vigil as the helper programs.
var self string

func TestMain(m *testing.M) {
	if os.Getenv("E2E_HELPER") != "" {
		os.Exit(runHelper(os.Args[1], os.Args[2:]))
	}
	hermetic()
	// Descriptors this test process inherited must not reach vigil, or
	// TestNoDescriptorLeaksIntoChild would see them.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: close_range:", err)
	}
	var err error
	if self, err = os.Executable(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "vigil-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	vigilBin = filepath.Join(dir, "vigil")
	build := exec.Command("go", "build", "-trimpath", "-tags", "urfave_cli_no_docs", "-ldflags=-s -w", "-o", vigilBin, "..")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building vigil: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// hermeticEnv marks the test binary started again by hermetic.
const hermeticEnv = "E2E_HERMETIC"

// hermetic makes the suite independent of the shell that ran it: the test
// binary starts itself again with every signal at its default action and
// none blocked, so that the helpers and vigil do too. Under nohup SIGHUP
// is ignored, and a Go program keeps an ignored SIGHUP or SIGINT ignored
// and passes it on through os/exec; a blocked signal stays blocked in every
// child, since each thread's saved mask is the one the process started
// with. Neither can be undone for the children from inside, so the binary
// clears both on one locked thread and execs itself from it: an execve
// keeps the thread's mask and what is ignored, and resets what is caught.
func hermetic() {
	if os.Getenv(hermeticEnv) != "" {
		os.Unsetenv(hermeticEnv)
		return
	}
	fail := func(what string, err error) {
		fmt.Fprintf(os.Stderr, "e2e: starting the suite with default signal dispositions and an empty mask: %s: %v\n", what, err)
		os.Exit(1)
	}
	// A Go handler replaces an ignored disposition, and the exec resets it
	// to the default. Only SIGHUP and SIGINT can still be ignored here:
	// the runtime has caught every other signal already.
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		fail("/proc/self/status", err)
	}
	var ignored uint64
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "SigIgn:\t"); ok {
			if ignored, err = strconv.ParseUint(v, 16, 64); err != nil {
				fail("SigIgn", err)
			}
		}
	}
	for sig := 1; sig <= 64; sig++ {
		if ignored&(1<<(sig-1)) != 0 {
			signal.Notify(make(chan os.Signal, 1), syscall.Signal(sig))
		}
	}
	runtime.LockOSThread()
	if err := unix.PthreadSigmask(unix.SIG_SETMASK, &unix.Sigset_t{}, nil); err != nil {
		fail("sigprocmask", err)
	}
	exe, err := os.Executable()
	if err != nil {
		fail("os.Executable", err)
	}
	fail("exec "+exe, unix.Exec(exe, os.Args, append(os.Environ(), hermeticEnv+"=1")))
}

// needRoot skips tests that need new namespaces when not root.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for a new PID namespace (CI runs as root)")
	}
}

// run is one vigil process started by a test.
type run struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	stdout *bytes.Buffer
	done   chan struct{}
	err    error
}

// helper returns the argv that makes vigil run helper name.
func helper(name string, args ...string) []string {
	return append([]string{self, name}, args...)
}

// opts says how to start vigil.
type opts struct {
	pid1 bool     // in a new PID namespace, as PID 1
	env  []string // added to the environment
	tty  *os.File // the terminal for stdin, stdout and stderr, made vigil's controlling terminal
}

// start runs vigil with args. With o.pid1 it runs as PID 1 of a new PID and
// mount namespace, with /proc mounted for that namespace.
func start(t *testing.T, o opts, args ...string) *run {
	t.Helper()
	r := &run{t: t, stderr: &bytes.Buffer{}, stdout: &bytes.Buffer{}, done: make(chan struct{})}
	if o.pid1 {
		needRoot(t)
		// The shim makes /proc right for the new namespace, then execs
		// vigil, which keeps its pid: 1 inside, cmd.Process.Pid outside.
		r.cmd = exec.Command(self, append([]string{"pid1-shim", vigilBin}, args...)...)
		r.cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWPID | unix.CLONE_NEWNS}
	} else {
		r.cmd = exec.Command(vigilBin, args...)
	}
	// E2E_HELPER reaches the helpers through vigil, which passes its
	// environment on. The Go runtime of a helper must not open cgroup files
	// for GOMAXPROCS: TestNoDescriptorLeaksIntoChild counts descriptors.
	r.cmd.Env = append(os.Environ(), "E2E_HELPER=1", "GODEBUG=containermaxprocs=0,updatemaxprocs=0")
	r.cmd.Env = append(r.cmd.Env, o.env...)
	// A helper that crashes may dump core in its working directory: keep
	// that out of the source tree.
	r.cmd.Dir = t.TempDir()
	r.cmd.Stdout, r.cmd.Stderr = r.stdout, r.stderr
	if o.tty != nil {
		r.cmd.Stdin, r.cmd.Stdout, r.cmd.Stderr = o.tty, o.tty, o.tty
		if r.cmd.SysProcAttr == nil {
			r.cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		r.cmd.SysProcAttr.Setsid, r.cmd.SysProcAttr.Setctty, r.cmd.SysProcAttr.Ctty = true, true, 0
	}
	r.launch()
	return r
}

// launch starts r.cmd, waits for it in the background and kills it when
// the test ends, if it has not ended by then.
func (r *run) launch() {
	r.t.Helper()
	// A vigil that died and left a child holding its output pipes must
	// not hang the test in Wait: the copying stops this long after exit.
	r.cmd.WaitDelay = 10 * time.Second
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("starting vigil: %v", err)
	}
	go func() {
		r.err = r.cmd.Wait()
		close(r.done)
	}()
	r.t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			r.cmd.Process.Kill()
			<-r.done
		}
	})
}

// wait returns vigil's exit status, failing the test after d.
func (r *run) wait(d time.Duration) int {
	r.t.Helper()
	select {
	case <-r.done:
	case <-time.After(d):
		r.cmd.Process.Kill()
		<-r.done
		r.t.Fatalf("vigil did not exit within %s\nstderr:\n%s", d, r.stderr)
	}
	ws := r.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		r.t.Fatalf("vigil itself was killed by %v\nstderr:\n%s", ws.Signal(), r.stderr)
	}
	return ws.ExitStatus()
}

// expect waits for vigil and checks its exit status.
func (r *run) expect(status int) {
	r.t.Helper()
	if got := r.wait(30 * time.Second); got != status {
		r.t.Fatalf("vigil exited %d, want %d\nstderr:\n%s", got, status, r.stderr)
	}
}

// signal sends sig to vigil.
func (r *run) signal(sig syscall.Signal) {
	r.t.Helper()
	if err := r.cmd.Process.Signal(sig); err != nil {
		r.t.Fatalf("signalling vigil: %v", err)
	}
}

// vigil runs vigil to completion, outside any namespace, and returns its
// status and stderr.
func vigil(t *testing.T, o opts, args ...string) (int, string) {
	t.Helper()
	r := start(t, o, args...)
	return r.wait(30 * time.Second), r.stderr.String()
}

// poll is the suite's one poll loop, for tests and helpers alike: it
// checks cond until it holds or d has passed, and reports whether it held.
// It looks again after 1 ms, then less often, at most every 10 ms, so that
// a quick event is seen at once and a slow one costs little.
func poll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for wait := time.Millisecond; !cond(); wait = min(2*wait, 10*time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(wait)
	}
	return true
}

// waitFor waits up to d for cond and fails the test, saying what it
// waited for, when cond did not hold in time. A test that needs to show
// the state it gave up in uses poll and says so itself.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !poll(d, cond) {
		t.Fatalf("%s: not within %s", what, d)
	}
}

// waitFile waits until path exists and holds want (a substring), and
// returns its content. Helpers announce "ready" this way, so tests never
// sleep and hope.
func waitFile(t *testing.T, path, want string, d time.Duration) string {
	t.Helper()
	var (
		b   []byte
		err error
	)
	if !poll(d, func() bool {
		b, err = os.ReadFile(path)
		return err == nil && strings.Contains(string(b), want)
	}) {
		t.Fatalf("%s did not come to hold %q within %s; it holds %q (err %v)", path, want, d, b, err)
	}
	return string(b)
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}

// notExecutable writes a script without execute permission in dir and
// returns its path: vigil must refuse to run it (126).
func notExecutable(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "noexec")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
