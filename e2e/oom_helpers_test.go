package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The helpers of TestVigilIsNeverTheOOMVictim, registered here so that the
// shared helpers map needs no edit.
func init() {
	helpers["oom-crowd"] = oomCrowd
	helpers["oom-worker"] = oomWorker
}

// crowdReport is what oom-crowd tells the test.
type crowdReport struct {
	Workers int `json:"workers"`
	Ready   int `json:"ready"`  // reached their size
	Killed  int `json:"killed"` // ended by SIGKILL
	Other   int `json:"other"`  // ended in any other way than a clean exit or SIGKILL
	// MaxRSSkB is the largest VmRSS a ready worker reported: the test
	// means something only if the workers are small.
	MaxRSSkB int `json:"max_rss_kb"`
	// InitRSSkB is PID 1's VmRSS (vigil's) when the workers begin to
	// allocate; CrowdRSSkB is oom-crowd's own once they are settled, the
	// largest it was while the OOM killer could strike.
	InitRSSkB  int    `json:"init_rss_kb"`
	CrowdRSSkB int    `json:"crowd_rss_kb"`
	Err        string `json:"err,omitempty"`
}

// crowdStatus is oom-crowd's exit status, which vigil must hand back.
const crowdStatus = 42

// oomCrowd (args: N KB REPORT) starts N oom-workers, lets them all touch
// KB kB of anonymous memory at once, waits until each has either done so
// or died, then lets the survivors exit, reaps them all, writes a
// crowdReport to REPORT and exits crowdStatus.
//
// It is the test's scaffolding, and the question is whether the kernel
// picks vigil or a worker, not this process: before the workers allocate,
// it drops its file pages (a Go test binary's, larger than a worker) to
// stay below them. It cannot simply lower its oom_score_adj:
// that takes CAP_SYS_RESOURCE, which containers, CI's included, often lack.
func oomCrowd(args []string) int {
	n, size, report := mustAtoi(args[0]), args[1], args[2]
	rep := crowdReport{Workers: n}
	fail := func(err error) int {
		rep.Err = err.Error()
		b, _ := json.Marshal(rep)
		writeFile(report, string(b))
		return crowdStatus
	}
	exe, err := os.Executable()
	if err != nil {
		return fail(err)
	}
	// Workers begin at end of file on goR, and exit at end of file on
	// holdR.
	goR, goW, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	holdR, holdW, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	type worker struct {
		cmd   *exec.Cmd
		ready *os.File
	}
	var ws []worker
	for range n {
		readyR, readyW, err := os.Pipe()
		if err != nil {
			return fail(err)
		}
		cmd := exec.Command(exe, "oom-worker", size)
		cmd.ExtraFiles = []*os.File{readyW, goR, holdR} // fds 3, 4 and 5
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			return fail(err)
		}
		readyW.Close()
		ws = append(ws, worker{cmd, readyR})
	}
	goR.Close()
	holdR.Close()
	var b [1]byte
	for _, w := range ws {
		if n, _ := w.ready.Read(b[:]); n != 1 {
			return fail(fmt.Errorf("a worker died before it could start"))
		}
	}
	if err := dropFilePages(); err != nil {
		return fail(err)
	}
	rep.InitRSSkB, _ = statusKB("/proc/1/status", "VmRSS")
	goW.Close()
	// A byte says a worker has touched its memory; end of file says it
	// died first. Until every worker has done one or the other, the OOM
	// killer may strike, and this process does nothing but read: any code
	// it runs brings pages of its executable back.
	ready := make([]bool, n)
	for i, w := range ws {
		if k, _ := w.ready.Read(b[:]); k == 1 {
			ready[i] = true
		}
		w.ready.Close()
	}
	rep.CrowdRSSkB, _ = statusKB("/proc/self/status", "VmRSS")
	for i, w := range ws {
		if ready[i] {
			rep.Ready++
			if kB, ok := statusKB(fmt.Sprintf("/proc/%d/status", w.cmd.Process.Pid), "VmRSS"); ok {
				rep.MaxRSSkB = max(rep.MaxRSSkB, kB)
			}
		}
	}
	holdW.Close() // the survivors exit
	for _, w := range ws {
		err := w.cmd.Wait()
		st, _ := w.cmd.ProcessState.Sys().(syscall.WaitStatus)
		switch {
		case err == nil:
		case st.Signaled() && st.Signal() == syscall.SIGKILL:
			rep.Killed++
		default:
			rep.Other++
		}
	}
	out, _ := json.Marshal(rep)
	writeFile(report, string(out))
	return crowdStatus
}

// oomWorker (args: KB) says it has started with a byte on fd 3, waits
// for end of file on fd 4, drops its file pages (this test binary's are
// far larger than a worker should be), touches KB kB of anonymous memory,
// drops its file pages again, says so with a byte on fd 3 and exits 0 at
// end of file on fd 5.
func oomWorker(args []string) int {
	size := mustAtoi(args[0])
	var b [1]byte
	if _, err := unix.Write(3, []byte("s")); err != nil {
		return 91
	}
	if n, err := unix.Read(4, b[:]); n != 0 || err != nil {
		return 91
	}
	// Small before touching as well as after: the OOM killer weighs the
	// workers while they touch their memory.
	if err := dropFilePages(); err != nil {
		fmt.Fprintln(os.Stderr, "oom-worker:", err)
		return 91
	}
	m, err := unix.Mmap(-1, 0, size<<10, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		fmt.Fprintln(os.Stderr, "oom-worker: mmap:", err)
		return 91
	}
	for off := 0; off < len(m); off += 4096 {
		m[off] = 1
	}
	if err := dropFilePages(); err != nil {
		fmt.Fprintln(os.Stderr, "oom-worker:", err)
		return 91
	}
	if _, err := unix.Write(3, b[:]); err != nil {
		return 91
	}
	for {
		if n, err := unix.Read(5, b[:]); n == 0 || err != unix.EINTR {
			return 0
		}
	}
}

// dropFilePages drops the resident pages of every read-only private file
// mapping: those of the executable, as slim.Pages.Drop does for vigil,
// and those of the C library, since go test links this binary
// dynamically when cgo is on.
func dropFilePages() error {
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(maps), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || f[4] == "0" || (f[1] != "r-xp" && f[1] != "r--p") {
			continue
		}
		lo, hi, _ := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("/proc/self/maps: %q", line)
		}
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_DONTNEED); e != 0 {
			return fmt.Errorf("madvise %s: %w", f[0], e)
		}
	}
	return nil
}

// statusKB reads a kB field of a /proc/PID/status file; false if the
// process is gone or has no such field (a zombie has no VmRSS).
func statusKB(status, key string) (int, bool) {
	b, err := os.ReadFile(status)
	if err != nil {
		return 0, false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n, err == nil
		}
	}
	return 0, false
}
