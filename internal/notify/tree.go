package notify

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// MaxTreeDepth bounds the walk up the parent chain. A pid that is reused
// while the walk runs could make the chain loop or wander; the bound
// makes the answer "no" instead of a hang. Real trees under an init are
// a handful of levels deep.
const MaxTreeDepth = 64

// Sender is what the kernel says about the sender of one datagram.
type Sender struct {
	// Pid is the sender's pid in the listener's PID namespace (from
	// SCM_CREDENTIALS); 0 for a sender in another PID namespace.
	Pid int
	// Uid and Gid are the sender's, as the kernel saw them.
	Uid, Gid int
	// pidfd names the sender itself (SCM_PIDFD, Linux 6.5 and later),
	// even when its pid has been reused since; -1 without one. It lives
	// as long as the datagram is being judged.
	pidfd int
}

// Where a sender stands in relation to a tree.
type placement uint8

const (
	inside  placement = iota + 1 // the root or one of its descendants
	outside                      // somewhere else, or in another PID namespace
	gone                         // exited before it could be placed
	unknown                      // no way to tell: no pidfd and no /proc of this namespace
)

// Tree returns the judge of senders for the listener of the process
// root (vigil: its own pid): it accepts root and its descendants.
//
// The sender is named by its pidfd where the kernel gives one, and its
// parents are followed with PIDFD_GET_INFO (Linux 6.13), which answers in
// the listener's PID namespace whatever /proc is mounted. Without them
// the parents are read from /proc/PID/stat, and only from a /proc of the
// listener's own PID namespace: another one would name other processes.
//
// A sender that has exited and been reaped before its datagram is read
// has no parent left to follow (systemd-notify --no-block, reaped by its
// shell at once). It is accepted when it was in the listener's PID
// namespace and, where the kernel kept a reaped process's cgroup
// (PIDFD_INFO_EXIT), in the listener's cgroup, unless it was placed
// outside the tree while it lived: a flooding stranger's last datagrams,
// read after it exited, are refused like the others. A neighbour of
// another container fails one test or the other; a stranger of root's
// own container (docker exec) that sends once and is reaped before its
// message is read passes them all, and cannot be told apart.
func Tree(root int) func(Sender) bool {
	t := &tree{root: root, procOurs: procIsOurs(), cgroup: ownCgroup(), strangers: map[uint64]bool{}}
	return func(s Sender) bool {
		p := t.place(s)
		ino := pidfdIno(s.pidfd)
		t.mu.Lock()
		defer t.mu.Unlock()
		var cg uint64
		switch p {
		case outside:
			t.remember(ino)
		case gone:
			if ino != 0 && t.strangers[ino] {
				return false
			}
			cg = exitCgroup(s.pidfd)
		}
		return t.accept(s, p, cg)
	}
}

// maxStrangers bounds the strangers a tree remembers; the oldest is
// forgotten first.
const maxStrangers = 1024

// remember notes a process placed outside the tree, by its pidfd's
// inode number, which names one process for the whole boot (pidfs,
// Linux 6.9); 0 (no pidfs) is not remembered.
func (t *tree) remember(ino uint64) {
	if ino == 0 || t.strangers[ino] {
		return
	}
	if len(t.order) >= maxStrangers {
		delete(t.strangers, t.order[0])
		t.order = t.order[1:]
	}
	t.strangers[ino] = true
	t.order = append(t.order, ino)
}

// pidfdIno is the inode number of a pidfd of pidfs, unique to its
// process; 0 for none, or for an older kernel's pidfd, whose inode all
// pidfds share.
func pidfdIno(pidfd int) uint64 {
	if pidfd < 0 {
		return 0
	}
	var fs unix.Statfs_t
	if unix.Fstatfs(pidfd, &fs) != nil || fs.Type != unix.PID_FS_MAGIC {
		return 0
	}
	var st unix.Stat_t
	if unix.Fstat(pidfd, &st) != nil {
		return 0
	}
	return st.Ino
}

// tree is what Tree's judge knows of the listener's process.
type tree struct {
	root     int
	procOurs bool   // /proc is this PID namespace's
	cgroup   uint64 // the listener's cgroup (v2) id, 0 if the kernel does not say

	mu        sync.Mutex
	strangers map[uint64]bool // pidfd inodes of senders placed outside
	order     []uint64        // the same, oldest first
}

// accept decides from a sender's placement and, for one that is gone,
// the cgroup the kernel kept for it (0: none).
func (t *tree) accept(s Sender, p placement, exitCg uint64) bool {
	switch p {
	case inside:
		return true
	case outside, unknown:
		return false
	case gone:
		if s.Pid <= 0 {
			return false
		}
		return exitCg == 0 || t.cgroup == 0 || exitCg == t.cgroup
	}
	panic(fmt.Sprintf("notify: placement %d", p))
}

// place finds where s stands: by its pidfd where the kernel allows it,
// else by its pid in /proc.
func (t *tree) place(s Sender) placement {
	if s.Pid <= 0 {
		return outside
	}
	if s.pidfd >= 0 {
		if p, ok := placePidfd(s.pidfd, t.root, MaxTreeDepth); ok {
			return p
		}
	}
	if !t.procOurs {
		return unknown
	}
	return inTree(s.Pid, t.root, MaxTreeDepth, procPPid)
}

// placePidfd walks up from the process pidfd names with PIDFD_GET_INFO.
// It reports false when the kernel has no PIDFD_GET_INFO (before 6.13).
// Each parent is opened as a pidfd and then checked to still be the
// parent of the process below it, so that a pid reused between the two
// steps is never taken for an ancestor.
func placePidfd(pidfd, root, depth int) (placement, bool) {
	cur := pidfd
	defer func() {
		if cur != pidfd {
			unix.Close(cur)
		}
	}()
	info, err := pidfdInfo(cur)
	switch {
	case errors.Is(err, unix.ESRCH):
		return gone, true
	case err != nil:
		return 0, false // ENOTTY, EINVAL: no PIDFD_GET_INFO
	}
	for range depth + 1 {
		if info.Mask&unix.PIDFD_INFO_PID == 0 {
			return gone, true // reaped: only its exit is known
		}
		pid, ppid := int(info.Tgid), int(info.Ppid)
		switch {
		case pid == 0:
			return outside, true // not visible from this PID namespace
		case pid == root || ppid == root:
			return inside, true
		case ppid == 0:
			return outside, true // the top of the namespace, or entered from outside it
		}
		next, err := unix.PidfdOpen(ppid, 0)
		if err != nil {
			// The parent went away: the process below has a new one
			// (or is gone itself); look again.
			if info, err = pidfdInfo(cur); err != nil {
				return gone, true
			}
			continue
		}
		again, err := pidfdInfo(cur)
		if err != nil || again.Mask&unix.PIDFD_INFO_PID == 0 || int(again.Ppid) != ppid {
			unix.Close(next)
			if err != nil || again.Mask&unix.PIDFD_INFO_PID == 0 {
				return gone, true
			}
			info = again
			continue
		}
		if cur != pidfd {
			unix.Close(cur)
		}
		cur = next
		if info, err = pidfdInfo(cur); err != nil {
			return gone, true // an ancestor died: its descendant is an orphan now
		}
	}
	return outside, true
}

// pidfdInfo asks the kernel about the process pidfd names; for one that
// has been reaped it says only how it ended (the mask has no
// PIDFD_INFO_PID).
func pidfdInfo(pidfd int) (unix.PidfdInfo, error) {
	info := unix.PidfdInfo{Mask: unix.PIDFD_INFO_PID | unix.PIDFD_INFO_CGROUPID | unix.PIDFD_INFO_EXIT}
	err := unix.IoctlPidfdInfo(pidfd, &info)
	return info, err
}

// exitCgroup is the cgroup id the kernel kept for a sender that has
// exited, 0 when it kept none.
func exitCgroup(pidfd int) uint64 {
	if pidfd < 0 {
		return 0
	}
	info, err := pidfdInfo(pidfd)
	if err != nil || info.Mask&unix.PIDFD_INFO_CGROUPID == 0 {
		return 0
	}
	return info.Cgroupid
}

// ownCgroup is the calling process's cgroup id, 0 when the kernel does
// not say.
func ownCgroup() uint64 {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return 0
	}
	defer unix.Close(fd)
	info, err := pidfdInfo(fd)
	if err != nil || info.Mask&unix.PIDFD_INFO_CGROUPID == 0 {
		return 0
	}
	return info.Cgroupid
}

// procIsOurs reports whether /proc belongs to this process's PID
// namespace: /proc/self then names this very process.
func procIsOurs() bool {
	self, err := os.Readlink("/proc/self")
	return err == nil && self == strconv.Itoa(os.Getpid())
}

// inTree places pid against the tree of root by following parent pids,
// at most depth of them, through ppid (procPPid: /proc/PID/stat). root
// itself counts because systemd-notify, run as root directly by vigil,
// signs its message with its parent's pid, which is vigil's; forging a
// pid that is not one's own needs CAP_SYS_ADMIN, so such a sender is
// trusted anyway. A lookup that fails for the sender itself says it is
// gone; one that fails higher up ends the walk with "outside".
func inTree(pid, root, depth int, ppid func(int) (int, error)) placement {
	if pid <= 0 || root <= 0 {
		return outside
	}
	for i := range depth + 1 {
		if pid == root {
			return inside
		}
		if pid <= 1 {
			return outside // the top of the namespace, or a parent outside it (0)
		}
		next, err := ppid(pid)
		if err != nil {
			if i == 0 {
				return gone
			}
			return outside
		}
		pid = next
	}
	return outside
}

// statMax is enough of /proc/PID/stat to reach the parent pid: the
// command name in it is at most 16 bytes (TASK_COMM_LEN), so the fourth
// field starts within the first few dozen.
const statMax = 256

// procPPid reads the parent pid of pid from /proc/PID/stat.
func procPPid(pid int) (int, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, statMax)
	n, err := f.Read(buf)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return parseStatPPid(buf[:n])
}

var errStat = errors.New("malformed /proc/PID/stat")

// parseStatPPid reads the parent pid from the start of a /proc/PID/stat
// line: "PID (COMM) STATE PPID ...". COMM may hold spaces and
// parentheses, so the fields after it are found after its last ')'.
func parseStatPPid(b []byte) (int, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errStat
	}
	fields := bytes.Fields(b[i+1:])
	if len(fields) < 2 {
		return 0, errStat
	}
	ppid, err := strconv.Atoi(string(fields[1]))
	if err != nil || ppid < 0 {
		return 0, errStat
	}
	return ppid, nil
}
