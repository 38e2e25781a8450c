// Package setpid is vigil's one internal mode: the step between fork and
// exec that Go cannot run. A socket-activated service accepts its
// descriptors only if LISTEN_PID is its own pid (sd_listen_fds(3)), and the
// child's pid is not known when vigil builds its environment. So, only
// when it passes sockets, vigil starts its own executable with Var set;
// that process sets LISTEN_PID to its pid, removes Var and execs the
// command in place, keeping pid, descriptors, process group, credentials
// and terminal. One exec more, and only then.
//
// It runs in this package's init, before vigil/internal/intake catches any
// signal (intake imports this package for that order), so nothing of
// vigil's is set up in the process it replaces. A signal in that window
// meets the Go runtime's defaults: TERM, INT and HUP kill it, as they would
// kill a command that has not installed its handlers yet.
package setpid

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Var marks the internal mode. Its value is the pid of the vigil that
// started it; argv is then ["vigil", PATH, ARGV0, ARGS...], PATH the
// command as vigil resolved it.
const Var = "VIGIL_INTERNAL_SETPID"

// exitCannotExec is vigil's status for a command that cannot be executed.
const exitCannotExec = 126

func init() {
	v, ok := syscall.Getenv(Var)
	if !ok {
		return
	}
	os.Exit(run(v, os.Args, os.Environ()))
}

// run is the internal mode; it returns only when the command could not be
// executed.
func run(parent string, args, environ []string) int {
	if parent != strconv.Itoa(os.Getppid()) || len(args) < 3 {
		// Not started by a vigil that is still there: it is gone, and so
		// is whatever would have supervised the command.
		os.Stderr.WriteString("vigil: " + Var + " is vigil's own; not starting anything\n")
		return exitCannotExec
	}
	env := Env(environ, os.Getpid())
	path, argv := args[1], args[2:]
	err := syscall.Exec(path, argv, env)
	if errors.Is(err, syscall.ENOEXEC) {
		// A script without "#!", as vigil's spawn hands it to the shell.
		err = syscall.Exec("/bin/sh", append([]string{"/bin/sh", path}, argv[1:]...), env)
	}
	// vigil found the file before it started this process, so ENOENT is
	// a missing interpreter or loader, as in vigil's spawn.
	os.Stderr.WriteString("vigil: " + argv[0] + ": cannot execute: " + err.Error() + "\n")
	return exitCannotExec
}

// Env is environ without Var, with LISTEN_PID set to pid.
func Env(environ []string, pid int) []string {
	out := make([]string, 0, len(environ)+1)
	for _, kv := range environ {
		if strings.HasPrefix(kv, Var+"=") || strings.HasPrefix(kv, "LISTEN_PID=") {
			continue
		}
		out = append(out, kv)
	}
	return append(out, "LISTEN_PID="+strconv.Itoa(pid))
}
