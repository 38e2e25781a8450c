// Package reaper owns waiting: it makes vigil a child subreaper, collects
// every child that has ended, and decodes wait statuses. Drain is the only
// caller of wait4 in vigil; anything else that waits would steal statuses
// from it.
package reaper

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Exit is one reaped (or, with job control, stopped) process.
type Exit struct {
	Pid        int
	Code       int         // exit code, valid when Signal == 0
	Signal     unix.Signal // terminating (or stopping) signal, 0 if it exited
	CoreDumped bool
	Stopped    bool // the process stopped (WUNTRACED) and was not reaped
	// Comm is the process's name (/proc/PID/comm) when Drain was asked
	// for the names of processes killed by SIGKILL, and could read it.
	Comm string
}

// Status is the shell's convention: Code, or 128+Signal.
func (e Exit) Status() int {
	if e.Signal != 0 {
		return 128 + int(e.Signal)
	}
	return e.Code
}

// Decode turns a wait status into an Exit.
func Decode(pid int, ws unix.WaitStatus) Exit {
	switch {
	case ws.Stopped():
		return Exit{Pid: pid, Signal: ws.StopSignal(), Stopped: true}
	case ws.Signaled():
		return Exit{Pid: pid, Signal: ws.Signal(), CoreDumped: ws.CoreDump()}
	default:
		return Exit{Pid: pid, Code: ws.ExitStatus()}
	}
}

// SetSubreaper asks the kernel to reparent orphaned descendants to this
// process instead of to PID 1 of the namespace.
func SetSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_CHILD_SUBREAPER): %w", err)
	}
	return nil
}

// Drain reaps every child that has ended, appending each to dst, and returns
// dst. It loops until wait4 says nothing more is ready, because SIGCHLDs
// coalesce: one wake-up may stand for thousands of exits. alive reports
// whether children remain (false once wait4 returns ECHILD). With untraced,
// stopped children are reported too (Exit.Stopped) for job control.
//
// With names, each ended child is looked at first without being reaped
// (waitid with WNOWAIT), and the name of one killed by SIGKILL is read
// while it is a zombie, whose /proc/PID/comm is still there: after the
// reap it is gone. That is one more system call per exit, so the caller
// asks for it only when an OOM kill is waiting for its victim.
func Drain(dst []Exit, untraced, names bool) (out []Exit, alive bool, err error) {
	opts := unix.WNOHANG
	if untraced {
		opts |= unix.WUNTRACED
	}
	for {
		pid, comm := -1, ""
		if names {
			var killed bool
			pid, killed, err = peek(untraced)
			switch {
			case errors.Is(err, unix.ECHILD):
				return dst, false, nil
			case err != nil:
				return dst, true, err
			case pid == 0:
				return dst, true, nil
			case killed:
				comm = readComm(pid)
			}
		}
		var ws unix.WaitStatus
		got, err := unix.Wait4(pid, &ws, opts, nil)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ECHILD):
			return dst, false, nil
		case err != nil:
			return dst, true, fmt.Errorf("wait4: %w", err)
		case got == 0:
			return dst, true, nil
		}
		e := Decode(got, ws)
		e.Comm = comm
		dst = append(dst, e)
	}
}

// childInfo is the start of the kernel's siginfo_t for SIGCHLD on 64-bit
// Linux: si_signo, si_errno, si_code, padding, then si_pid, si_uid,
// si_status.
type childInfo struct {
	signo, errno, code, _ int32
	pid                   int32
	uid                   uint32
	status                int32
}

// peek returns the pid of a child that has ended (or stopped, with
// untraced) without reaping it, 0 if none has, and whether it was killed
// by SIGKILL.
func peek(untraced bool) (pid int, killed bool, err error) {
	opts := unix.WEXITED | unix.WNOHANG | unix.WNOWAIT
	if untraced {
		opts |= unix.WSTOPPED
	}
	for {
		var si unix.Siginfo
		err = unix.Waitid(unix.P_ALL, 0, &si, opts, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			if errors.Is(err, unix.ECHILD) {
				return 0, false, err
			}
			return 0, false, fmt.Errorf("waitid: %w", err)
		}
		ci := (*childInfo)(unsafe.Pointer(&si))
		const cldKilled = 2 // CLD_KILLED
		return int(ci.pid), ci.code == cldKilled && unix.Signal(ci.status) == unix.SIGKILL, nil
	}
}

// readComm reads /proc/PID/comm, "" if it cannot.
func readComm(pid int) string {
	var b [32]byte
	fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/comm", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return ""
	}
	n, _ := unix.Read(fd, b[:])
	unix.Close(fd)
	if n <= 0 {
		return ""
	}
	return strings.TrimSuffix(string(b[:n]), "\n")
}
