package pid1

import (
	"testing"

	"golang.org/x/sys/unix"

	"vigil/reaper"
)

func TestClassify(t *testing.T) {
	exited := func(code int) reaper.Exit { return reaper.Exit{Pid: 2, Code: code} }
	killed := func(sig unix.Signal) reaper.Exit { return reaper.Exit{Pid: 2, Signal: sig} }
	tests := []struct {
		name    string
		exit    reaper.Exit
		cause   Cause
		oomRose bool
		want    Class
	}{
		{"exit 0 is success", exited(0), CauseNone, false, Success},
		{"exit 1 is failure", exited(1), CauseNone, false, Failure},
		{"exit 255 is failure", exited(255), CauseNone, false, Failure},
		{"exit 0 with OOM elsewhere is still success", exited(0), CauseNone, true, Success},
		{"TERM is signal", killed(unix.SIGTERM), CauseNone, false, Signal},
		{"INT is signal", killed(unix.SIGINT), CauseNone, false, Signal},
		{"HUP is signal", killed(unix.SIGHUP), CauseNone, false, Signal},
		{"USR1 is signal", killed(unix.SIGUSR1), CauseNone, false, Signal},
		{"SEGV is fault", killed(unix.SIGSEGV), CauseNone, false, Fault},
		{"SEGV with core is fault", reaper.Exit{Pid: 2, Signal: unix.SIGSEGV, CoreDumped: true}, CauseNone, false, Fault},
		{"BUS is fault", killed(unix.SIGBUS), CauseNone, false, Fault},
		{"ILL is fault", killed(unix.SIGILL), CauseNone, false, Fault},
		{"FPE is fault", killed(unix.SIGFPE), CauseNone, false, Fault},
		{"ABRT is fault", killed(unix.SIGABRT), CauseNone, false, Fault},
		{"SYS is fault", killed(unix.SIGSYS), CauseNone, false, Fault},
		{"TRAP is fault", killed(unix.SIGTRAP), CauseNone, false, Fault},
		{"SEGV with OOM is still fault", killed(unix.SIGSEGV), CauseNone, true, Fault},
		{"KILL is kill", killed(unix.SIGKILL), CauseNone, false, Kill},
		{"KILL with OOM is oom", killed(unix.SIGKILL), CauseNone, true, OOM},
		{"timeout then TERM", killed(unix.SIGTERM), CauseTimeout, false, Timeout},
		{"timeout then KILL", killed(unix.SIGKILL), CauseTimeout, true, Timeout},
		{"timeout then exit 0", exited(0), CauseTimeout, false, Timeout},
		{"stop-on then exit 0", exited(0), CauseStopOn, false, Stopped},
		{"stop-on then KILL", killed(unix.SIGKILL), CauseStopOn, false, Stopped},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.exit, tt.cause, tt.oomRose); got != tt.want {
				t.Errorf("Classify(%+v, %v, %v) = %s, want %s", tt.exit, tt.cause, tt.oomRose, got, tt.want)
			}
		})
	}
}

func TestHonouredStop(t *testing.T) {
	var term, termQuit sigSet
	term.add(unix.SIGTERM)
	termQuit.add(unix.SIGTERM)
	termQuit.add(unix.SIGQUIT)
	tests := []struct {
		name      string
		exit      reaper.Exit
		forwarded sigSet
		want      bool
	}{
		{"died of the TERM forwarded", reaper.Exit{Signal: unix.SIGTERM}, term, true},
		{"exited 143 for it (a shell, the JVM)", reaper.Exit{Code: 143}, term, true},
		{"died of the QUIT a rewrite made of it", reaper.Exit{Signal: unix.SIGQUIT}, termQuit, true},
		{"exited 131 for the QUIT", reaper.Exit{Code: 131}, termQuit, true},
		{"died of another signal", reaper.Exit{Signal: unix.SIGINT}, term, false},
		{"exited 130, not for TERM", reaper.Exit{Code: 130}, term, false},
		{"exited 0", reaper.Exit{Code: 0}, term, false},
		{"failed with 1", reaper.Exit{Code: 1}, term, false},
		{"segfaulted", reaper.Exit{Signal: unix.SIGSEGV}, term, false},
		{"KILL is never honouring a stop", reaper.Exit{Signal: unix.SIGKILL}, term, false},
		{"nothing forwarded", reaper.Exit{Signal: unix.SIGTERM}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := honouredStop(tt.exit, tt.forwarded); got != tt.want {
				t.Errorf("honouredStop(%+v, %b) = %v, want %v", tt.exit, tt.forwarded, got, tt.want)
			}
		})
	}
}
