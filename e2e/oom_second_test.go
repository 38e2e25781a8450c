package e2e

import (
	"cmp"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// secondVictimFill is the child of the second-victim measurement: a
// busybox shell whose one variable doubles until the memory cgroup is
// full (E2E_SECOND_VICTIM_FILL replaces it). The kernel kills it; the
// question is what it kills next.
var secondVictimFill = cmp.Or(os.Getenv("E2E_SECOND_VICTIM_FILL"), "x=0123456789abcdef; while :; do x=$x$x; done")

// secondVictimGated is the same, once the file /shared/go exists: the
// test reads the init's pid first. The wait uses builtins only, so the
// shell is the container's one process beside the init.
var secondVictimGated = "while [ ! -e /shared/go ]; do :; done; " + secondVictimFill

// TestOOMSecondVictim measures how often the kernel's OOM killer, after it
// has killed the main child, kills the init too: vigil beside tini, as
// PID 1 in a 32 MiB memory cgroup of the test's own and in a 32 MiB Docker
// container. It is a measurement, run on demand with E2E_SECOND_VICTIM=N
// (N runs per init and case, 20 or more for a figure worth quoting); it
// fails when vigil was the second victim more often than tini. The
// victims are read from the kernel's log, which names each one with its
// memory cgroup.
func TestOOMSecondVictim(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("E2E_SECOND_VICTIM"))
	if n <= 0 {
		t.Skip("a measurement: set E2E_SECOND_VICTIM=N to run it N times per init")
	}
	if _, err := kernelLog(); err != nil {
		t.Skipf("the kernel's log names the OOM victims and cannot be read here: %v", err)
	}
	t.Run("pid1 in a memory cgroup", func(t *testing.T) {
		needRoot(t)
		busybox := findTool("busybox", "/bin/busybox")
		tini := "/usr/bin/tini-static"
		if staticBinary(tini) != "" {
			t.Skip("tini-static is not installed (Debian package tini)")
		}
		counts := map[string]int{}
		for _, init := range []string{"vigil", "tini"} {
			for i := range n {
				killed, kills, recorded := secondVictimRun(t, init, busybox, tini)
				if killed {
					counts[init]++
				}
				t.Logf("%s run %d: %d OOM kills, the init killed: %v, its tombstone says exited: %v", init, i+1, kills, killed, recorded)
			}
		}
		secondVictimVerdict(t, "as PID 1 in a 32 MiB memory cgroup", n, counts)
	})
	t.Run("docker", func(t *testing.T) {
		e := startDocker(t)
		e.buildImages(t)
		limits := strings.Fields(e.must(t, time.Minute, "info", "--format", "{{.MemoryLimit}} {{.SwapLimit}}"))
		if len(limits) != 2 || limits[0] != "true" {
			t.Skipf("dockerd reports no memory limit support (%v)", limits)
		}
		opts := []string{"--memory", "32m"}
		if limits[1] == "true" {
			opts = append(opts, "--memory-swap", "32m")
		}
		counts := map[string]int{}
		for _, ic := range e.inits {
			for i := range n {
				// The kernel's log allows 10 OOM reports in 5 s (then
				// "callbacks suppressed"), and it is the only witness of
				// which process died in a container: runs are spaced.
				time.Sleep(5 * time.Second)
				dir, v := shared(t)
				before, _ := kernelLog()
				// vigil with what it does at the end: a tombstone and a hook.
				o, image, argv := append(v, opts...), ic.image, []string{"sh", "-c", secondVictimGated}
				if ic.name == "vigil" {
					o, image = append(o, "--entrypoint", "/vigil"), "localhost/vigil-e2e:base"
					argv = append([]string{"--tombstone", "/shared/tomb.json", "--on-oom", "sh -c 'echo $VIGIL_CLASS > /shared/hook'", "--"}, argv...)
				}
				c := e.start(t, o, image, argv...)
				pid := atoi(t, e.must(t, time.Minute, "inspect", "-f", "{{.State.Pid}}", c.name))
				writeFile(filepath.Join(dir, "go"), "")
				status := c.wait(2 * time.Minute)
				after, _ := kernelLog()
				window := after[min(len(before), len(after)):]
				victims := oomVictims(window)
				killed := slices.Contains(victims, pid)
				if ic.name == "vigil" {
					// vigil says so itself: no exited tombstone, no hook.
					b, _ := os.ReadFile(filepath.Join(dir, "tomb.json"))
					killed = killed || !strings.Contains(string(b), `"state":"exited"`)
				}
				if strings.Contains(strings.Join(window, "\n"), "callbacks suppressed") {
					t.Logf("%s run %d: the kernel suppressed some OOM reports; the figure may miss a death", ic.name, i+1)
				}
				if killed {
					counts[ic.name]++
				}
				t.Logf("%s run %d: exit %d, %d OOM victims in the kernel's log, the init (pid %d) killed: %v", ic.name, i+1, status, len(victims), pid, killed)
				e.do(time.Minute, "rm", "-f", c.name)
			}
		}
		secondVictimVerdict(t, "in a 32 MiB Docker container", n, counts)
	})
}

// secondVictimRun runs init as PID 1 in a fresh 32 MiB memory cgroup with
// the filling shell as its child and returns whether the OOM killer
// killed the init, how many kills the cgroup counted, and whether vigil's
// tombstone says exited (it is written before the hooks run).
func secondVictimRun(t *testing.T, init, busybox, tini string) (killed bool, kills int, recorded bool) {
	t.Run(fmt.Sprintf("%s-%d", init, time.Now().UnixNano()), func(t *testing.T) {
		procs := memoryCgroup(t, 32<<20)
		dir := t.TempDir()
		// vigil with what it does at the end: a tombstone and a hook.
		argv := []string{"pid1-shim", vigilBin, "--tombstone", filepath.Join(dir, "tomb.json"),
			"--on-oom", "sh -c 'echo $VIGIL_CLASS > " + filepath.Join(dir, "hook") + "'", "--"}
		switch os.Getenv("E2E_SECOND_VICTIM_RECORDS") {
		case "none":
			argv = []string{"pid1-shim", vigilBin, "--"}
		case "tombstone":
			argv = []string{"pid1-shim", vigilBin, "--tombstone", filepath.Join(dir, "tomb.json"), "--"}
		case "hook":
			argv = []string{"pid1-shim", vigilBin, "--on-oom", "sh -c 'echo $VIGIL_CLASS > " + filepath.Join(dir, "hook") + "'", "--"}
		}
		if init == "tini" {
			argv = []string{"pid1-shim", tini, "--"}
		}
		argv = append(argv, busybox, "sh", "-c", secondVictimFill)
		cmd := exec.Command(self, argv...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS}
		cmd.Env = append(os.Environ(), "E2E_HELPER=1", "E2E_CGROUP_PROCS="+procs)
		cmd.Dir = t.TempDir()
		cmd.WaitDelay = 10 * time.Second
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(time.Minute):
			cmd.Process.Kill()
			<-done
			t.Fatalf("%s did not end within a minute", init)
		}
		kills = oomKills(t, filepath.Dir(procs))
		// The init is PID 1 of its namespace: only the OOM killer sends
		// it SIGKILL here.
		ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
		killed = ws.Signaled() && ws.Signal() == syscall.SIGKILL
		b, _ := os.ReadFile(filepath.Join(dir, "tomb.json"))
		recorded = strings.Contains(string(b), `"state":"exited"`)
	})
	return killed, kills, recorded
}

// secondVictimVerdict logs the figures and fails if vigil was killed more
// often than tini.
func secondVictimVerdict(t *testing.T, where string, n int, counts map[string]int) {
	t.Helper()
	t.Logf("%s, the shell filling memory: the init killed too in vigil %d of %d runs, tini %d of %d",
		where, counts["vigil"], n, counts["tini"], n)
	if counts["vigil"] > counts["tini"] {
		t.Errorf("%s: vigil was the second victim in %d of %d runs, tini in %d", where, counts["vigil"], n, counts["tini"])
	}
}

// kernelLog returns the lines of the kernel's log.
func kernelLog() ([]string, error) {
	out, err := exec.Command("dmesg").Output()
	if err != nil {
		return nil, err
	}
	return strings.Split(string(out), "\n"), nil
}

// killedLine is the kernel's line for each OOM kill; the longer lines
// that name the cgroup are rate-limited, this one is not.
var killedLine = regexp.MustCompile(`Killed process (\d+) \(`)

// oomVictims returns the pids (as the host sees them) the kernel's log
// says the OOM killer killed.
func oomVictims(lines []string) []int {
	var out []int
	for _, l := range lines {
		if m := killedLine.FindStringSubmatch(l); m != nil {
			n, _ := strconv.Atoi(m[1])
			out = append(out, n)
		}
	}
	return out
}
