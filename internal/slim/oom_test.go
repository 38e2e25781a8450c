package slim

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

func TestChildOOMScoreAdj(t *testing.T) {
	for _, c := range []struct{ own, delta, want int }{
		{0, 0, 0},
		{0, 1, 1},
		{0, 50, 50},
		{-997, 1, -996},    // Kubernetes Guaranteed
		{-997, 10, -987},   // still far below every other class
		{2, 1, 3},          // Burstable with a large request
		{999, 1, 1000},     // Burstable with a tiny request
		{1000, 1, 1000},    // BestEffort: already the maximum
		{990, 50, 1000},    // clamped to the kernel's maximum
		{-1000, 10, -1000}, // OOM killing switched off: kept off
		{100, -5, 100},     // never lowered
	} {
		if got := ChildOOMScoreAdj(c.own, c.delta); got != c.want {
			t.Errorf("ChildOOMScoreAdj(%d, %d) = %d, want %d", c.own, c.delta, got, c.want)
		}
	}
}

// TestRaiseOOMScoreAdjIsInheritedAndRestored raises this process's score,
// starts a child, restores the score, and checks that the child kept the
// raised one while this process is back where it was. It needs no
// privilege: raising is always allowed, and so is lowering back.
func TestRaiseOOMScoreAdjIsInheritedAndRestored(t *testing.T) {
	read := func(path string) int {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Skipf("no %s: %v", path, err)
		}
		n, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	own := read(oomScoreAdjFile)
	if own >= 995 || own == -1000 {
		t.Skipf("this process's oom_score_adj is %d: nothing to raise", own)
	}
	restore, err := RaiseOOMScoreAdj(5)
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command("sleep", "10")
	startErr := child.Start()
	if err := restore(); err != nil {
		t.Fatalf("restoring %d: %v", own, err)
	}
	if startErr != nil {
		t.Skipf("cannot start sleep: %v", startErr)
	}
	defer func() {
		child.Process.Kill()
		child.Wait()
	}()
	if got := read(oomScoreAdjFile); got != own {
		t.Errorf("after restore this process's oom_score_adj is %d, want %d", got, own)
	}
	path := "/proc/" + strconv.Itoa(child.Process.Pid) + "/oom_score_adj"
	if got := read(path); got != own+5 {
		t.Errorf("the child's oom_score_adj is %d, want %d (this process's %d raised by 5)", got, own+5, own)
	}
}

func TestRaiseOOMScoreAdjByZeroChangesNothing(t *testing.T) {
	restore, err := RaiseOOMScoreAdj(0)
	if err != nil {
		t.Fatal(err)
	}
	if err := restore(); err != nil {
		t.Fatal(err)
	}
}
