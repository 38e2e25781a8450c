package notify

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// MaxTreeDepth bounds the walk up the parent chain in InTree. A pid that
// is reused while the walk runs could make the chain loop or wander; the
// bound makes the answer "no" instead of a hang. Real trees under an init
// are a handful of levels deep.
const MaxTreeDepth = 64

// InTree reports whether pid is root or one of root's descendants, by
// following parent pids through /proc/PID/stat. root itself counts
// because systemd-notify, run as root directly by vigil, signs its
// message with its parent's pid, which is vigil's; forging a pid that is
// not one's own needs CAP_SYS_ADMIN, so such a sender is trusted anyway.
func InTree(pid, root int) bool {
	return inTree(pid, root, MaxTreeDepth, procPPid)
}

// inTree is InTree with the parent lookup as a parameter. A lookup that
// fails (the process is gone) ends the walk with "no": a message from a
// sender that cannot be placed is not trusted.
func inTree(pid, root, depth int, ppid func(int) (int, error)) bool {
	if pid <= 0 || root <= 0 {
		return false
	}
	for range depth + 1 {
		if pid == root {
			return true
		}
		if pid <= 1 {
			return false // the top of the namespace, or a parent outside it (0)
		}
		next, err := ppid(pid)
		if err != nil {
			return false
		}
		pid = next
	}
	return false
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
