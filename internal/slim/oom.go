package slim

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// oomScoreAdjFile is where a process reads and sets its own oom_score_adj.
const oomScoreAdjFile = "/proc/self/oom_score_adj"

// Unkillable is the oom_score_adj that switches the OOM killer off for a
// process, and spares it from a cgroup v2 group kill (memory.oom.group).
const Unkillable = -1000

// ErrNoCapSysResource says that lowering oom_score_adj below the lowest
// value a privileged process set needs CAP_SYS_RESOURCE.
var ErrNoCapSysResource = errors.New("lowering oom_score_adj needs CAP_SYS_RESOURCE")

// OOMScoreAdj returns this process's oom_score_adj.
func OOMScoreAdj() (int, error) {
	b, err := os.ReadFile(oomScoreAdjFile)
	if err != nil {
		return 0, err
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("%s: %q: %w", oomScoreAdjFile, b, err)
	}
	return v, nil
}

// Protect sets this process's oom_score_adj to Unkillable and returns the
// score it had. It needs CAP_SYS_RESOURCE, unless whoever started the
// process allowed that score already (oom_score_adj_min); without it the
// error wraps ErrNoCapSysResource.
func Protect() (was int, err error) {
	if was, err = OOMScoreAdj(); err != nil || was == Unkillable {
		return was, err
	}
	if err := writeOOMScoreAdj(Unkillable); err != nil {
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			return was, fmt.Errorf("%w: %w", ErrNoCapSysResource, err)
		}
		return was, err
	}
	return was, nil
}

// ScoreForFork sets this process's oom_score_adj from own to child and
// returns a function that puts own back. Call it right before forking and
// the function right after: the child inherits the score at fork, so it
// has it from its first instruction, before it can exec or fork anything
// of its own. Writing /proc/CHILD/oom_score_adj after the fork instead
// would race with the child's own forks, and fail once the child has run
// a setuid program.
//
// Raising needs no privilege; putting a lower own back needs what own
// needed (CAP_SYS_RESOURCE for Unkillable, which Protect checked). With
// the capability the kernel also makes each score written the lowest the
// process may set itself (oom_score_adj_min), and the child inherits that:
// a child forked at child cannot lower itself back to own. Between the two
// calls this process carries the child's score; the window is one fork.
//
// With child equal to own it writes nothing.
func ScoreForFork(own, child int) (restore func() error, err error) {
	nothing := func() error { return nil }
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
