package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestVigilIsNeverTheOOMVictim runs vigil as PID 1 in a 32 MiB memory
// cgroup whose child starts twelve small workers, each touching 1.5 MiB of
// anonymous memory (about 4 MB resident with the Go runtime's own; the
// issue saw vigil killed beside workers of 3.7 MB): together they
// do not fit, and the kernel's OOM killer must pick a process. It picks
// the one with the largest resident set, file-backed pages included; an
// init heavier than the workers it supervises is that process, and when
// PID 1 of a container dies the container dies with it: no record, no
// hook, no class. Five runs out of five, a worker must be killed, vigil
// must survive and exit with its child's status.
func TestVigilIsNeverTheOOMVictim(t *testing.T) {
	procs := memoryCgroup(t, 32<<20)
	dir := filepath.Dir(procs)
	t.Logf("memory cgroup: %s", dir)
	// A worker above maxWorkerKB would no longer be small: the issue saw
	// vigil (5.2 MB) killed beside workers of 3.7 MB. The bound stays below
	// the 5.1 MB vigil had before it dropped its start-up pages, so the
	// test still tells a light vigil from a heavy one; the workers (Go test
	// binaries) vary between 3.9 and 4.7 MB from run to run.
	const workers, sizeKB, maxWorkerKB = 12, 1536, 5000
	// The child is the test's scaffolding, a Go test binary: now and then
	// the kernel picks it rather than a worker. vigil survived such a run
	// (it handed back the child's SIGKILL), but it says nothing about the
	// workers, so it is run again, a bounded number of times. Lowering the
	// child's oom_score_adj would settle it, but takes a capability that
	// this machine's root, like many containers', does not have.
	inconclusive := 0
	for run := 1; run <= 5; run++ {
		report := filepath.Join(t.TempDir(), "crowd.json")
		before := oomKills(t, dir)
		r := start(t, opts{pid1: true, env: []string{"E2E_CGROUP_PROCS=" + procs}},
			"--", self, "oom-crowd", strconv.Itoa(workers), strconv.Itoa(sizeKB), report)
		select {
		case <-r.done:
		case <-time.After(60 * time.Second):
			r.cmd.Process.Kill()
			<-r.done
			t.Fatalf("run %d of 5: vigil did not exit within 60s\nstderr:\n%s", run, clipLog(r.stderr.String()))
		}
		kills := oomKills(t, dir) - before
		ws := r.cmd.ProcessState.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			t.Fatalf("run %d of 5: vigil died of %s; the cgroup counted %d OOM kills in this run: "+
				"vigil was the OOM victim, not one of the %d workers\nstderr:\n%s",
				run, unix.SignalName(ws.Signal()), kills, workers, clipLog(r.stderr.String()))
		}
		b, err := os.ReadFile(report)
		if err != nil && ws.ExitStatus() == 128+int(unix.SIGKILL) && kills > 0 && inconclusive < 5 {
			inconclusive++
			t.Logf("run %d of 5: the kernel picked the child, not vigil nor a worker; vigil survived and exited 137; again", run)
			run--
			continue
		}
		if err != nil {
			t.Fatalf("run %d of 5: vigil exited %d and the child wrote no report (%v): the child itself was killed, "+
				"the cgroup counted %d OOM kills\nstderr:\n%s", run, ws.ExitStatus(), err, kills, clipLog(r.stderr.String()))
		}
		var rep crowdReport
		if err := json.Unmarshal(b, &rep); err != nil {
			t.Fatalf("run %d of 5: report %q: %v", run, b, err)
		}
		t.Logf("run %d of 5: vigil had %d kB resident; %d of %d workers touched their %d kB (largest %d kB resident; the child %d kB), %d killed by SIGKILL; the cgroup counted %d OOM kills",
			run, rep.InitRSSkB, rep.Ready, rep.Workers, sizeKB, rep.MaxRSSkB, rep.CrowdRSSkB, rep.Killed, kills)
		switch {
		case rep.Err != "":
			t.Fatalf("run %d of 5: the child failed: %s\nstderr:\n%s", run, rep.Err, clipLog(r.stderr.String()))
		case ws.ExitStatus() != crowdStatus:
			t.Fatalf("run %d of 5: vigil exited %d, want the child's %d\nstderr:\n%s", run, ws.ExitStatus(), crowdStatus, clipLog(r.stderr.String()))
		case rep.Killed == 0 || kills == 0:
			t.Fatalf("run %d of 5: no worker was OOM-killed (%d killed, %d OOM kills counted): the workers fit in the cgroup, so the test proves nothing",
				run, rep.Killed, kills)
		case rep.Other != 0:
			t.Fatalf("run %d of 5: %d workers ended otherwise than by exiting or SIGKILL\nstderr:\n%s", run, rep.Other, clipLog(r.stderr.String()))
		case rep.MaxRSSkB > maxWorkerKB:
			t.Fatalf("run %d of 5: a worker had %d kB resident, want at most %d: larger workers would make the test prove nothing",
				run, rep.MaxRSSkB, maxWorkerKB)
		}
	}
}

// oomKills reads the count of OOM kills in the memory cgroup dir: the
// "oom_kill N" line of memory.oom_control (v1) or memory.events (v2).
func oomKills(t *testing.T, dir string) int {
	t.Helper()
	for _, name := range []string{"memory.oom_control", "memory.events"} {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "oom_kill "); ok {
				n, err := strconv.Atoi(v)
				if err != nil {
					t.Fatalf("%s: %q", name, sc.Text())
				}
				return n
			}
		}
	}
	t.Fatalf("no oom_kill count in %s (memory.oom_control or memory.events): the kernel is too old to count OOM kills", dir)
	return 0
}
