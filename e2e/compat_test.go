package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// What tini users type and set keeps working (issue 11, sections 4 and 6),
// with vigil as PID 1.

// TestCLITiniKillProcessGroupReachesGrandchild: docker run --init passes
// no flags, so tini's variable stands for -g.
func TestCLITiniKillProcessGroupReachesGrandchild(t *testing.T) {
	dir := t.TempDir()
	child, grandchild := filepath.Join(dir, "child"), filepath.Join(dir, "grandchild")
	r := start(t, opts{pid1: true, env: []string{"TINI_KILL_PROCESS_GROUP=1"}},
		append([]string{"--"}, helper("record", child, "group", grandchild)...)...)
	waitFile(t, child, "ready", 10*time.Second)
	r.signal(unix.SIGUSR1)
	r.expect(0)
	for _, f := range []string{child, grandchild} {
		if got := waitFile(t, f, "ready", time.Second); got != "ready\nSIGUSR1\n" {
			t.Errorf("%s received %q, want SIGUSR1\nstderr:\n%s", filepath.Base(f), got, r.stderr)
		}
	}
}

// TestCLITiniVerbosity: TINI_VERBOSITY=3 is tini's debug; vigil's own
// VIGIL_LOG_LEVEL wins over it.
func TestCLITiniVerbosity(t *testing.T) {
	status, stderr := vigil(t, opts{pid1: true, env: []string{"TINI_VERBOSITY=3"}}, append([]string{"--"}, helper("exit", "0")...)...)
	if status != 0 || !strings.Contains(stderr, "msg=spawned") {
		t.Errorf("TINI_VERBOSITY=3: status %d, want 0 and a debug line for the spawn\nstderr:\n%s", status, stderr)
	}
	status, stderr = vigil(t, opts{pid1: true, env: []string{"TINI_VERBOSITY=3", "VIGIL_LOG_LEVEL=error"}},
		append([]string{"--"}, helper("exit", "0")...)...)
	if status != 0 || stderr != "" {
		t.Errorf("TINI_VERBOSITY=3 VIGIL_LOG_LEVEL=error: status %d, want 0 and nothing logged\nstderr:\n%s", status, stderr)
	}
}

// TestCLIShortOptionsAsGetoptReadsThem: tini's spellings, clustered and
// with attached values, and the command's own flags left alone.
func TestCLIShortOptionsAsGetoptReadsThem(t *testing.T) {
	for _, flags := range [][]string{{"-ge3"}, {"-gwe", "3"}, {"-e3", "-sg"}, {"-vvve3"}} {
		status, stderr := vigil(t, opts{pid1: true}, append(flags, helper("exit", "3")...)...)
		if status != 0 {
			t.Errorf("vigil %s exit 3: status %d, want 0 (3 remapped)\nstderr:\n%s", strings.Join(flags, " "), status, stderr)
		}
	}
	// The command's own clusters are its own.
	file := filepath.Join(t.TempDir(), "args")
	status, stderr := vigil(t, opts{pid1: true}, append([]string{"-g"}, helper("args", file, "-sg", "--x", "-e143")...)...)
	if got := waitFile(t, file, "", time.Second); status != 0 || got != "-sg --x -e143" {
		t.Errorf("vigil -g args FILE -sg --x -e143: status %d, the command got %q\nstderr:\n%s", status, got, stderr)
	}
	// A cluster with a letter vigil does not know: 2, one line, no start.
	never := filepath.Join(t.TempDir(), "never")
	status, stderr = vigil(t, opts{pid1: true}, append([]string{"-gx"}, helper("started", never)...)...)
	if status != 2 || !strings.Contains(stderr, `"-gx"`) || strings.Count(stderr, "\n") != 1 {
		t.Errorf("vigil -gx: status %d, want 2 and one line naming -gx\nstderr:\n%s", status, stderr)
	}
	if _, err := os.Stat(never); !os.IsNotExist(err) {
		t.Errorf("the command started after a bad cluster")
	}
}

func init() {
	helpers["args"] = func(a []string) int {
		writeFile(a[0], strings.Join(a[1:], " "))
		return 0
	}
}

// TestCLIListsFromYAMLBlockScalars: Kubernetes writes `value: |` with a
// trailing newline, and people leave empty lines in it.
func TestCLIListsFromYAMLBlockScalars(t *testing.T) {
	dir := t.TempDir()
	log, ready := filepath.Join(dir, "hooks"), filepath.Join(dir, "ready")
	if err := os.WriteFile(ready, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := start(t, opts{pid1: true, env: []string{
		"E2E_HOOKLOG=" + log,
		"VIGIL_ON_EXIT=" + hookLine(helper("hooklog", "first")...) + "\n\n" + hookLine(helper("hooklog", "second")...) + "\n",
		"VIGIL_WAIT_FOR=file:" + ready + "\n",
		"VIGIL_STOP_ON=\n",
		"VIGIL_REMAP_EXIT=",
	}}, self, "exit", "4")
	r.expect(4)
	got := strings.Fields(waitFile(t, log, "second", time.Second))
	if want := []string{"first", "second"}; !slices.Equal(got, want) {
		t.Errorf("hooks ran as %v, want %v\nstderr:\n%s", got, want, r.stderr)
	}
}

// TestTiniVariablesReadAsTiniReadsThem: the values people write for tini,
// a Kubernetes `value: |` among them, run the command under vigil as under
// the real tini-static, and give the same verbosity where vigil shows it
// (vigil has no trace lines, so 4 and up look like 3). Both run not as
// PID 1 and without -s, so that tini's warning shows at 1.
func TestTiniVariablesReadAsTiniReadsThem(t *testing.T) {
	const tini = "/usr/bin/tini-static"
	if _, err := os.Stat(tini); err != nil {
		t.Skipf("%s is not installed (Debian package tini): %v", tini, err)
	}
	// A death by SEGV is a warning for vigil, the leftover it kills is
	// info, the spawn is debug. The leftover's output goes nowhere, so that
	// under tini, which leaves it running, it holds no pipe of the test.
	command := []string{"sh", "-c", "sleep 5 </dev/null >/dev/null 2>&1 & kill -SEGV $$"}
	tiniLevel := func(out string) int {
		level := 0
		for i, tag := range []string{"[WARN  tini", "[INFO  tini", "[DEBUG tini", "[TRACE tini"} {
			if strings.Contains(out, tag) {
				level = i + 1
			}
		}
		return level
	}
	vigilLevel := func(out string) int {
		level := 0
		for i, tag := range []string{"level=WARN", "level=INFO", "level=DEBUG"} {
			if strings.Contains(out, tag) {
				level = i + 1
			}
		}
		return level
	}
	for _, v := range []string{"0", "1", "2", "3", "4", "1\n", " 2", "3abc", "-1", "0x2", "", "\t3\n", "+2", "99"} {
		tc := exec.Command(tini, append([]string{"--"}, command...)...)
		tc.Env = append(os.Environ(), "TINI_VERBOSITY="+v)
		out, err := tc.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 128+int(unix.SIGSEGV) {
			t.Fatalf("tini with TINI_VERBOSITY=%q: %v, want the command's 139\n%s", v, err, out)
		}
		want := min(tiniLevel(string(out)), 3)
		status, stderr := vigil(t, opts{env: []string{"TINI_VERBOSITY=" + v}}, append([]string{"--"}, command...)...)
		if got := vigilLevel(stderr); status != 128+int(unix.SIGSEGV) || got != want {
			t.Errorf("TINI_VERBOSITY=%q: vigil exited %d with verbosity %d; tini ran the command (139) with verbosity %d\nvigil:\n%s\ntini:\n%s",
				v, status, got, want, stderr, out)
		}
	}
}

// TestTiniPresenceVariablesAreSetWhenEmpty: tini takes TINI_SUBREAPER and
// TINI_KILL_PROCESS_GROUP as set by their presence alone, empty included
// (docker run -e TINI_SUBREAPER=): tini-static's warning about not being
// a subreaper goes away, and vigil forwards to the whole group.
func TestTiniPresenceVariablesAreSetWhenEmpty(t *testing.T) {
	const tini = "/usr/bin/tini-static"
	if _, err := os.Stat(tini); err != nil {
		t.Skipf("%s is not installed (Debian package tini): %v", tini, err)
	}
	tc := exec.Command(tini, "--", "true")
	tc.Env = append(os.Environ(), "TINI_SUBREAPER=")
	if out, err := tc.CombinedOutput(); err != nil || strings.Contains(string(out), "subreaper") {
		t.Fatalf("tini-static with an empty TINI_SUBREAPER: %v, %q; want no subreaper warning", err, out)
	}
	dir := t.TempDir()
	child, grandchild := filepath.Join(dir, "child"), filepath.Join(dir, "grandchild")
	r := start(t, opts{env: []string{"TINI_KILL_PROCESS_GROUP="}},
		append([]string{"--"}, helper("record", child, "group", grandchild)...)...)
	waitFile(t, child, "ready", 10*time.Second)
	waitFile(t, grandchild, "ready", 10*time.Second)
	r.signal(unix.SIGUSR1)
	r.expect(0)
	for _, f := range []string{child, grandchild} {
		if got := waitFile(t, f, "ready", time.Second); got != "ready\nSIGUSR1\n" {
			t.Errorf("%s received %q, want SIGUSR1 (an empty TINI_KILL_PROCESS_GROUP is set, as in tini)\nstderr:\n%s",
				filepath.Base(f), got, r.stderr)
		}
	}
}
