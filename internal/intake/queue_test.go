package intake

import (
	"slices"
	"syscall"
	"testing"
)

func taken(q *Queue) []syscall.Signal {
	var p Pending
	q.Take(&p)
	return slices.Collect(p.Signals())
}

func TestQueueKeepsTheOrderSignalsCameIn(t *testing.T) {
	var q Queue
	in := []syscall.Signal{syscall.SIGTSTP, syscall.SIGCONT, syscall.SIGUSR2, syscall.SIGHUP, syscall.SIGTSTP, syscall.SIGCONT}
	for _, sig := range in {
		q.Put(sig)
	}
	q.Put(syscall.SIGCHLD)
	var p Pending
	if !q.Take(&p) || !p.Child() {
		t.Fatal("Take found nothing, or no SIGCHLD")
	}
	if got := slices.Collect(p.Signals()); !slices.Equal(got, in) {
		t.Errorf("got %v, want %v: the order they came in", got, in)
	}
	if got := taken(&q); len(got) != 0 {
		t.Errorf("a second Take found %v", got)
	}
}

func TestAFullQueueCountsAndKeepsTheLastJobControlSignal(t *testing.T) {
	var q Queue
	for range queueSize {
		q.Put(syscall.SIGUSR1)
	}
	// Beyond the bound: counters, and of the job-control signals only the
	// last, as the kernel keeps them.
	for range 50 {
		q.Put(syscall.SIGTSTP)
		q.Put(syscall.SIGCONT)
		q.Put(syscall.SIGUSR2)
	}
	got := taken(&q)
	if len(got) != queueSize+50+1 {
		t.Fatalf("%d signals, want %d", len(got), queueSize+51)
	}
	if last := got[len(got)-1]; last != syscall.SIGCONT {
		t.Errorf("last %v, want the CONT that came last", last)
	}
	for _, sig := range got[:len(got)-1] {
		if sig == syscall.SIGTSTP || sig == syscall.SIGCONT {
			t.Fatalf("a job-control signal other than the last one: %v", got)
		}
	}
	// The bound is per Take: the next batch is in order again.
	q.Put(syscall.SIGCONT)
	q.Put(syscall.SIGTSTP)
	if got := taken(&q); !slices.Equal(got, []syscall.Signal{syscall.SIGCONT, syscall.SIGTSTP}) {
		t.Errorf("after the overflow: %v", got)
	}
}

func TestQueueDoesNotAllocate(t *testing.T) {
	var q Queue
	var p Pending
	n := 0
	allocs := testing.AllocsPerRun(100, func() {
		q.Put(syscall.SIGTERM)
		q.Put(syscall.SIGCONT)
		q.Take(&p)
		for range p.Signals() {
			n++
		}
	})
	if allocs != 0 || n == 0 {
		t.Errorf("%v allocations per Put, Take and range (%d signals)", allocs, n)
	}
}

// TestCatchesWhatItForwardsAndSIGCHLD: the signals vigil catches are the
// ones package signals forwards, and SIGCHLD; none of those a Go program
// cannot catch.
func TestCatchesWhatItForwardsAndSIGCHLD(t *testing.T) {
	never := []syscall.Signal{0, syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGURG, syscall.SIGPROF, 32, 33, 34, 65}
	for sig := syscall.Signal(0); sig <= 65; sig++ {
		if want := !slices.Contains(never, sig); catchable(sig) != want {
			t.Errorf("catchable(%d) = %v, want %v", sig, !want, want)
		}
	}
}
