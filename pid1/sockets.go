package pid1

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"vigil/internal/setpid"
)

// listenFdsMax bounds LISTEN_FDS: each is placed in the child at every
// spawn, and a service manager passes a handful.
const listenFdsMax = 1024

// listenFds reads socket activation (sd_listen_fds(3)) from env for the
// process pid: how many descriptors were passed from 3. LISTEN_PID must
// name pid or be absent (podman may leave it out). why says, when the
// variables are there and n is 0, why they are not vigil's to pass on;
// other says it is because they name another process, which is no fault.
func listenFds(env []string, pid int) (n int, why string, other bool) {
	fds, ok := lookupEnv(env, "LISTEN_FDS")
	if !ok {
		return 0, "", false
	}
	if p, ok := lookupEnv(env, "LISTEN_PID"); ok && p != strconv.Itoa(pid) {
		return 0, fmt.Sprintf("LISTEN_PID=%s names another process", p), true
	}
	n, err := strconv.Atoi(fds)
	switch {
	case err != nil || n < 0:
		return 0, fmt.Sprintf("LISTEN_FDS=%q: not a count of descriptors", fds), false
	case n > listenFdsMax:
		return 0, fmt.Sprintf("LISTEN_FDS=%d: more than %d", n, listenFdsMax), false
	}
	return n, "", false
}

// lookupEnv is getenv over env: the first of duplicates wins, as in
// glibc's getenv and Go's os.Getenv.
func lookupEnv(env []string, key string) (string, bool) {
	for _, kv := range env {
		if val, ok := strings.CutPrefix(kv, key+"="); ok {
			return val, true
		}
	}
	return "", false
}

// setupSockets takes the descriptors socket activation passed to vigil
// and opens the --listen sockets after them: all are close-on-exec in
// vigil (no hook gets them) and are placed at 3.. in every run of the
// child, which learns its own pid as LISTEN_PID through vigil's internal
// mode (internal/setpid).
func (s *supervisor) setupSockets() error {
	n, why, other := listenFds(s.cfg.Env, os.Getpid())
	switch {
	case other:
		s.log.Debug("socket activation is not vigil's; passing the variables on as they are", "why", why)
	case why != "":
		s.log.Warn("socket activation ignored", "why", why)
	}
	for fd := 3; fd < 3+n; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			s.log.Warn("socket activation ignored: a descriptor it names is not open", "LISTEN_FDS", n, "fd", fd, "err", err)
			s.sockets, n = nil, 0
			break
		}
		s.sockets = append(s.sockets, uintptr(fd))
	}
	for _, fd := range s.sockets {
		unix.CloseOnExec(int(fd))
	}
	for _, l := range s.cfg.Listen {
		fd, err := l.open()
		if err != nil {
			return fail(ExitInternal, "--listen %s: %w", l, err)
		}
		s.sockets = append(s.sockets, uintptr(fd))
	}
	if len(s.sockets) == 0 {
		return nil
	}
	if len(s.cfg.Listen) > 0 {
		given, _ := lookupEnv(s.cfg.Env, "LISTEN_FDNAMES")
		s.fdNames = listenNames(given, n, s.cfg.Listen)
	}
	if r := s.cfg.ReadyFd; r >= 3 && r < 3+len(s.sockets) {
		return fail(ExitUsage, "--ready-fd %d: the sockets passed to the child are descriptors 3 to %d", r, 2+len(s.sockets))
	}
	var err error
	if s.self, err = selfExecutable(); err != nil {
		return fail(ExitInternal, "passing sockets: %w", err)
	}
	s.log.Debug("passing sockets on", "fds", len(s.sockets), "activated", n, "listen", len(s.cfg.Listen), "via", s.self)
	return nil
}

// selfExecutable is a path that execs vigil's own binary from the child:
// /proc/self/exe, or where there is no /proc (a runtime that mounts none)
// the path vigil was started by.
func selfExecutable() (string, error) {
	if unix.Access("/proc/self/exe", unix.X_OK) == nil {
		return "/proc/self/exe", nil
	}
	arg0 := os.Args[0]
	if strings.Contains(arg0, "/") {
		return filepath.Abs(arg0)
	}
	if path, err := lookPath(arg0, os.Environ(), nil); err == nil {
		return filepath.Abs(path)
	}
	return "", fmt.Errorf("cannot find vigil's own executable to set the child's LISTEN_PID: no /proc/self/exe, and argv[0] %q is not on PATH", arg0)
}

// socketEnv is the child's environment when sockets are passed: the
// internal mode's variable, and no LISTEN_PID (the internal mode sets it).
func (s *supervisor) socketEnv(env []string) []string {
	if len(s.sockets) == 0 {
		return env
	}
	env = withoutVar(env, "LISTEN_PID")
	if s.fdNames != "" {
		env = setEnv(env, "LISTEN_FDS", strconv.Itoa(len(s.sockets)))
		env = setEnv(env, "LISTEN_FDNAMES", s.fdNames)
	}
	return setEnv(env, setpid.Var, strconv.Itoa(os.Getpid()))
}
