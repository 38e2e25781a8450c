package slim

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

func readScore(t *testing.T, path string) int {
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

// TestScoreForForkIsInheritedAndRestored raises this process's score,
// starts a child, restores the score, and checks that the child kept the
// raised one while this process is back where it was. It needs no
// privilege: raising is always allowed, and so is lowering back.
func TestScoreForForkIsInheritedAndRestored(t *testing.T) {
	own := readScore(t, oomScoreAdjFile)
	if own >= 995 || own == Unkillable {
		t.Skipf("this process's oom_score_adj is %d: nothing to raise", own)
	}
	restore, err := ScoreForFork(own, own+5)
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
	if got := readScore(t, oomScoreAdjFile); got != own {
		t.Errorf("after restore this process's oom_score_adj is %d, want %d", got, own)
	}
	path := "/proc/" + strconv.Itoa(child.Process.Pid) + "/oom_score_adj"
	if got := readScore(t, path); got != own+5 {
		t.Errorf("the child's oom_score_adj is %d, want %d (this process's %d raised by 5)", got, own+5, own)
	}
}

func TestScoreForForkWithTheSameScoreChangesNothing(t *testing.T) {
	restore, err := ScoreForFork(7, 7)
	if err != nil {
		t.Fatal(err)
	}
	if err := restore(); err != nil {
		t.Fatal(err)
	}
}

// TestProtect runs in a helper process (the test binary again), whose
// score it changes: with CAP_SYS_RESOURCE the helper ends up Unkillable,
// without it Protect fails with ErrNoCapSysResource and the score is
// unchanged. Which of the two this machine gives is reported, not chosen.
func TestProtect(t *testing.T) {
	if os.Getenv("SLIM_PROTECT_HELPER") != "" {
		was, err := Protect()
		now, _ := OOMScoreAdj()
		switch {
		case errors.Is(err, ErrNoCapSysResource):
			os.Stdout.WriteString("refused " + strconv.Itoa(was) + " " + strconv.Itoa(now))
		case err != nil:
			os.Stdout.WriteString("error " + err.Error())
		default:
			os.Stdout.WriteString("protected " + strconv.Itoa(was) + " " + strconv.Itoa(now))
		}
		os.Exit(0)
	}
	own := readScore(t, oomScoreAdjFile)
	if own == Unkillable {
		t.Skip("this process is Unkillable already: Protect has nothing to do")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestProtect$")
	cmd.Env = append(os.Environ(), "SLIM_PROTECT_HELPER=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	f := strings.Fields(string(out))
	want := []string{"refused", strconv.Itoa(own), strconv.Itoa(own)}
	if hasCapSysResource(t) {
		want = []string{"protected", strconv.Itoa(own), "-1000"}
	}
	if strings.Join(f, " ") != strings.Join(want, " ") {
		t.Errorf("Protect in a process with oom_score_adj %d: %q, want %q", own, out, strings.Join(want, " "))
	}
}

// hasCapSysResource reads this process's effective capabilities.
func hasCapSysResource(t *testing.T) bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			const capSysResource = 24
			return caps&(1<<capSysResource) != 0
		}
	}
	t.Fatal("no CapEff in /proc/self/status")
	return false
}
