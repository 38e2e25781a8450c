package pid1

import (
	"errors"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestUnreachableLeftoversAreNotWaitedFor(t *testing.T) {
	// A subreaper that cannot name its leftovers (no /proc of its own
	// namespace) goes on at once, after the child and after the hooks,
	// instead of waiting the cleanup grace and killWait for nothing.
	m := running(t, defaults())
	m.reaped(exited(child, 0), true, t0)
	expect(t, m, "tombstone; leftovers SIGTERM")
	m.leftoversUnreachable(t0)
	expect(t, m, "ended; list hooks")
	m.hooksListed(1, t0)
	expect(t, m, "hook 0")
	m.hookStarted(200, t0)
	m.reaped(exited(200, 0), true, t0)
	expect(t, m, "leftovers SIGTERM")
	m.leftoversUnreachable(t0)
	expect(t, m, "flush")

	// Outside the cleanup it changes nothing.
	m = running(t, defaults())
	m.leftoversUnreachable(t0)
	expect(t, m, "")
	if m.phase != phaseRunning {
		t.Errorf("phase %s, want running", m.phase)
	}
}

// startSleeper starts a process that sleeps until it is signalled and
// returns its pid and its start time as /proc shows it.
func startSleeper(t *testing.T) (int, uint64) {
	t.Helper()
	if _, err := os.Stat("/bin/sleep"); err != nil {
		t.Skip("no /bin/sleep")
	}
	pid, err := syscall.ForkExec("/bin/sleep", []string{"sleep", "60"}, &syscall.ProcAttr{Files: []uintptr{0, 1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	st, ok := readStat(pid)
	if !ok {
		unix.Kill(pid, unix.SIGKILL)
		t.Fatalf("cannot read /proc/%d/stat", pid)
	}
	return pid, st.startTime
}

// endOf SIGKILLs pid and reaps it, and returns the signal it died of. A
// signal that was already on its way stays the cause: the kernel records
// the first fatal signal as the process's exit code when it is sent.
func endOf(t *testing.T, pid int) unix.Signal {
	t.Helper()
	unix.Kill(pid, unix.SIGKILL)
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatalf("wait4(%d): %v", pid, err)
		}
		break
	}
	if !ws.Signaled() {
		t.Fatalf("pid %d exited %d, want a death by signal", pid, ws.ExitStatus())
	}
	return ws.Signal()
}

func TestSignalPidfdNeverHitsARecycledPid(t *testing.T) {
	// Run reaps every child of the test process: hold it off.
	runMu.Lock()
	defer runMu.Unlock()
	log := &logBuf{}
	s := &supervisor{log: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))}

	// The pid names a process that started at another tick than the one
	// the scan saw: another process, which must not be signalled.
	pid, start := startSleeper(t)
	s.signalPidfd(leftover{pid: pid, procStat: procStat{startTime: start + 1}}, unix.SIGTERM)
	if sig := endOf(t, pid); sig != unix.SIGKILL {
		t.Errorf("a process whose start time differs from the scan's died of %s, want the test's SIGKILL only", unix.SignalName(sig))
	}

	// The same process as the scan saw is signalled.
	pid, start = startSleeper(t)
	s.signalPidfd(leftover{pid: pid, procStat: procStat{startTime: start}}, unix.SIGTERM)
	if sig := endOf(t, pid); sig != unix.SIGTERM {
		t.Errorf("the scanned process died of %s, want the SIGTERM sent through its pidfd", unix.SignalName(sig))
	}

	// A process that is gone (reaped) is skipped without an error.
	pid, start = startSleeper(t)
	endOf(t, pid)
	s.signalPidfd(leftover{pid: pid, procStat: procStat{startTime: start}}, unix.SIGTERM)
	if got := log.String(); strings.Contains(got, "level=ERROR") {
		t.Errorf("signalling leftovers logged an error:\n%s", got)
	}
}
