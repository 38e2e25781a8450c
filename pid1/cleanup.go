package pid1

import (
	"bytes"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"vigil/signals"
)

// leftover is a process still alive after the main child ended.
type leftover struct {
	pid  int
	comm string
}

// cleanup ends every descendant still alive once the main child has ended:
// SIGTERM, the grace period, then SIGKILL, each one logged, all reaped. So
// nothing is left for the kernel to kill without warning when vigil exits.
func (s *supervisor) cleanup() {
	s.reap()
	if !s.alive {
		// wait4 said ECHILD: with no child there is no descendant (each is
		// reparented to vigil when its parent dies), so skip the /proc scan,
		// which costs a read per process on the machine: outside a
		// container, most of vigil's start-up overhead (bench/).
		return
	}
	for _, sig := range []unix.Signal{unix.SIGTERM, unix.SIGKILL} {
		left, err := s.leftovers()
		if err != nil && !s.isInit {
			if s.alive {
				s.log.Warn("cannot list leftover processes; they will outlive vigil", "err", err)
			}
			return
		}
		if len(left) == 0 && !s.alive {
			return
		}
		for _, p := range left {
			s.log.Warn("killing leftover process", "pid", p.pid, "comm", p.comm, "signal", signals.Name(sig))
		}
		if s.isInit {
			// As PID 1 every other process in the namespace is a leftover,
			// and kill(-1) reaches them all even without /proc.
			s.kill(-1, sig)
		} else {
			for _, p := range left {
				s.kill(p.pid, sig)
			}
		}
		grace := s.leftoverGrace()
		if sig == unix.SIGKILL {
			// SIGKILL cannot be refused, only delayed by a process stuck in
			// the kernel; do not let one of those hang the container.
			grace = max(grace, killWait)
		}
		if s.waitFor(s.nothingLeft, grace) {
			return
		}
	}
	s.log.Error("processes survived SIGKILL; exiting anyway")
}

// nothingLeft reports whether vigil has no children left. Every descendant
// of vigil is reparented to it when its own parent dies, so no children
// means no descendants.
func (s *supervisor) nothingLeft() bool { return !s.alive }

// leftovers lists the descendants of vigil from /proc: every process whose
// chain of parents leads to vigil.
func (s *supervisor) leftovers() ([]leftover, error) {
	d, err := os.Open("/proc")
	if err != nil {
		return nil, err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, err
	}
	parent := map[int]int{}
	comm := map[int]string{}
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		ppid, c, ok := readStat(pid)
		if !ok {
			continue
		}
		parent[pid], comm[pid] = ppid, c
	}
	self := os.Getpid()
	var out []leftover
	for pid := range parent {
		for p, hops := parent[pid], 0; p != 0 && hops < len(parent); p, hops = parent[p], hops+1 {
			if p == self {
				out = append(out, leftover{pid: pid, comm: comm[pid]})
				break
			}
		}
	}
	return out, nil
}

// readStat returns the parent pid and command name from /proc/PID/stat.
func readStat(pid int) (ppid int, comm string, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, "", false
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses,
	// so cut at the last ')'.
	open, close := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || close < open {
		return 0, "", false
	}
	f := bytes.Fields(b[close+1:])
	if len(f) < 2 {
		return 0, "", false
	}
	ppid, err = strconv.Atoi(string(f[1]))
	return ppid, string(b[open+1 : close]), err == nil
}
