package intake

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestJobControlSignalsKeepTheOrderTheyCameIn has a shell send TSTP then
// CONT to the process, again and again, as `kill -TSTP; kill -CONT` does:
// what is taken must end with the CONT, never with the TSTP (the Go runtime
// alone gives CONT first, lowest number first). The kernel may drop the
// TSTP (a CONT discards a pending stop), never the CONT. The first 100
// pairs are not counted: until each thread has taken its first job-control
// signal (and blocked them from then on) two threads can still race, about
// once in 10,000 pairs under the race detector.
func TestJobControlSignalsKeepTheOrderTheyCameIn(t *testing.T) {
	Ready()
	if runtime.GOOS == "linux" && (runtime.GOARCH == "amd64" || runtime.GOARCH == "arm64") && !recording.Load() {
		t.Fatal("the job-control recorder is not installed")
	}
	sh := exec.Command("sh", "-c", `while read x; do kill -TSTP $1; kill -CONT $1; done`, "sh", strconv.Itoa(os.Getpid()))
	sh.Stderr = os.Stderr
	in, err := sh.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); sh.Wait() })
	var p Pending
	Take(&p)
	const warmUp, rounds = 100, 1000
	bad := 0
	for i := range warmUp + rounds {
		if _, err := in.Write([]byte("x\n")); err != nil {
			t.Fatal(err)
		}
		var last syscall.Signal
		sawCont := false
		deadline := time.After(5 * time.Second)
		for last != syscall.SIGCONT {
			select {
			case <-Wake():
			case <-deadline:
				t.Fatalf("round %d: no SIGCONT taken within 5 s (last %v)", i, last)
			}
			Take(&p)
			for sig := range p.Signals() {
				if sig == syscall.SIGTSTP || sig == syscall.SIGCONT {
					last = sig
					sawCont = sawCont || sig == syscall.SIGCONT
				}
			}
			if last == syscall.SIGTSTP && sawCont && i >= warmUp {
				bad++
				t.Logf("round %d", i)
				break
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d TSTP, CONT pairs ended with the TSTP", bad, rounds)
	}
}
