package pid1

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"vigil/internal/intake"
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
	// via, when set, is vigil's own executable: it runs first, in its
	// internal mode (internal/setpid), and execs the command found.
	via string
}

// spawn starts p and returns its pid. It resolves argv[0] on PATH the way a
// shell does and maps failures to 127 (not found) and 126 (cannot execute).
//
// It uses syscall.ForkExec rather than os.StartProcess or exec.Cmd: vigil
// never waits through those (the reaper owns wait4), and ForkExec does not
// open a pidfd per child that would then need closing.
func spawn(p *proc) (int, error) {
	name := p.argv[0]
	var as *identity // nil: the child runs as vigil
	if p.attr.Credential != nil {
		cur, err := currentIdentity()
		if err != nil {
			return 0, fail(ExitInternal, "--user: %w", err)
		}
		if p.attr.Credential, err = childCredential(p.attr.Credential, cur); err != nil {
			return 0, fail(ExitInternal, "%w", err)
		}
		if c := p.attr.Credential; c != nil {
			as = &identity{uid: c.Uid, gid: c.Gid, groups: c.Groups}
			if c.NoSetGroups {
				as.groups = cur.groups
			}
		}
	}
	path, err := lookPath(name, p.env, as)
	if err != nil {
		return 0, err
	}
	attr := &syscall.ProcAttr{Env: p.env, Files: p.files, Sys: &p.attr}
	// The child inherits the forking thread's signal mask (see ForkMask).
	undo := intake.ForkMask()
	defer undo()
	if p.via != "" {
		// The internal mode handles a script without "#!" itself.
		pid, err := forkExec(p.via, append([]string{"vigil", path}, p.argv...), attr)
		if err != nil {
			return 0, fail(ExitCannotExec, "%s: cannot start vigil's own %s to pass the sockets on: %w", name, p.via, err)
		}
		return pid, nil
	}
	pid, err := forkExec(path, p.argv, attr)
	if errors.Is(err, unix.ENOEXEC) {
		// A script without "#!": execvp(3), and so tini, dumb-init,
		// catatonit and env, hand it to the shell, and so does vigil.
		argv := append([]string{"/bin/sh", path}, p.argv[1:]...)
		if pid, serr := forkExec("/bin/sh", argv, attr); serr == nil {
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

// forkExec is syscall.ForkExec, tried again for a moment (at most 20 times
// 5 ms) when the descriptor table is full: at a low RLIMIT_NOFILE, what
// vigil holds open for an instant elsewhere (a record's directory being
// synced, a watcher closing its descriptors) can take the last two the
// fork's error pipe needs, and the child would not start (exit 126) for a
// descriptor free a millisecond later (TestLowDescriptorLimit: 13 runs in
// 200 on 51ed654).
func forkExec(path string, argv []string, attr *syscall.ProcAttr) (int, error) {
	for try := 1; ; try++ {
		pid, err := syscall.ForkExec(path, argv, attr)
		if try == 20 || !errors.Is(err, unix.EMFILE) && !errors.Is(err, unix.ENFILE) {
			return pid, err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lookPath finds name the way execvp(3) does, on the PATH of the child's
// environment (the same as vigil's unless the environment changed it), and
// with the permissions of the user the child will run as (nil: vigil's):
// a file that user cannot reach or execute is skipped, as runc, gosu and
// su-exec skip it by looking the command up after changing user.
func lookPath(name string, env []string, as *identity) (string, error) {
	if name == "" {
		return "", fail(ExitNotFound, "%q: not found", name)
	}
	if strings.Contains(name, "/") {
		return name, checkExecutable(name, name, as)
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
		err := checkExecutable(name, cand, as)
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

// checkExecutable says whether path can be executed: by vigil itself when
// as is nil (the kernel's access(2) decides), or else by the user as, for
// whom every directory on the way must be searchable too.
func checkExecutable(name, path string, as *identity) error {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, unix.ENOTDIR):
		return fail(ExitNotFound, "%s: not found", name)
	case err != nil:
		return fail(ExitCannotExec, "%s: %w", name, unwrapPath(err))
	case fi.IsDir():
		return fail(ExitCannotExec, "%s: is a directory", name)
	}
	if as == nil {
		if err := unix.Access(path, unix.X_OK); err != nil {
			return fail(ExitCannotExec, "%s: permission denied", name)
		}
		return nil
	}
	dirs := parents(path)
	// The kernel also walks the directories of a symbolic link's target.
	if real, err := filepath.EvalSymlinks(path); err == nil && real != path {
		dirs = append(dirs, parents(real)...)
	}
	for _, dir := range dirs {
		var st unix.Stat_t
		if err := unix.Stat(dir, &st); err != nil {
			return fail(ExitCannotExec, "%s: %s: %w", name, dir, err)
		}
		if !mayExec(st.Mode, st.Uid, st.Gid, *as) {
			return fail(ExitCannotExec, "%s: permission denied: uid %d cannot search %s", name, as.uid, dir)
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fail(ExitCannotExec, "%s: %w", name, err)
	}
	if !mayExec(st.Mode, st.Uid, st.Gid, *as) {
		return fail(ExitCannotExec, "%s: permission denied for uid %d", name, as.uid)
	}
	return nil
}

// parents lists the directories a process walks through to reach path:
// "/", "/usr", "/usr/bin" for /usr/bin/env; ".", "bin" for bin/x.
func parents(path string) []string {
	var dirs []string
	if strings.HasPrefix(path, "/") {
		dirs = append(dirs, "/")
	} else {
		dirs = append(dirs, ".")
	}
	for i := 1; i < len(path); i++ {
		if path[i] == '/' && path[i-1] != '/' {
			dirs = append(dirs, path[:i])
		}
	}
	return dirs
}

// mayExec decides, as the kernel's permission check does without ACLs,
// whether a process running as id may execute a file, or search a
// directory, whose stat(2) gave mode, uid and gid. Root may search any
// directory and execute any file with at least one x bit. Others get the
// owner's bits if they own it, else the group's bits if the file's group
// is theirs, else the others' bits: an owner denied by the owner's bits is
// denied even when the group or others may.
func mayExec(mode, uid, gid uint32, id identity) bool {
	if id.uid == 0 {
		return mode&unix.S_IFMT == unix.S_IFDIR || mode&0o111 != 0
	}
	switch {
	case uid == id.uid:
		return mode&0o100 != 0
	case gid == id.gid || slices.Contains(id.groups, gid):
		return mode&0o010 != 0
	}
	return mode&0o001 != 0
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
