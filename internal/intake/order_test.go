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
// signal (and blocked them from then on) two threads can still race (2 of
// 18 runs under the race detector had one such pair, within the first
// dozen).
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
			if last == syscall.SIGTSTP && sawCont {
				// The pair came out the wrong way round: counted after the
				// warm-up; in it, the race described above. Either way no
				// other CONT is coming for this round.
				if i >= warmUp {
					bad++
					t.Logf("round %d", i)
				}
				break
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d TSTP, CONT pairs ended with the TSTP", bad, rounds)
	}
}

// TestForkMaskUndoesTheStubsBlockForAFork: a thread other than the main one
// that takes a job-control signal has the four blocked from then on; under
// ForkMask it has them as vigil started with them (unblocked here), and
// after undo blocked again.
func TestForkMaskUndoesTheStubsBlockForAFork(t *testing.T) {
	Ready()
	if !recording.Load() {
		t.Skip("no recorder on this architecture")
	}
	if startBlocked&jobBits != 0 {
		t.Skip("the test was started with job-control signals blocked")
	}
	mask := func() uint64 {
		var m uint64
		if err := rtSigprocmask(sigBlock, nil, &m); err != nil {
			t.Error(err)
		}
		return m & jobBits
	}
	// A goroutine locked to a thread other than the main one; one that
	// lands on the main thread keeps it until the test ends, so that the
	// next cannot.
	release := make(chan struct{})
	defer close(release)
	done := make(chan bool)
	for range 3 {
		go func() {
			// Never unlocked: the thread ends with this goroutine, and its
			// changed mask with it.
			runtime.LockOSThread()
			tid := syscall.Gettid()
			if tid == syscall.Getpid() {
				done <- false
				<-release
				return
			}
			defer close(done)
			if err := syscall.Tgkill(syscall.Getpid(), tid, syscall.SIGCONT); err != nil {
				t.Error(err)
				return
			}
			// The handler ran on the way out of tgkill.
			if got := mask(); got != jobBits {
				t.Errorf("after a CONT on thread %d: blocked %#x, want %#x", tid, got, uint64(jobBits))
				return
			}
			undo := ForkMask()
			if got := mask(); got != 0 {
				t.Errorf("under ForkMask: blocked %#x, want none", got)
			}
			undo()
			if got := mask(); got != jobBits {
				t.Errorf("after undo: blocked %#x, want %#x", got, uint64(jobBits))
			}
		}()
		if _, onMain := <-done; !onMain {
			break // closed: the test ran
		}
		done = make(chan bool)
	}
	var p Pending
	Take(&p)
}
