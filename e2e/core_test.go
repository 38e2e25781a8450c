package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestExitStatusIsTheChilds(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"exit 0", helper("exit", "0"), 0},
		{"exit 3", helper("exit", "3"), 3},
		{"exit 255", helper("exit", "255"), 255},
		{"killed by TERM is 143", helper("die", "TERM"), 143},
		{"killed by KILL is 137", helper("die", "KILL"), 137},
		{"segfault is 139", helper("segv"), 139},
		{"abort is 134", helper("abort"), 134},
		{"-e 143 remaps TERM to 0", append([]string{"-e", "143", "--"}, helper("die", "TERM")...), 0},
		{"-e 143 leaves 3 alone", append([]string{"-e", "143", "--"}, helper("exit", "3")...), 3},
		{"VIGIL_REMAP_EXIT", helper("exit", "3"), 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if args[0] == self {
				args = append([]string{"--"}, args...)
			}
			start(t, opts{pid1: true}, args...).expect(tt.want)
		})
	}
	t.Run("VIGIL_REMAP_EXIT=3,143 remaps 3", func(t *testing.T) {
		start(t, opts{pid1: true, env: []string{"VIGIL_REMAP_EXIT=3,143"}}, helper("exit", "3")...).expect(0)
	})
}

func TestExecFailures(t *testing.T) {
	dir := t.TempDir()
	noexec := notExecutable(t, dir)
	tests := []struct {
		name    string
		args    []string
		status  int
		message string
	}{
		{"not on PATH is 127", []string{"--", "vigil-no-such-command"}, 127, "vigil: vigil-no-such-command: not found"},
		{"missing path is 127", []string{filepath.Join(dir, "missing")}, 127, "not found"},
		{"not executable is 126", []string{noexec}, 126, "permission denied"},
		{"directory is 126", []string{dir}, 126, "is a directory"},
		{"no command is 2", nil, 2, "no command"},
		{"empty command after -- is 2", []string{"--"}, 2, "no command"},
		{"unknown flag is 2", []string{"--no-such-flag", "true"}, 2, "no-such-flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, stderr := vigil(t, opts{pid1: os.Geteuid() == 0}, tt.args...)
			if status != tt.status {
				t.Errorf("status %d, want %d; stderr:\n%s", status, tt.status, stderr)
			}
			if !strings.Contains(stderr, tt.message) {
				t.Errorf("stderr %q does not say %q", stderr, tt.message)
			}
			if n := strings.Count(strings.TrimSpace(stderr), "\n"); n > 0 {
				t.Errorf("want a one-line error, got %d lines:\n%s", n+1, stderr)
			}
		})
	}
}

func TestOrphansAreReaped(t *testing.T) {
	report := filepath.Join(t.TempDir(), "report")
	r := start(t, opts{pid1: true}, helper("orphans", "500", report, "42")...)
	r.expect(42) // the main child's status, not a grandchild's 7
	got := waitFile(t, report, "zombies=", time.Second)
	if got != "zombies=0 others=0" {
		t.Errorf("just before the child exited: %s, want zombies=0 others=0", got)
	}
}

func TestSignalsReachChild(t *testing.T) {
	for _, sig := range []syscall.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT,
		unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH} {
		name := unix.SignalName(sig)
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "got")
			r := start(t, opts{pid1: true}, helper("record", file)...)
			waitFile(t, file, "ready", 10*time.Second)
			r.signal(sig)
			r.expect(0)
			if got := waitFile(t, file, "ready\n", time.Second); got != "ready\n"+name+"\n" {
				t.Errorf("child received %q, want %s", got, name)
			}
		})
	}
}

func TestGroupSignalReachesGrandchild(t *testing.T) {
	dir := t.TempDir()
	child, grandchild := filepath.Join(dir, "child"), filepath.Join(dir, "grandchild")
	r := start(t, opts{pid1: true}, append([]string{"-g", "--"}, helper("record", child, "group", grandchild)...)...)
	waitFile(t, child, "ready", 10*time.Second)
	r.signal(unix.SIGUSR1)
	r.expect(0)
	for _, f := range []string{child, grandchild} {
		if got := waitFile(t, f, "ready", time.Second); got != "ready\nSIGUSR1\n" {
			t.Errorf("%s received %q, want SIGUSR1", filepath.Base(f), got)
		}
	}
}

func TestRewriteTERMToQUIT(t *testing.T) {
	file := filepath.Join(t.TempDir(), "got")
	r := start(t, opts{pid1: true}, append([]string{"--rewrite", "TERM:QUIT", "--"}, helper("record", file)...)...)
	waitFile(t, file, "ready", 10*time.Second)
	r.signal(unix.SIGTERM)
	r.expect(0)
	if got := waitFile(t, file, "ready", time.Second); got != "ready\nSIGQUIT\n" {
		t.Errorf("child received %q, want SIGQUIT", got)
	}
}

func TestSubreaperAdoptsOrphans(t *testing.T) {
	report := filepath.Join(t.TempDir(), "report")
	r := start(t, opts{}, helper("orphan-ppid", report)...)
	r.expect(0)
	got := waitFile(t, report, "ppid=", time.Second)
	want := fmt.Sprintf("ppid=%d vigil=%d reaped=true", r.cmd.Process.Pid, r.cmd.Process.Pid)
	if got != want {
		t.Errorf("orphaned grandchild: %s, want %s", got, want)
	}
}

func TestNoDescriptorLeaksIntoChild(t *testing.T) {
	dir := t.TempDir()
	report := filepath.Join(dir, "fds")
	ready := filepath.Join(dir, "ready")
	if err := os.WriteFile(ready, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// Features that make vigil open descriptors of its own: an inotify
	// watch, a stderr pipe, a tombstone.
	start(t, opts{pid1: true}, append([]string{"--wait-for", "file:" + ready, "--capture-tail", "100",
		"--tombstone", filepath.Join(dir, "tomb"), "--"}, helper("fds", report)...)...).expect(0)
	got := waitFile(t, report, "0 ", time.Second)
	var fds []string
	for _, line := range strings.Split(strings.TrimSpace(got), "\n") {
		fds = append(fds, strings.Fields(line)[0])
	}
	if strings.Join(fds, ",") != "0,1,2" {
		t.Errorf("child has descriptors:\n%s\nwant only 0, 1 and 2", got)
	}
}

// openPTY returns the two ends of a new pseudo-terminal; whatever arrives on
// the master is drained so that writers never block.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, s := newPTY(t)
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := m.Read(buf); err != nil {
				return
			}
		}
	}()
	return m, s
}

// newPTY opens a new pseudo-terminal, closed when the test ends.
func newPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pts: %v", err)
	}
	t.Cleanup(func() { s.Close(); m.Close() })
	return m, s
}

func TestChildOwnsTheTerminal(t *testing.T) {
	for _, pid1 := range []bool{false, true} {
		t.Run(fmt.Sprintf("pid1=%v", pid1), func(t *testing.T) {
			_, pts := openPTY(t)
			report := filepath.Join(t.TempDir(), "tty")
			r := start(t, opts{pid1: pid1, tty: pts}, helper("tty", report)...)
			r.expect(0)
			fg, pgrp := ttyReport(t, report)
			if fg != pgrp {
				t.Errorf("terminal's foreground group is %d, the child's group is %d", fg, pgrp)
			}
			if !pid1 && pgrp == r.cmd.Process.Pid {
				t.Errorf("child is in vigil's process group %d, want its own", pgrp)
			}
		})
	}
}

// ttyReport reads what the tty helper found: the terminal's foreground
// group and its own.
func ttyReport(t *testing.T, report string) (fg, pgrp int) {
	t.Helper()
	got := waitFile(t, report, "", time.Second)
	if _, err := fmt.Sscanf(got, "fg=%d pgrp=%d", &fg, &pgrp); err != nil {
		t.Fatalf("child reported %q", got)
	}
	return fg, pgrp
}

// TestEveryRunOwnsTheTerminal: under --restart the second run gets the
// terminal too, not only the first (Ctrl-C must reach it).
func TestEveryRunOwnsTheTerminal(t *testing.T) {
	for _, pid1 := range []bool{false, true} {
		t.Run(fmt.Sprintf("pid1=%v", pid1), func(t *testing.T) {
			_, pts := openPTY(t)
			report := filepath.Join(t.TempDir(), "tty")
			r := start(t, opts{pid1: pid1, tty: pts}, append([]string{"--restart", "always", "--restart-max", "1",
				"--restart-delay", "10ms", "--"}, helper("tty", report)...)...)
			r.expect(0)
			if fg, pgrp := ttyReport(t, report); fg != pgrp {
				t.Errorf("the second run's group %d is not the terminal's foreground %d", pgrp, fg)
			}
		})
	}
}

// procState returns the state letter of pid from /proc (R, S, T, Z, ...).
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:])[0]
}

func TestJobControlFollowsTheChild(t *testing.T) {
	// vigil run from an interactive shell: when the child stops (Ctrl-Z),
	// vigil stops too so the shell sees its job stop; on fg (SIGCONT to
	// vigil) the child goes on.
	//
	// Now and then (about 1 run in 40 here, before and after the issue 19
	// work) the child's own SIGTSTP does not stop it: it goes straight on,
	// writes "continued" and exits 0. That run says nothing about vigil,
	// which had no stop to follow, so it is run again, a bounded number
	// of times; a vigil that does not follow a child that did stop still
	// fails at once.
	var r *run
	var file string
	for attempt := 1; ; attempt++ {
		_, pts := openPTY(t)
		file = filepath.Join(t.TempDir(), "state")
		r = start(t, opts{tty: pts}, helper("stop-self", file)...)
		waitFile(t, file, "ready", 10*time.Second)
		pid := r.cmd.Process.Pid
		if poll(10*time.Second, func() bool { return procState(pid) == "T" }) {
			break
		}
		status := r.wait(time.Second)
		if b, _ := os.ReadFile(file); string(b) == "ready continued" && status == 0 && attempt < 3 {
			t.Logf("attempt %d: the child's SIGTSTP did not stop it (it continued at once); again", attempt)
			continue
		}
		t.Fatalf("vigil did not stop after its child did (state %q, exit %d)\nstderr:\n%s", procState(pid), status, r.stderr)
	}
	r.signal(unix.SIGCONT)
	r.expect(0)
	waitFile(t, file, "continued", time.Second)
}
