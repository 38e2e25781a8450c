package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"vigil/internal/testinfra/nsinit"
)

// helperEnv makes this binary run as one of its helper programs, named by
// os.Args[1]. Every init passes its environment on to its child.
const helperEnv = "BENCH_HELPER"

var helpers = map[string]func(args []string) int{
	"shim":     shim,
	"storm":    storm,
	"sigwait":  sigwait,
	"sigwait2": sigwait2,
	"orphan":   orphanByExec,
}

func runHelper(name string, args []string) int {
	h, ok := helpers[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "bench: no helper %q\n", name)
		return 99
	}
	return h(args)
}

// shim runs as PID 1 of a new PID and mount namespace: it mounts /proc for
// that namespace (privately, so the host's is untouched), joins the cgroup
// CGROUP_PROCS names if any, and execs the init in args.
func shim(args []string) int {
	cg, args := args[0], args[1:]
	if cg == "-" {
		cg = ""
	}
	err := nsinit.Exec(args, os.Environ(), cg)
	fmt.Fprintln(os.Stderr, "shim:", err)
	return 98
}

// stormReport is what the storm child tells the bench.
type stormReport struct {
	Orphans   int   `json:"orphans"`
	ElapsedNs int64 `json:"elapsed_ns"`  // first fork until PID 1 has no child but us
	Retries   int   `json:"retries"`     // forks refused (EAGAIN: pids.max reached)
	Left      int   `json:"left"`        // processes other than PID 1 and us at the end
	HWMkB     int   `json:"init_hwm_kb"` // the init's peak over the storm
	RSSkB     int   `json:"init_rss_kb"`
	AnonkB    int   `json:"init_rss_anon_kb"`
	FilekB    int   `json:"init_rss_file_kb"`
	// BeforekB is the init's VmRSS when the storm begins, after it has
	// settled.
	BeforekB int `json:"init_rss_before_kb"`
}

// storm runs as the init's child in the PID namespace: after SETTLE it
// resets PID 1's VmHWM to its current VmRSS, so that the peak read at the
// end is the storm's and not the init's start-up, leaves N orphans to PID 1
// as fast as it can, waits until PID 1 has reaped all of them, and writes a
// stormReport to REPORT.
func storm(args []string) int {
	n, report := atoi(args[0]), args[1]
	settle, err := time.ParseDuration(args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "storm:", err)
		return 97
	}
	r := stormReport{Orphans: n}
	me := os.Getpid()
	time.Sleep(settle)
	// "5" resets the peak resident set size to the current one (Linux 4.0).
	if err := os.WriteFile("/proc/1/clear_refs", []byte("5"), 0); err != nil {
		fmt.Fprintln(os.Stderr, "storm: resetting PID 1's VmHWM:", err)
		return 97
	}
	r.BeforekB = procStatus(1)["VmRSS"]
	start := time.Now()
	if haveOrphanPair {
		r.Retries, err = orphansByClone(n)
	} else {
		r.Retries, err = orphansByExec(n)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "storm:", err)
		return 97
	}
	// Done when PID 1's only child is us: every orphan has been reaped.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		kids := children(1)
		if len(kids) == 1 && kids[0] == me || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Microsecond)
	}
	r.ElapsedNs = int64(time.Since(start))
	r.Left = census(me)
	st := procStatus(1)
	r.HWMkB, r.RSSkB, r.AnonkB, r.FilekB = st["VmHWM"], st["VmRSS"], st["RssAnon"], st["RssFile"]
	b, _ := json.Marshal(r)
	if err := os.WriteFile(report, b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "storm:", err)
		return 96
	}
	return 0
}

// orphansByClone makes n orphans with orphanPair, on one OS thread with
// every signal blocked for as long as its children share our memory.
func orphansByClone(n int) (retries int, err error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	all, old := ^uint64(0), uint64(0)
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&all)), uintptr(unsafe.Pointer(&old)), 8, 0, 0); e != 0 {
		return 0, fmt.Errorf("rt_sigprocmask: %w", e)
	}
	defer unix.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&old)), 0, 8, 0, 0)
	const flags = unix.CLONE_VM | unix.CLONE_VFORK | uintptr(unix.SIGCHLD)
	for made := 0; made < n; {
		pid, errno := orphanPair(flags)
		if errno == uintptr(unix.EAGAIN) {
			// pids.max reached: the init is behind. Let it catch up.
			retries++
			unix.Nanosleep(&unix.Timespec{Nsec: 20000}, nil)
			continue
		}
		if errno != 0 {
			return retries, fmt.Errorf("clone: %w", syscall.Errno(errno))
		}
		var ws unix.WaitStatus
		if _, err := unix.Wait4(int(pid), &ws, 0, nil); err != nil {
			return retries, fmt.Errorf("wait4: %w", err)
		}
		if ws.ExitStatus() != 0 {
			retries++ // A could not start B
			unix.Nanosleep(&unix.Timespec{Nsec: 20000}, nil)
			continue
		}
		made++
	}
	return retries, nil
}

// orphansByExec is the portable, slower way: start ourselves as "orphan",
// which starts a child and exits without waiting for it.
func orphansByExec(n int) (int, error) {
	self, _ := os.Executable()
	for i := 0; i < n; i++ {
		if err := exec.Command(self, "orphan").Run(); err != nil {
			return 0, err
		}
	}
	return 0, nil
}

func orphanByExec([]string) int {
	if _, err := syscall.ForkExec("/bin/true", []string{"true"}, &syscall.ProcAttr{}); err != nil {
		return 1
	}
	return 0
}

// children lists the children of every thread of pid.
func children(pid int) []int {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var out []int
	for _, t := range tasks {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		for _, f := range strings.Fields(string(b)) {
			out = append(out, atoi(f))
		}
	}
	return out
}

// census counts the processes in the namespace other than PID 1 and me.
func census(me int) int {
	d, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range d {
		pid, err := strconv.Atoi(e.Name())
		if err == nil && pid != 1 && pid != me {
			n++
		}
	}
	return n
}

// sigwait blocks SIGUSR1 and re-executes itself as sigwait2: a mask set
// before exec is the mask of every thread the Go runtime then starts, so
// the signal stays pending until sigwait2 takes it synchronously, with no
// runtime signal handler or goroutine hand-off in between.
func sigwait(args []string) int {
	runtime.LockOSThread()
	set := uint64(1) << (unix.SIGUSR1 - 1)
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_BLOCK, uintptr(unsafe.Pointer(&set)), 0, 8, 0, 0); e != 0 {
		fmt.Fprintln(os.Stderr, "sigwait: rt_sigprocmask:", e)
		return 95
	}
	self, _ := os.Executable()
	err := unix.Exec(self, append([]string{self, "sigwait2"}, args...), os.Environ())
	fmt.Fprintln(os.Stderr, "sigwait: exec:", err)
	return 95
}

// sigwait2 writes "R" to the FIFO when ready, then one byte for every
// SIGUSR1 it takes.
func sigwait2(args []string) int {
	runtime.LockOSThread()
	fd, err := unix.Open(args[0], unix.O_WRONLY, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sigwait2:", err)
		return 94
	}
	if _, err := unix.Write(fd, []byte("R")); err != nil {
		return 94
	}
	set := uint64(1) << (unix.SIGUSR1 - 1)
	b := []byte{'s'}
	for {
		_, _, e := unix.Syscall6(unix.SYS_RT_SIGTIMEDWAIT, uintptr(unsafe.Pointer(&set)), 0, 0, 8, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			fmt.Fprintln(os.Stderr, "sigwait2: rt_sigtimedwait:", e)
			return 94
		}
		if _, err := unix.Write(fd, b); err != nil {
			return 0 // the bench is gone
		}
	}
}

func atoi(s string) int {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		panic(err)
	}
	return n
}

// procStatus reads the kB and count fields of /proc/PID/status.
func procStatus(pid int) map[string]int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	m := map[string]int{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		if n, err := strconv.Atoi(f[0]); err == nil {
			m[k] = n
		}
	}
	return m
}
