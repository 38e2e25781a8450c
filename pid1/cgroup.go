package pid1

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
)

// memCgroup is the memory cgroup vigil runs in, as found at start.
type memCgroup struct {
	v2     bool
	dir    string
	counts string // the file with the oom_kill line: v2 memory.events, v1 memory.oom_control
	// group is v2's memory.oom.group: an OOM kill in the cgroup kills
	// every task in it whose oom_score_adj is not -1000.
	group bool
}

// findMemCgroup finds vigil's memory cgroup under root (/sys/fs/cgroup)
// from the lines of /proc/self/cgroup. Without a cgroup namespace the path
// in /proc/self/cgroup is the host's while the container sees its own
// cgroup at the mount point, so the mount point itself is tried too, after
// the path. cgroup v1 comes first: on hybrid hosts the v2 tree has no
// memory controller, and a v2 cgroup without it has no memory.events.
func findMemCgroup(root, procCgroup string) (memCgroup, bool) {
	var v1, v2 []memCgroup
	for _, line := range strings.Split(procCgroup, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		path := filepath.Clean("/" + parts[2])
		if parts[0] == "0" && parts[1] == "" {
			for _, dir := range []string{filepath.Join(root, path), root} {
				v2 = append(v2, memCgroup{v2: true, dir: dir, counts: filepath.Join(dir, "memory.events")})
			}
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "memory" {
				for _, dir := range []string{filepath.Join(root, "memory", path), filepath.Join(root, "memory")} {
					v1 = append(v1, memCgroup{dir: dir, counts: filepath.Join(dir, "memory.oom_control")})
				}
			}
		}
	}
	for _, cg := range append(v1, v2...) {
		b, err := os.ReadFile(cg.counts)
		if err != nil {
			continue
		}
		if _, ok := parseOOMCounts(b); !ok {
			continue // a kernel too old to count kills: nothing to watch
		}
		if cg.v2 {
			g, err := os.ReadFile(filepath.Join(cg.dir, "memory.oom.group"))
			cg.group = err == nil && strings.TrimSpace(string(g)) == "1"
		}
		return cg, true
	}
	return memCgroup{}, false
}

// oomCounts are the OOM-kill counters of a memory cgroup.
type oomCounts struct {
	kills      uint64 // oom_kill: processes the OOM killer killed (each of a group kill counts)
	groupKills uint64 // oom_group_kill (v2): group kills
}

// parseOOMCounts reads the "oom_kill N" and "oom_group_kill N" lines of
// memory.events or memory.oom_control; ok is false without an oom_kill
// line. It allocates nothing: the loop reads the file before every drain,
// and in a storm of exits garbage would grow the heap by megabytes before
// the first collection.
func parseOOMCounts(b []byte) (c oomCounts, ok bool) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		key, val, found := bytes.Cut(line, []byte(" "))
		if !found {
			continue
		}
		n, valid := parseCount(bytes.TrimSpace(val))
		if !valid {
			continue
		}
		switch string(key) { // no allocation: the compiler compares in place
		case "oom_kill":
			c.kills, ok = n, true
		case "oom_group_kill":
			c.groupKills = n
		}
	}
	return c, ok
}

// parseCount parses a decimal uint64 without allocating.
func parseCount(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var n uint64
	for _, d := range b {
		if d < '0' || d > '9' {
			return 0, false
		}
		next := n*10 + uint64(d-'0')
		if next/10 != n {
			return 0, false // overflow
		}
		n = next
	}
	return n, true
}
