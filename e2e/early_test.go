package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func init() {
	helpers["nap"] = func(a []string) int {
		time.Sleep(time.Duration(mustAtoi(a[0])) * time.Millisecond)
		return 0
	}
}

// earlyOutcome is how one run that got a SIGTERM soon after its start ended.
type earlyOutcome int

const (
	honoured    earlyOutcome = iota // the TERM ended the run (143, or vigil killed by it)
	runtimeDied                     // exit 2: the TERM reached the Go runtime before any handler
	dropped                         // the child ran to its end: the TERM was lost
	otherEnd
)

// termSoonAfterStart starts argv, sends SIGTERM after a random 0-10 ms,
// and says how it ended. The child naps napMS, so a lost TERM shows as a
// clean exit after the nap.
func termSoonAfterStart(t *testing.T, argv []string, pid1 bool) (earlyOutcome, string) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "E2E_HELPER=1", "GODEBUG=containermaxprocs=0,updatemaxprocs=0")
	if pid1 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWPID | unix.CLONE_NEWNS}
	}
	cmd.Dir = t.TempDir()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", argv[0], err)
	}
	time.Sleep(time.Duration(rand.IntN(10_000)) * time.Microsecond)
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s did not end within 20s of a SIGTERM", argv[0])
	}
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case ws.Signaled() && ws.Signal() == syscall.SIGTERM, ws.ExitStatus() == 143:
		return honoured, ""
	case ws.ExitStatus() == 2:
		return runtimeDied, ""
	case ws.ExitStatus() == 0:
		return dropped, ""
	}
	return otherEnd, fmt.Sprint(ws)
}

// TestEarlySIGTERMIsNeverLostWhenNotPID1 sends SIGTERM at random moments
// of vigil's start-up, from before the runtime runs vigil's code to after
// the child runs: every one must end the run, whether it lands before the
// handler (vigil dies of it), before the child exists (vigil exits 143
// without starting it) or after (the child gets it).
func TestEarlySIGTERMIsNeverLostWhenNotPID1(t *testing.T) {
	const runs = 300
	counts := map[earlyOutcome]int{}
	for range runs {
		o, detail := termSoonAfterStart(t, []string{vigilBin, "--", self, "nap", "3000"}, false)
		counts[o]++
		if o != honoured {
			t.Errorf("a SIGTERM soon after start was not honoured: %v %s", o, detail)
		}
	}
	t.Logf("not PID 1, %d runs: %d honoured", runs, counts[honoured])
}

// minimalGoInit is the reference: the smallest Go init that catches the
// stop signals in its first package init, forwards them and reaps.
const minimalGoInit = `package main

import (
	"os"
	"os/signal"
	"syscall"
)

var sigs = make(chan os.Signal, 64)

func init() {
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
}

func main() {
	pid, err := syscall.ForkExec(os.Args[1], os.Args[1:], &syscall.ProcAttr{Env: os.Environ(), Files: []uintptr{0, 1, 2}})
	if err != nil {
		os.Exit(127)
	}
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			syscall.Kill(pid, sig.(syscall.Signal))
			continue
		}
		for {
			var ws syscall.WaitStatus
			p, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if p <= 0 || err != nil {
				break
			}
			if p == pid {
				if ws.Signaled() {
					os.Exit(128 + int(ws.Signal()))
				}
				os.Exit(ws.ExitStatus())
			}
		}
	}
}
`

// TestEarlySIGTERMAsPID1IsCaughtAsEarlyAsGoAllows compares vigil with the
// minimal early-catching Go init (and tini, where installed) in the same
// run, interleaved: a TERM that reaches vigil's runtime before its handler
// exists makes it exit 2, and that share may be no larger than the
// reference's. A TERM that lands before any handler exists is dropped by
// the kernel for every init, C or Go: those runs end cleanly.
func TestEarlySIGTERMAsPID1IsCaughtAsEarlyAsGoAllows(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	ref := filepath.Join(dir, "goinit")
	os.WriteFile(filepath.Join(dir, "main.go"), []byte(minimalGoInit), 0o644)
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module goinit\n\ngo 1.26\n"), 0o644)
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", ref, ".")
	build.Dir, build.Env = dir, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the reference init: %v\n%s", err, out)
	}
	inits := []struct{ name, path, sep string }{{"vigil", vigilBin, "--"}, {"go-reference", ref, ""}}
	if tini, err := exec.LookPath("tini"); err == nil {
		inits = append(inits, struct{ name, path, sep string }{"tini", tini, "--"})
	}
	const runs = 120
	counts := map[string]map[earlyOutcome]int{}
	for _, in := range inits {
		counts[in.name] = map[earlyOutcome]int{}
	}
	for range runs {
		for _, in := range inits {
			argv := []string{self, "pid1-shim", in.path}
			if in.sep != "" {
				argv = append(argv, in.sep)
			}
			o, detail := termSoonAfterStart(t, append(argv, self, "nap", "200"), true)
			counts[in.name][o]++
			if o == otherEnd {
				t.Errorf("%s ended %s after an early SIGTERM", in.name, detail)
			}
		}
	}
	share := func(name string, o earlyOutcome) float64 { return float64(counts[name][o]) / runs }
	for _, in := range inits {
		t.Logf("as PID 1, %d runs, SIGTERM 0-10 ms after start: %-12s honoured %3.0f%%  exit 2 %3.0f%%  dropped by the kernel %3.0f%%",
			runs, in.name, 100*share(in.name, honoured), 100*share(in.name, runtimeDied), 100*share(in.name, dropped))
	}
	// Two standard errors of the difference of two shares of 120 runs
	// near 30% is about 0.12; a real regression (vigil catching after its
	// command line, as before) is far larger.
	if v, r := share("vigil", runtimeDied), share("go-reference", runtimeDied); v > r+0.12 {
		t.Errorf("vigil exited 2 in %.0f%% of runs, the minimal early-catching Go init in %.0f%%", 100*v, 100*r)
	}
}
