package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"vigil/internal/testinfra/nsinit"
)

// helpers are the programs vigil runs in the tests: small, each proving one
// thing, each reporting through a file or its exit status.
var helpers = map[string]func(args []string) int{
	"pid1-shim":    pid1Shim,
	"exit":         func(a []string) int { return mustAtoi(a[0]) },
	"die":          die,
	"segv":         segv,
	"abort":        func([]string) int { return die([]string{"ABRT"}) },
	"record":       record,
	"orphans":      orphans,
	"detach":       detach,
	"orphan-ppid":  orphanPpid,
	"orphan-child": orphanChild,
	"fds":          fds,
	"tty":          tty,
	"sleep":        func([]string) int { time.Sleep(time.Hour); return 0 },
	"ignore-term":  ignoreTerm,
}

func runHelper(name string, args []string) int {
	h, ok := helpers[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "e2e: no helper %q\n", name)
		return 99
	}
	return h(args)
}

func mustAtoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}

func writeFile(path, s string) {
	// Write then rename, so a test that sees the file sees all of it.
	if err := os.WriteFile(path+".tmp", []byte(s), 0o644); err != nil {
		panic(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		panic(err)
	}
}

// pid1Shim runs as PID 1 of the new namespaces: it mounts a /proc for the
// new PID namespace (in a private mount namespace, so the host's is
// untouched), optionally joins a cgroup, and becomes vigil.
func pid1Shim(args []string) int {
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "E2E_CGROUP_PROCS=") && !strings.HasPrefix(kv, "E2E_HIDE_ETC=") {
			env = append(env, kv)
		}
	}
	if os.Getenv("E2E_HIDE_ETC") != "" {
		// An image that holds only vigil: no /etc at all, so no
		// /etc/hosts, resolv.conf or nsswitch.conf. Private first, so the
		// host's /etc is untouched.
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			fmt.Fprintln(os.Stderr, "shim: make / private:", err)
			return 98
		}
		if err := unix.Mount("tmpfs", "/etc", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=64k,mode=0755"); err != nil {
			fmt.Fprintln(os.Stderr, "shim: hide /etc:", err)
			return 98
		}
	}
	err := nsinit.Exec(args, env, os.Getenv("E2E_CGROUP_PROCS"))
	fmt.Fprintln(os.Stderr, "shim:", err)
	return 98
}

// sigaction is the kernel's struct for rt_sigaction on amd64 and arm64.
type sigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

// dfl resets sig to its default action: the Go runtime handles SEGV and
// ABRT itself, and a program that crashes for real has no such handler.
func dfl(sig unix.Signal) {
	var sa sigaction // handler 0 is SIG_DFL
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&sa)), 0, 8, 0, 0); e != 0 {
		panic(e)
	}
}

// die kills the helper with a signal, the way abort(3) and raise(3) do.
func die(args []string) int {
	sig := unix.SignalNum("SIG" + args[0])
	if sig != unix.SIGKILL {
		dfl(sig)
	}
	unix.Tgkill(unix.Getpid(), unix.Gettid(), sig)
	time.Sleep(time.Second)
	return 97
}

// segv dereferences a bad pointer with the default SIGSEGV action: a real
// segmentation fault, not a kill(2).
func segv([]string) int {
	dfl(unix.SIGSEGV)
	*nilPointer() = 1
	return 97
}

//go:noinline
func nilPointer() *int { return nil }

// catchable lists the standard signals a helper can catch and vigil
// forwards.
func catchable() []os.Signal {
	var sigs []os.Signal
	for s := unix.Signal(1); s <= 31; s++ {
		if s != unix.SIGKILL && s != unix.SIGSTOP && s != unix.SIGCHLD && s != unix.SIGURG {
			sigs = append(sigs, s)
		}
	}
	return sigs
}

// record writes "ready" to FILE, then appends the name of the first signal
// it receives and exits 0. With "group FILE2" it first starts a second
// recorder in its own process group, as a grandchild of vigil.
func record(args []string) int {
	file := args[0]
	c := make(chan os.Signal, 1)
	signal.Notify(c, catchable()...)
	if len(args) == 3 && args[1] == "group" {
		cmd := exec.Command(os.Args[0], "record", args[2])
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			panic(err)
		}
		if !poll(time.Minute, func() bool {
			b, _ := os.ReadFile(args[2])
			return strings.Contains(string(b), "ready")
		}) {
			fmt.Fprintln(os.Stderr, "record: the second recorder did not say ready within a minute")
			return 97
		}
		defer cmd.Wait()
	}
	writeFile(file, "ready\n")
	sig := <-c
	writeFile(file, "ready\n"+unix.SignalName(sig.(unix.Signal))+"\n")
	return 0
}

// orphans double-forks N detached grandchildren (each in its own session)
// that exit at once, waits until vigil has reaped every one of them, writes
// "zombies=Z others=O" to REPORT and exits with CODE.
func orphans(args []string) int {
	n, report, code := mustAtoi(args[0]), args[1], mustAtoi(args[2])
	for i := 0; i < n; i++ {
		cmd := exec.Command(os.Args[0], "detach")
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "orphans:", err)
			return 96
		}
	}
	// Every grandchild is now an orphan of vigil. Wait until none is left
	// in the namespace, in any state but reaped.
	var zombies, others int
	poll(20*time.Second, func() bool { zombies, others = census(); return zombies == 0 && others == 0 })
	writeFile(report, fmt.Sprintf("zombies=%d others=%d", zombies, others))
	return code
}

// census counts zombies and live processes in the namespace other than
// PID 1 and the caller.
func census() (zombies, others int) {
	d, _ := os.ReadDir("/proc")
	for _, e := range d {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == 1 || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if f[0] == "Z" {
			zombies++
		} else {
			others++
		}
	}
	return
}

// detach starts a grandchild in a new session that exits 7, and returns
// without waiting for it: the grandchild becomes an orphan.
func detach([]string) int {
	cmd := exec.Command(os.Args[0], "exit", "7")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 95
	}
	return 0
}

// orphanPpid checks subreaping when vigil is not PID 1: it orphans a
// grandchild, which reports its new parent, and then checks that the
// grandchild's exit was reaped. It writes "ppid=P vigil=V reaped=true" to
// REPORT.
func orphanPpid(args []string) int {
	report := args[0]
	gc := report + ".gc"
	// The first orphan-child starts the second and exits at once.
	cmd := exec.Command(os.Args[0], "orphan-child", gc, "spawn")
	if err := cmd.Run(); err != nil {
		return 94
	}
	var ppid, pid int
	deadline := time.Now().Add(10 * time.Second)
	if !poll(10*time.Second, func() bool {
		b, _ := os.ReadFile(gc)
		_, err := fmt.Sscanf(string(b), "pid=%d ppid=%d", &pid, &ppid)
		return err == nil
	}) {
		return 93
	}
	reaped := poll(time.Until(deadline), func() bool {
		_, err := os.Stat("/proc/" + strconv.Itoa(pid))
		return os.IsNotExist(err)
	})
	writeFile(report, fmt.Sprintf("ppid=%d vigil=%d reaped=%v", ppid, os.Getppid(), reaped))
	return 0
}

// orphanChild with "spawn" starts itself again and exits at once; the copy
// waits until it has been reparented, reports its pid and new parent, and
// exits.
func orphanChild(args []string) int {
	file := args[0]
	if len(args) > 1 && args[1] == "spawn" {
		cmd := exec.Command(os.Args[0], "orphan-child", file, strconv.Itoa(os.Getpid()))
		if err := cmd.Start(); err != nil {
			return 92
		}
		return 0
	}
	parent := mustAtoi(args[1]) // it may have exited before we could ask
	poll(10*time.Second, func() bool { return os.Getppid() != parent })
	writeFile(file, fmt.Sprintf("pid=%d ppid=%d", os.Getpid(), os.Getppid()))
	return 0
}

// fds writes the descriptors open in this process to FILE, one per line.
// It reads /proc/self/fd with raw system calls: os.Open would add the
// runtime's epoll descriptor to what it counts.
func fds(args []string) int {
	dir, err := unix.Open("/proc/self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 91
	}
	buf := make([]byte, 8192)
	var names []string
	for {
		n, err := unix.Getdents(dir, buf)
		if err != nil || n == 0 {
			break
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
	var out []string
	for _, n := range names {
		if n == strconv.Itoa(dir) {
			continue
		}
		target, _ := os.Readlink("/proc/self/fd/" + n)
		out = append(out, n+" "+target)
	}
	unix.Close(dir)
	writeFile(args[0], strings.Join(out, "\n")+"\n")
	return 0
}

// tty writes "fg=F pgrp=P" for the terminal on stdin.
func tty(args []string) int {
	fg, err := unix.IoctlGetInt(0, unix.TIOCGPGRP)
	if err != nil {
		writeFile(args[0], "error="+err.Error())
		return 0
	}
	writeFile(args[0], fmt.Sprintf("fg=%d pgrp=%d", fg, unix.Getpgrp()))
	return 0
}

// ignoreTerm ignores SIGTERM, says "ready" in FILE and sleeps.
func ignoreTerm(args []string) int {
	signal.Ignore(unix.SIGTERM)
	writeFile(args[0], "ready")
	time.Sleep(time.Hour)
	return 0
}

func init() {
	helpers["stop-self"] = stopSelf
}

// stopSelf says "ready" in FILE, stops itself with SIGTSTP as Ctrl-Z would,
// and once continued writes "continued" and exits 0.
func stopSelf(args []string) int {
	writeFile(args[0], "ready")
	unix.Kill(os.Getpid(), unix.SIGTSTP)
	writeFile(args[0], "ready continued")
	return 0
}
