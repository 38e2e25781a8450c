//go:build linux && (amd64 || arm64)

package intake

import (
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The tests re-run the test binary as a helper process so that a signal
// that ends it fails a test instead of ending the test binary.
const helperEnv = "INTAKE_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "signal-self":
		os.Exit(signalSelf())
	case "ignore-then-exec":
		// Ignore 34 the way a parent can, then start afresh: the new
		// process image begins with 34 ignored.
		sa := kernelSigaction{handler: 1} // SIG_IGN
		if err := rtSigaction(34, &sa, nil); err != nil {
			println("rt_sigaction:", err.Error())
			os.Exit(90)
		}
		os.Setenv(helperEnv, "report")
		err := syscall.Exec(os.Args[0], os.Args[:1], os.Environ())
		println("exec:", err.Error())
		os.Exit(91)
	case "report":
		var sa kernelSigaction
		if err := rtSigaction(34, nil, &sa); err != nil {
			os.Exit(92)
		}
		// handler=1 (ignored), guarded=false is what a parent's choice
		// left alone looks like.
		println("handler=" + strconv.FormatUint(uint64(sa.handler), 10) + " guarded=" + strconv.FormatBool(slices.Contains(guarded, 34)))
		os.Exit(0)
	}
	os.Exit(93)
}

// signalSelf sends 32 and 34 to its own thread, where they are delivered
// before the system call returns, and to the whole process, and waits
// until the kernel has delivered them. It exits 0 if it is still alive.
func signalSelf() int {
	runtime.LockOSThread()
	for _, sig := range []syscall.Signal{32, 34} {
		if err := syscall.Tgkill(os.Getpid(), syscall.Gettid(), sig); err != nil {
			println("tgkill:", err.Error())
			return 94
		}
		if err := syscall.Kill(os.Getpid(), sig); err != nil {
			println("kill:", err.Error())
			return 94
		}
	}
	// A storm while every kind of thread is busy: goroutines that
	// allocate (the garbage collector's threads), sleep (timers, the
	// scheduler's idle threads) and make system calls.
	stop := make(chan struct{})
	done := make(chan struct{})
	for i := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			var keep [][]byte
			for {
				select {
				case <-stop:
					return
				default:
				}
				switch i {
				case 0, 1:
					keep = append(keep, make([]byte, 4096))
					if len(keep) > 1000 {
						keep = nil
					}
				case 2:
					time.Sleep(10 * time.Microsecond)
				case 3:
					syscall.Getppid()
				}
			}
		}()
	}
	for i := range 20000 {
		if err := syscall.Kill(os.Getpid(), syscall.Signal(32+2*(i%2))); err != nil {
			println("kill:", err.Error())
			return 94
		}
	}
	close(stop)
	for range 4 {
		<-done
	}
	// A signal sent to the process stays pending until some thread takes
	// it; then its handler runs.
	deadline := time.Now().Add(10 * time.Second)
	for pendingSignals()&(1<<31|1<<33) != 0 {
		if time.Now().After(deadline) {
			println("32 or 34 still pending after 10s")
			return 95
		}
		time.Sleep(time.Millisecond)
	}
	return 0
}

// pendingSignals is the process's shared pending set (ShdPnd).
func pendingSignals() uint64 {
	return statusMask("ShdPnd", "/proc/self/status")
}

func statusMask(field, path string) uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				panic(err)
			}
			return n
		}
	}
	panic(field + " not in " + path)
}

func helperProcess(t *testing.T, mode string) (*exec.Cmd, string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	out, err := cmd.CombinedOutput()
	return cmd, string(out), err
}

func TestReservedSignalsDoNotEndTheProcess(t *testing.T) {
	if g := guarded; !slices.Equal(g, []syscall.Signal{32, 34}) {
		t.Fatalf("guarded = %v, want [32 34]", g)
	}
	cmd, out, err := helperProcess(t, "signal-self")
	if err != nil {
		ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			t.Fatalf("the process was ended by signal %d, want it to survive 32 and 34\n%s", ws.Signal(), out)
		}
		t.Fatalf("helper: %v\n%s", err, out)
	}
}

func TestGuardIsNotInherited(t *testing.T) {
	// The child of a process with the guard starts with 32 and 34 at their
	// default action: neither caught nor ignored, and blocked only if
	// they were before.
	out, err := exec.Command("/bin/grep", "^Sig", "/proc/self/status").Output()
	if err != nil {
		t.Skipf("cannot run /bin/grep: %v", err)
	}
	path := t.TempDir() + "/status"
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{"SigCgt", "SigIgn"} {
		if m := statusMask(field, path); m&(1<<31|1<<33) != 0 {
			t.Errorf("the child has 32 or 34 in %s (%x)\n%s", field, m, out)
		}
	}
}

func TestSignalIgnoredAtStartStaysIgnored(t *testing.T) {
	_, out, err := helperProcess(t, "ignore-then-exec")
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(out); got != "handler=1 guarded=false" {
		t.Errorf("34 ignored at start: %q, want handler=1 (still ignored) guarded=false", got)
	}
}
