package pid1

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Exit codes vigil uses for its own failures; the README's table lists them
// with the child's.
const (
	ExitUsage       = 2   // bad flag, value, user or missing command; nothing started
	ExitWaitTimeout = 124 // a --wait-for target was not ready within --wait-timeout
	ExitInternal    = 125 // vigil could not set itself up
	ExitCannotExec  = 126 // command found but could not be executed
	ExitNotFound    = 127 // command not found
)

// Error is a failure of vigil itself, with the exit code it maps to.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func fail(code int, format string, a ...any) *Error {
	return &Error{Code: code, Err: fmt.Errorf(format, a...)}
}

// proc is what spawn needs to start one process.
type proc struct {
	argv  []string
	env   []string
	files []uintptr // fds 0, 1, 2 of the new process
	attr  syscall.SysProcAttr
}

// spawn starts p and returns its pid. It resolves argv[0] on PATH the way a
// shell does and maps failures to 127 (not found) and 126 (cannot execute).
//
// It uses syscall.ForkExec rather than os.StartProcess or exec.Cmd: vigil
// never waits through those (the reaper owns wait4), and ForkExec does not
// open a pidfd per child that would then need closing.
func spawn(p *proc) (int, error) {
	name := p.argv[0]
	path, err := lookPath(name, p.env)
	if err != nil {
		return 0, err
	}
	attr := &syscall.ProcAttr{Env: p.env, Files: p.files, Sys: &p.attr}
	pid, err := syscall.ForkExec(path, p.argv, attr)
	if errors.Is(err, unix.ENOEXEC) {
		// A script without "#!": execvp(3), and so tini, dumb-init,
		// catatonit and env, hand it to the shell, and so does vigil.
		argv := append([]string{"/bin/sh", path}, p.argv[1:]...)
		if pid, serr := syscall.ForkExec("/bin/sh", argv, attr); serr == nil {
			return pid, nil
		}
	}
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			// The file was found, so ENOENT is a missing interpreter or loader.
			return 0, fail(ExitCannotExec, "%s: cannot execute: %w", name, err)
		}
		return 0, fail(ExitCannotExec, "%s: %w", name, err)
	}
	return pid, nil
}

// lookPath finds name the way execvp(3) does, on the PATH of the child's
// environment (the same as vigil's unless the environment changed it).
func lookPath(name string, env []string) (string, error) {
	if name == "" {
		return "", fail(ExitNotFound, "%q: not found", name)
	}
	if strings.Contains(name, "/") {
		return name, checkExecutable(name, name)
	}
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	var denied error
	for _, dir := range strings.Split(path, ":") {
		if dir == "" {
			dir = "."
		}
		cand := dir + "/" + name
		err := checkExecutable(name, cand)
		if err == nil {
			return cand, nil
		}
		var e *Error
		if denied == nil && errors.As(err, &e) && e.Code == ExitCannotExec {
			denied = err
		}
	}
	// As in a shell: a file that exists but cannot run beats "not found".
	if denied != nil {
		return "", denied
	}
	return "", fail(ExitNotFound, "%s: not found", name)
}

func checkExecutable(name, path string) error {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, unix.ENOTDIR):
		return fail(ExitNotFound, "%s: not found", name)
	case err != nil:
		return fail(ExitCannotExec, "%s: %w", name, unwrapPath(err))
	case fi.IsDir():
		return fail(ExitCannotExec, "%s: is a directory", name)
	}
	if err := unix.Access(path, unix.X_OK); err != nil {
		return fail(ExitCannotExec, "%s: permission denied", name)
	}
	return nil
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
