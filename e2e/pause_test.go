package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// --pause (issue 21): vigil as the PID 1 of a shared PID namespace, with
// no command, reaping what the processes that join it leave behind.

// TestPauseReapsWhatJoinersLeave: processes join the namespace of vigil
// --pause with nsenter, as the containers of a pod with a shared PID
// namespace do; each leaves an orphan that exits 7 and would stay a
// zombie of PID 1. vigil reaps every one, keeps running while a joiner
// lives, and exits 0 on SIGTERM.
func TestPauseReapsWhatJoinersLeave(t *testing.T) {
	needRoot(t)
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		t.Skip("needs nsenter (util-linux) to enter vigil's PID namespace")
	}
	r, log := startPause(t, true, "--pause", "--warn-on-reap")
	vpid := r.cmd.Process.Pid
	waitFile(t, fmt.Sprintf("/proc/%d/status", vpid), "vigil", 10*time.Second)
	join := func(args ...string) *exec.Cmd {
		cmd := exec.Command(nsenter, append([]string{"-t", strconv.Itoa(vpid), "-p", "--", self}, args...)...)
		cmd.Env = append(os.Environ(), "E2E_HELPER=1")
		return cmd
	}
	// A long-lived "container" in the pod, and five that leave orphans.
	app := join("sleep")
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	defer app.Process.Kill()
	const orphans = 5
	for range orphans {
		if out, err := join("detach").CombinedOutput(); err != nil {
			t.Fatalf("nsenter: %v\n%s", err, out)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	reaped := func() int { b, _ := os.ReadFile(log); return strings.Count(string(b), "status=7") }
	for reaped() < orphans || zombieChildren(vpid) > 0 {
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(log)
			t.Fatalf("after %d orphans: %d zombies of vigil, %d reaped\nstderr:\n%s", orphans,
				zombieChildren(vpid), reaped(), b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-r.done:
		t.Fatalf("vigil --pause exited on its own")
	default:
	}
	r.signal(unix.SIGTERM)
	r.expect(0)
	// The namespace ends with its PID 1: the joined "container" is killed.
	done := make(chan error, 1)
	go func() { done <- app.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Errorf("the process that joined the namespace outlived vigil --pause")
	}
}

// TestPauseIgnoresWhatIsNoStopSignal: not PID 1 (where the namespace is
// not vigil's), a SIGHUP or SIGUSR1 ends nothing; SIGINT exits 0, as does
// any --stop-signal.
func TestPauseIgnoresWhatIsNoStopSignal(t *testing.T) {
	for _, pid1 := range []bool{false, os.Geteuid() == 0} {
		r, log := startPause(t, pid1, "-P", "-v")
		// The debug line is written once every signal is caught.
		waitFile(t, log, "pausing", 10*time.Second)
		r.signal(unix.SIGHUP)
		r.signal(unix.SIGUSR1)
		r.signal(unix.SIGINT)
		r.expect(0)
	}
	r, log := startPause(t, false, "--pause", "--stop-signal", "USR2", "-v")
	waitFile(t, log, "pausing", 10*time.Second)
	r.signal(unix.SIGTERM) // not a stop signal now
	r.signal(unix.SIGUSR2)
	r.expect(0)
}

// startPause starts vigil with args, its stderr in a file (returned) that
// the test may read while vigil runs.
func startPause(t *testing.T, pid1 bool, args ...string) (*run, string) {
	t.Helper()
	log := filepath.Join(t.TempDir(), "stderr")
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	argv := append([]string{vigilBin}, args...)
	if pid1 {
		argv = shimmed(nil, args...)
	}
	return startVia(t, via{argv: argv, pid1: pid1, stderr: f}), log
}
