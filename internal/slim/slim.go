// Package slim makes vigil weigh as little as it can once its child runs.
//
// A container init is resident in every container for the container's
// whole life, and in a memory cgroup the kernel's OOM killer picks the
// process with the largest resident set, file-backed pages included. Most
// of what vigil has in memory after the child has started served only the
// start: package initialisation, the command line parser and its help
// templates, the start-up heap. Nothing in this package changes what vigil
// does; it only gives memory back, and every page comes back on demand.
package slim

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Pages are the read-only mappings of the running executable: its code,
// r-x, and its constants and tables, r--.
type Pages struct{ spans []span }

// ExecutablePages finds the read-only mappings of the running executable
// in /proc/self/maps by the device and inode of /proc/self/exe, which
// holds even for a binary deleted or replaced while it runs. The
// mappings do not change while the program runs, so the result can be
// kept and dropped again and again without reading /proc. Without /proc
// it returns an error.
func ExecutablePages() (*Pages, error) {
	var exe unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &exe); err != nil {
		return nil, fmt.Errorf("stat /proc/self/exe: %w", err)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return nil, err
	}
	ranges, err := exeReadOnly(maps, unix.Major(exe.Dev), unix.Minor(exe.Dev), exe.Ino)
	if err != nil {
		return nil, err
	}
	if len(ranges) == 0 {
		return nil, errors.New("/proc/self/maps: no read-only mapping of the executable")
	}
	return &Pages{spans: ranges}, nil
}

// Drop tells the kernel, with madvise(MADV_DONTNEED), that the pages of
// the mappings are not needed, and returns how many bytes the mappings
// span. The pages leave the resident set (RssFile falls) and stay in the
// page cache; those the process touches again come back with a minor
// fault each, on first use, and the kernel maps the neighbours of each
// (fault-around, 64 kB by default): a burst of work after a drop brings
// back a few MB. Under memory pressure the page cache may have let them
// go, and that first use reads them from disk.
//
// It drops the executable's pages and nothing else. debug.FreeOSMemory,
// the obvious companion, was measured and left out (bench/, -add
// variants): the start-up heap is a few hundred kB of small objects spread
// over many size classes, so a collection frees few whole pages to return,
// while the collection itself costs more than it returns (mark workers and
// their stacks, work buffers, mark bits, another thread or two; RssAnon
// rose by 150 to 250 kB). And a first collection starts the runtime's
// two-minute forced collections: a vigil that never collects, because it
// never allocates 4 MB, never has them.
//
// Only mappings that are not writable are touched: for a private file
// mapping, MADV_DONTNEED throws away any page the process has written (a
// copy-on-write page), so on the data segment it would reset variables to
// their initial values. Read-only mappings hold no such copies, with one
// exception: a debugger's breakpoint is a copied code page, and dropping
// it drops the breakpoint.
func (p *Pages) Drop() (int, error) {
	dropped := 0
	for _, r := range p.spans {
		// madvise on the address range alone: no Go slice may stand for
		// memory the runtime does not own.
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, r.start, r.end-r.start, unix.MADV_DONTNEED); e != 0 {
			return dropped, fmt.Errorf("madvise(%#x-%#x, MADV_DONTNEED): %w", r.start, r.end, e)
		}
		dropped += int(r.end - r.start)
	}
	return dropped, nil
}

// span is one mapping's address range.
type span struct{ start, end uintptr }

// exeReadOnly returns the private, non-writable mappings in maps (the text
// of /proc/PID/maps) of the file with the given device and inode.
//
// A line reads: start-end perms offset major:minor inode [path], with the
// numbers other than the inode in hexadecimal.
func exeReadOnly(maps []byte, major, minor uint32, ino uint64) ([]span, error) {
	var out []span
	for len(maps) > 0 {
		line := maps
		if i := bytes.IndexByte(maps, '\n'); i >= 0 {
			line, maps = maps[:i], maps[i+1:]
		} else {
			maps = nil
		}
		f := bytes.Fields(line)
		if len(f) < 5 {
			continue
		}
		if l, err := strconv.ParseUint(string(f[4]), 10, 64); err != nil || l != ino {
			continue
		}
		maj, min, ok := bytes.Cut(f[3], []byte(":"))
		if !ok {
			return nil, fmt.Errorf("/proc/self/maps: bad device in %q", line)
		}
		ma, err1 := strconv.ParseUint(string(maj), 16, 32)
		mi, err2 := strconv.ParseUint(string(min), 16, 32)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("/proc/self/maps: bad device in %q", line)
		}
		if uint32(ma) != major || uint32(mi) != minor {
			continue
		}
		perms := f[1]
		if len(perms) != 4 || perms[0] != 'r' || perms[1] != '-' || perms[3] != 'p' {
			continue
		}
		lo, hi, ok := bytes.Cut(f[0], []byte("-"))
		if !ok {
			return nil, fmt.Errorf("/proc/self/maps: bad range in %q", line)
		}
		start, err1 := strconv.ParseUint(string(lo), 16, 64)
		end, err2 := strconv.ParseUint(string(hi), 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			return nil, fmt.Errorf("/proc/self/maps: bad range in %q", line)
		}
		out = append(out, span{uintptr(start), uintptr(end)})
	}
	return out, nil
}
