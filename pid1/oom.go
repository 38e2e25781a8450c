package pid1

import (
	"errors"
	"os"
	"time"

	"vigil/internal/slim"
)

// cgroupRoot is where the cgroup file systems are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// setupOOM finds vigil's memory cgroup and starts watching its OOM-kill
// counter, and with --oom-protect makes vigil unkillable by the OOM
// killer. No memory cgroup: nothing is said and nothing is watched.
func (s *supervisor) setupOOM() error {
	if s.cfg.OOMProtect {
		was, err := slim.Protect()
		if errors.Is(err, slim.ErrNoCapSysResource) {
			return fail(ExitInternal, "--oom-protect: setting vigil's oom_score_adj to -1000 needs CAP_SYS_RESOURCE, which vigil does not have")
		}
		if err != nil {
			return fail(ExitInternal, "--oom-protect: %w", err)
		}
		s.protected, s.childOOMScore = true, was
		s.log.Debug("oom_score_adj set to -1000; children get the score vigil started with", "children", was)
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil
	}
	cg, ok := findMemCgroup(cgroupRoot, string(b))
	if !ok {
		return nil
	}
	if s.oom, err = startOOMWatch(cg); err != nil {
		s.log.Debug("cannot read the memory cgroup's OOM-kill counter", "file", cg.counts, "err", err)
		return nil
	}
	s.log.Debug("counting OOM kills", "file", cg.counts, "how", s.oom.how, "oom_group", cg.group)
	if cg.group && !s.protected {
		s.log.Info("memory.oom.group is set: an OOM kill ends every process of the container, vigil included, before it can record it; --oom-protect keeps vigil alive (needs CAP_SYS_RESOURCE)")
	}
	return nil
}

// readOOM hands the machine the OOM-kill counter as it is now.
func (s *supervisor) readOOM(now time.Time) {
	if s.oom == nil {
		return
	}
	if c, ok := s.oom.read(); ok {
		s.m.oomCounted(c.kills, now)
	}
}

// spawn starts p; under --oom-protect with the score vigil started with,
// not vigil's own -1000: the child must stay killable.
func (s *supervisor) spawn(p *proc) (int, error) {
	if !s.protected {
		return spawn(p)
	}
	restore, err := slim.ScoreForFork(slim.Unkillable, s.childOOMScore)
	if err != nil {
		return 0, fail(ExitInternal, "--oom-protect: giving the child oom_score_adj %d: %w", s.childOOMScore, err)
	}
	pid, err := spawn(p)
	if rerr := restore(); rerr != nil {
		s.log.Error("--oom-protect: cannot set vigil's oom_score_adj back to -1000; the OOM killer may pick vigil", "err", rerr)
	}
	return pid, err
}
