package e2e

import (
	"os"
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
