// Command goref is the smallest correct init written in Go, the benchmark's
// reference for what the Go runtime costs before vigil adds anything. It
// catches signals the way vigil does (internal/intake): the ones the
// runtime would die of in a package init, the other catchable ones with
// signal.Notify on a goroutine started there, waited for before the child
// exists (a PID 1 must catch them all: the kernel drops signals it has no
// handler for, and for one that is not Notify'd the Go runtime takes the
// default action itself). It forwards each to its child, reaps with
// wait4(-1) on SIGCHLD, and exits with the child's code or 128+N. No CLI
// library, no logging, no tuning of the runtime.
//
//	goref [--] CMD [ARGS...]
package main

import (
	"os"
	"os/signal"
	"strings"
	"syscall"
)

var (
	// sigs carries every forwarded signal; chld has a capacity of one: a
	// full channel means a drain is already due, and the drain reaps all.
	sigs = make(chan os.Signal, 64)
	chld = make(chan os.Signal, 1)
	// caught is closed once every catchable signal is caught.
	caught = make(chan struct{})
)

// deadly are the signals the Go runtime ends the process for when they
// arrive uncaught: the stop signals, and those it takes for a crash.
var deadly = []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP,
	syscall.SIGQUIT, syscall.SIGILL, syscall.SIGTRAP, syscall.SIGABRT, syscall.SIGBUS,
	syscall.SIGFPE, syscall.SIGSEGV, syscall.SIGSTKFLT, syscall.SIGSYS}

// init catches the deadly signals before main runs. Each Notify'd signal
// is a round trip to the runtime's signal-mask thread, so the others,
// which the runtime drops unseen until then, are caught on a goroutine
// while main starts.
func init() {
	signal.Notify(sigs, deadly...)
	go func() {
		defer close(caught)
		signal.Notify(chld, syscall.SIGCHLD)
		var rest []os.Signal
		for s := syscall.Signal(1); s <= 64; s++ {
			switch s {
			// KILL and STOP cannot be caught; CHLD is ours; URG is the
			// Go runtime's preemption signal, PROF its profiler's, and
			// 32 to 34 it keeps for the C library: none is the child's.
			case syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGCHLD, syscall.SIGURG, syscall.SIGPROF, 32, 33, 34:
				continue
			}
			if !isDeadly(s) {
				rest = append(rest, s)
			}
		}
		signal.Notify(sigs, rest...)
	}()
}

func isDeadly(s syscall.Signal) bool {
	for _, d := range deadly {
		if d == s {
			return true
		}
	}
	return false
}

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		os.Stderr.WriteString("usage: goref [--] CMD [ARGS...]\n")
		os.Exit(2)
	}
	if os.Getpid() != 1 {
		// Orphans of the child come to us, as they would to PID 1.
		syscall.RawSyscall(syscall.SYS_PRCTL, 36 /* PR_SET_CHILD_SUBREAPER */, 1, 0)
	}
	path, code := lookPath(args[0])
	if code != 0 {
		os.Stderr.WriteString("goref: " + args[0] + ": cannot run\n")
		os.Exit(code)
	}
	<-caught // nothing for the child may arrive unhandled
	pid, err := syscall.ForkExec(path, args, &syscall.ProcAttr{Env: os.Environ(), Files: []uintptr{0, 1, 2}})
	if err != nil {
		os.Stderr.WriteString("goref: " + args[0] + ": " + err.Error() + "\n")
		os.Exit(126)
	}
	for {
		select {
		case s := <-sigs:
			syscall.Kill(pid, s.(syscall.Signal))
		case <-chld:
			for {
				var ws syscall.WaitStatus
				p, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
				if err == syscall.EINTR {
					continue
				}
				if p <= 0 {
					break
				}
				if p == pid {
					if ws.Signaled() {
						os.Exit(128 + int(ws.Signal()))
					}
					os.Exit(ws.ExitStatus())
				}
			}
		}
	}
}

// lookPath finds name on PATH as execvp(3) does; 127 if it is nowhere.
func lookPath(name string) (string, int) {
	if strings.Contains(name, "/") {
		return name, 0
	}
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/bin:/usr/bin:/bin"
	}
	for _, dir := range strings.Split(path, ":") {
		if dir == "" {
			dir = "."
		}
		var st syscall.Stat_t
		if syscall.Stat(dir+"/"+name, &st) == nil && st.Mode&syscall.S_IFMT == syscall.S_IFREG && st.Mode&0o111 != 0 {
			return dir + "/" + name, 0
		}
	}
	return "", 127
}
