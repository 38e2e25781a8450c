package slim

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// oomScoreAdjFile is where a process reads and sets its own oom_score_adj.
const oomScoreAdjFile = "/proc/self/oom_score_adj"

// ChildOOMScoreAdj returns the oom_score_adj for vigil's children when
// they are to be raised by delta above vigil's own: own+delta, at most
// 1000, the kernel's maximum. A delta below 0 counts as 0: lowering a
// score takes CAP_SYS_RESOURCE, and children less likely to be killed
// than vigil are the opposite of the point.
//
// An own score of -1000 is kept: it switches the OOM killer off for the
// process, and whoever set it on vigil (the runtime, for the container)
// meant the container's processes never to be picked; raising the
// children would make them killable against that choice.
func ChildOOMScoreAdj(own, delta int) int {
	if own <= -1000 {
		return own
	}
	return min(own+max(delta, 0), 1000)
}

// RaiseOOMScoreAdj sets this process's oom_score_adj to
// ChildOOMScoreAdj(own, delta) and returns a function that puts own back.
// Call it right before forking the child and the function right after:
// the child inherits the raised score at fork, so it has it from its first
// instruction, before it can exec or fork anything of its own. Writing
// /proc/CHILD/oom_score_adj after the fork instead would race with the
// child's own forks, and fail for an unprivileged vigil once the child has
// run a setuid program.
//
// No privilege is needed: any process may raise its score, and may lower
// it again down to the lowest value a privileged process set
// (oom_score_adj_min), which vigil's own score is not below. Between the
// two calls vigil itself carries the raised score; the window is one
// fork.
//
// With delta 0, or nothing to change, it writes nothing and the returned
// function does nothing.
func RaiseOOMScoreAdj(delta int) (restore func() error, err error) {
	nothing := func() error { return nil }
	if delta <= 0 {
		return nothing, nil
	}
	b, err := os.ReadFile(oomScoreAdjFile)
	if err != nil {
		return nothing, err
	}
	own, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return nothing, fmt.Errorf("%s: %q: %w", oomScoreAdjFile, b, err)
	}
	child := ChildOOMScoreAdj(own, delta)
	if child == own {
		return nothing, nil
	}
	if err := writeOOMScoreAdj(child); err != nil {
		return nothing, err
	}
	return func() error { return writeOOMScoreAdj(own) }, nil
}

func writeOOMScoreAdj(v int) error {
	// O_WRONLY without O_CREATE or O_TRUNC: a proc file, written once.
	f, err := os.OpenFile(oomScoreAdjFile, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(strconv.Itoa(v))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: writing %d: %w", oomScoreAdjFile, v, err)
	}
	return nil
}
