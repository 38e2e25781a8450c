package pid1

import (
	"bytes"
	"errors"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"vigil/signals"
)

// procStat is what vigil reads of /proc/PID/stat.
type procStat struct {
	comm      string
	state     byte
	ppid      int
	startTime uint64 // clock ticks after boot: with the pid, names one process for ever
}

// parseStat reads "pid (comm) state ppid ... starttime ...". comm may hold
// spaces and parentheses, so it is cut at the last ')'.
func parseStat(b []byte) (procStat, bool) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return procStat{}, false
	}
	// After the comm: state(0) ppid(1) ... starttime(19).
	f := bytes.Fields(b[end+1:])
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, false
	}
	ppid, err1 := strconv.Atoi(string(f[1]))
	start, err2 := strconv.ParseUint(string(f[19]), 10, 64)
	if err1 != nil || err2 != nil {
		return procStat{}, false
	}
	return procStat{comm: string(b[open+1 : end]), state: f[0][0], ppid: ppid, startTime: start}, true
}

func readStat(pid int) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	return parseStat(b)
}

// procView reports whether /proc is mounted at all (a scratch image may
// have none) and whether it shows vigil's own PID namespace. Under
// `unshare --pid --fork` without --mount-proc it is the parent's, and its
// pids name other processes than the ones vigil can see.
func procView() (ours, mounted bool) {
	self, err := os.Readlink("/proc/self")
	if err != nil {
		return false, false
	}
	return self == strconv.Itoa(os.Getpid()), true
}

// leftover is a process still alive after the main child ended.
type leftover struct {
	pid int
	procStat
}

// descendants returns every process whose chain of parents leads to self,
// from a table of pid → stat.
func descendants(self int, table map[int]procStat) []leftover {
	var out []leftover
	for pid, st := range table {
		for p, hops := st.ppid, 0; p != 0 && hops < len(table); p, hops = table[p].ppid, hops+1 {
			if p == self {
				out = append(out, leftover{pid: pid, procStat: st})
				break
			}
		}
	}
	return out
}

// leftovers lists vigil's descendants from /proc.
func leftovers() ([]leftover, error) {
	d, err := os.Open("/proc")
	if err != nil {
		return nil, err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, err
	}
	table := make(map[int]procStat, len(names))
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		if st, ok := readStat(pid); ok {
			table[pid] = st
		}
	}
	return descendants(os.Getpid(), table), nil
}

// signalLeftovers sends sig to every descendant of vigil still alive, and
// reports whether it could name them at all.
//
// As PID 1, kill(-1) reaches every other process of the namespace, which
// are all leftovers, even without a /proc. Otherwise (a subreaper) the
// targets come from /proc, and only a /proc of vigil's own namespace: the
// pids of another would name strangers. Each target is opened as a pidfd
// and checked against what the scan saw before it is signalled, so a pid
// that was recycled in between is never hit. A subreaper without a /proc
// it can trust cannot name its leftovers: they outlive vigil, which says
// so once and does not wait for them.
func (s *supervisor) signalLeftovers(sig unix.Signal) bool {
	ours, mounted := procView()
	if !ours && !s.procNote {
		s.procNote = true
		switch {
		case mounted && s.isInit:
			s.log.Warn("/proc is not this PID namespace's; not using it to find leftover processes")
		case mounted:
			s.log.Warn("/proc is not this PID namespace's; not using it to find leftover processes, which will outlive vigil")
		case s.isInit:
			// kill(-1) needs no /proc: nothing is lost but the names.
			s.log.Debug("no /proc; ending leftover processes without naming them")
		default:
			s.log.Warn("no /proc; cannot find leftover processes, which will outlive vigil")
		}
	}
	var left []leftover
	if ours {
		var err error
		if left, err = leftovers(); err != nil && !s.isInit {
			s.log.Warn("cannot list leftover processes; they will outlive vigil", "err", err)
			return false
		}
	}
	for _, p := range left {
		s.log.Info("killing leftover process", "pid", p.pid, "comm", p.comm, "signal", signals.Name(sig))
	}
	if s.isInit {
		s.kill(-1, sig)
		return true
	}
	for _, p := range left {
		s.signalPidfd(p, sig)
	}
	return ours
}

func (s *supervisor) signalPidfd(p leftover, sig unix.Signal) {
	fd, err := unix.PidfdOpen(p.pid, 0)
	if errors.Is(err, unix.ENOSYS) {
		s.kill(p.pid, sig) // a kernel before 5.3
		return
	}
	if err != nil {
		return // gone already
	}
	defer unix.Close(fd)
	// The pidfd names whatever has the pid now; it is the scanned process
	// only if it started at the same tick.
	if now, ok := readStat(p.pid); !ok || now.startTime != p.startTime {
		return
	}
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		s.log.Error("kill failed", "pid", p.pid, "signal", signals.Name(sig), "err", err)
	}
}
