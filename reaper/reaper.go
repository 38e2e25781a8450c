// Package reaper owns waiting: it makes vigil a child subreaper, collects
// every child that has ended, and decodes wait statuses. Drain is the only
// caller of wait4 in vigil; anything else that waits would steal statuses
// from it.
package reaper

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Exit is one reaped (or, with job control, stopped) process.
type Exit struct {
	Pid        int
	Code       int         // exit code, valid when Signal == 0
	Signal     unix.Signal // terminating (or stopping) signal, 0 if it exited
	CoreDumped bool
	Stopped    bool // the process stopped (WUNTRACED) and was not reaped
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
func Drain(dst []Exit, untraced bool) (out []Exit, alive bool, err error) {
	opts := unix.WNOHANG
	if untraced {
		opts |= unix.WUNTRACED
	}
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, opts, nil)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ECHILD):
			return dst, false, nil
		case err != nil:
			return dst, true, fmt.Errorf("wait4: %w", err)
		case pid == 0:
			return dst, true, nil
		}
		dst = append(dst, Decode(pid, ws))
	}
}
