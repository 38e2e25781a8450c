package pid1

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// oomCounter returns the OOM-kill counter of the memory cgroup vigil is in,
// or 0 when there is none to read: then no SIGKILL is classified as oom.
func oomCounter() uint64 {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0
	}
	for _, file := range oomFiles(string(b)) {
		if n, ok := readOOMKill(file); ok {
			return n
		}
	}
	return 0
}

// oomFiles lists, most specific first, the files that may hold the counter
// for the cgroup lines of /proc/self/cgroup: cgroup v1's memory.oom_control
// and v2's memory.events. Without a cgroup namespace the path in
// /proc/self/cgroup is the host's while the container sees its own cgroup
// at the mount point, so the mount point itself is tried too.
func oomFiles(procCgroup string) []string {
	const root = "/sys/fs/cgroup"
	var v1, v2 []string
	for _, line := range strings.Split(procCgroup, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		path := filepath.Clean("/" + parts[2])
		if parts[0] == "0" && parts[1] == "" {
			v2 = append(v2, filepath.Join(root, path, "memory.events"), filepath.Join(root, "memory.events"))
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "memory" {
				v1 = append(v1, filepath.Join(root, "memory", path, "memory.oom_control"),
					filepath.Join(root, "memory", "memory.oom_control"))
			}
		}
	}
	// v1 first: on hybrid hosts the v2 tree has no memory controller.
	return append(v1, v2...)
}

// readOOMKill reads the "oom_kill N" line of a cgroup file.
func readOOMKill(file string) (uint64, bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "oom_kill "); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
