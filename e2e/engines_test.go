package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// vigil under the real engines, as users run it: ENTRYPOINT ["/vigil",
// "--"] in an image, and dockerd's --init-path (docker run --init). Where
// tini-static is installed the same cases run with it as the entrypoint, and
// the results are logged side by side; only vigil's results are asserted,
// tini's are there for comparison.

// TestDocker runs the matrix under a dockerd of the test's own.
func TestDocker(t *testing.T) {
	t.Parallel()
	e := startDocker(t)
	e.buildImages(t)
	m := &matrix{}
	t.Cleanup(func() { m.log(t, "docker (docker.io "+e.serverVersion()+", dockerd --init-path = vigil)") })

	engineCore(t, e, m)
	t.Run("init version", func(t *testing.T) { t.Parallel(); dockerInitVersion(t, e, m) })
	t.Run("logs hold nothing of vigil's", func(t *testing.T) { t.Parallel(); dockerQuietLogs(t, e, m) })
	t.Run("job with sidecar", func(t *testing.T) { t.Parallel(); dockerJobWithSidecar(t, e, m) })
	t.Run("memory limit", func(t *testing.T) { t.Parallel(); dockerOOM(t, e, m) })
	t.Run("the Dockerfile with the legacy builder", func(t *testing.T) { t.Parallel(); dockerLegacyBuild(t, e, m) })
}

// TestPodman runs the core of the matrix under podman.
func TestPodman(t *testing.T) {
	t.Parallel()
	e := startPodman(t)
	e.buildImages(t)
	m := &matrix{}
	t.Cleanup(func() { m.log(t, "podman ("+e.serverVersion()+")") })
	engineCore(t, e, m)
}

func (e *engine) serverVersion() string {
	out, _, err := e.do(30*time.Second, "version", "--format", "{{.Server.Version}}")
	if err != nil {
		return "version unknown"
	}
	return strings.TrimSpace(out)
}

// engineCore runs the cases Docker and podman share.
func engineCore(t *testing.T, e *engine, m *matrix) {
	t.Run("exit status", func(t *testing.T) { t.Parallel(); engineExitStatus(t, e, m) })
	t.Run("stop waits for a 15s shutdown", func(t *testing.T) { t.Parallel(); engineStop(t, e, m) })
	t.Run("kill reaches the child", func(t *testing.T) { t.Parallel(); engineKill(t, e, m) })
	t.Run("200 orphans leave no zombie", func(t *testing.T) { t.Parallel(); engineZombies(t, e, m) })
	t.Run("init path", func(t *testing.T) { t.Parallel(); engineInitPath(t, e, m) })
}

// judge fails the test for vigil; for the inits it is only compared with,
// it logs what they did differently.
func judge(t *testing.T, in initCase, ok bool, format string, args ...any) {
	t.Helper()
	if ok {
		return
	}
	if in.name == "vigil" {
		t.Errorf(format, args...)
	} else {
		t.Logf("(%s is only compared, not tested) "+format, append([]any{in.name}, args...)...)
	}
}

// forEachInit runs f for each init as a subtest, all at once: each case
// mostly waits on a container.
func forEachInit(t *testing.T, e *engine, f func(t *testing.T, in initCase)) {
	var wg sync.WaitGroup
	for _, in := range e.inits {
		wg.Go(func() { t.Run(in.name, func(t *testing.T) { f(t, in) }) })
	}
	wg.Wait()
}

func engineExitStatus(t *testing.T, e *engine, m *matrix) {
	cases := []struct {
		want int
		what string
		cmd  []string
	}{
		{0, "exit 0", []string{"/e2e", "exit", "0"}},
		{3, "exit 3", []string{"/e2e", "exit", "3"}},
		{143, "child killed by TERM", []string{"/e2e", "die", "TERM"}},
	}
	forEachInit(t, e, func(t *testing.T, in initCase) {
		var started []*ctr
		for _, tc := range cases {
			started = append(started, e.start(t, nil, in.image, tc.cmd...))
		}
		for i, tc := range cases {
			c := started[i]
			got := c.wait(time.Minute)
			m.set(fmt.Sprintf("%s → %d", tc.what, tc.want), in.name, strconv.Itoa(got))
			judge(t, in, got == tc.want, "%s exited %d, want %d\n%s", c, got, tc.want, c.logs())
		}
	})
}

// engineStop is `docker stop -t 30` on an app that needs 15 s to shut down
// cleanly: the engine owns the deadline of the stop it started, so the init
// must wait for the child, not kill it at a grace of its own.
func engineStop(t *testing.T, e *engine, m *matrix) {
	forEachInit(t, e, func(t *testing.T, in initCase) {
		dir, v := shared(t)
		state := filepath.Join(dir, "state")
		c := e.start(t, v, in.image, "/e2e", "slow-stop", "/shared/state", "15s")
		waitFile(t, state, "ready", time.Minute)
		t0 := time.Now()
		if _, _, err := e.do(time.Minute, "stop", "-t", "30", c.name); err != nil {
			t.Fatalf("%v\n%s", err, c.logs())
		}
		took := time.Since(t0)
		status := c.wait(time.Minute)
		b, _ := os.ReadFile(state)
		m.set("stop -t 30, child needs 15 s → 0", in.name, fmt.Sprintf("%d after %.1f s", status, took.Seconds()))
		judge(t, in, status == 0 && strings.Contains(string(b), "clean") && took >= 15*time.Second && took < 30*time.Second,
			"%s stop -t 30 took %s and the container exited %d; want exit 0 once the child's clean 15 s shutdown is done, "+
				"well before the engine's 30 s. The child's own account: %q (\"clean\" means it finished)\n%s",
			e.name, took.Round(100*time.Millisecond), status, b, c.logs())
	})
}

// engineKill sends USR1 and HUP with the engine's kill command: each must
// reach the child, which records it and exits 0.
func engineKill(t *testing.T, e *engine, m *matrix) {
	forEachInit(t, e, func(t *testing.T, in initCase) {
		type started struct {
			sig, file string
			c         *ctr
		}
		var all []started
		for _, sig := range []string{"USR1", "HUP"} {
			dir, v := shared(t)
			all = append(all, started{sig, filepath.Join(dir, "signals"), e.start(t, v, in.image, "/e2e", "record", "/shared/signals")})
		}
		for _, s := range all {
			waitFile(t, s.file, "ready", time.Minute)
			if _, _, err := e.do(time.Minute, "kill", "-s", s.sig, s.c.name); err != nil {
				t.Fatalf("%v\n%s", err, s.c.logs())
			}
			status := s.c.wait(time.Minute)
			b, _ := os.ReadFile(s.file)
			got := strings.TrimSpace(strings.TrimPrefix(string(b), "ready\n"))
			if got == "" {
				got = "nothing"
			}
			m.set("kill -s "+s.sig+" → child gets it, exits 0", in.name, fmt.Sprintf("%s, %d", got, status))
			judge(t, in, got == "SIG"+s.sig && status == 0, "%s kill -s %s: the child got %s and the container exited %d, want SIG%s and 0\n%s",
				e.name, s.sig, got, status, s.sig, s.c.logs())
		}
	})
}

// engineZombies has the child double-fork 200 detached grandchildren that
// exit at once; the init, PID 1 of the container, must reap them all.
func engineZombies(t *testing.T, e *engine, m *matrix) {
	forEachInit(t, e, func(t *testing.T, in initCase) {
		dir, v := shared(t)
		c := e.start(t, v, in.image, "/e2e", "orphans", "200", "/shared/report", "0")
		status := c.wait(2 * time.Minute)
		b, _ := os.ReadFile(filepath.Join(dir, "report"))
		m.set("200 orphans → 0 zombies", in.name, fmt.Sprintf("%s, %d", b, status))
		judge(t, in, string(b) == "zombies=0 others=0" && status == 0,
			"after 200 orphans ended, the child saw %q (want zombies=0 others=0) and the container exited %d (want 0)\n%s",
			b, status, c.logs())
	})
}

// engineInitPath runs an image without an entrypoint under the engine's
// --init with vigil as the init binary (dockerd's --init-path, podman's
// run --init-path). No flags can be passed that way; vigil's variables can,
// and the tombstone shows that vigil, not the engine's default init, ran.
func engineInitPath(t *testing.T, e *engine, m *matrix) {
	dir, v := shared(t)
	opts := append(append(append([]string{}, e.initArgs...), v...), "-e", "VIGIL_TOMBSTONE=/shared/tomb.json")
	c := e.start(t, opts, "localhost/vigil-e2e:base", "/e2e", "exit", "3")
	status := c.wait(time.Minute)
	m.set(e.initDesc+" → 3", "vigil", strconv.Itoa(status))
	if status != 3 {
		t.Errorf("%s with %s exited %d, want the child's 3\n%s", c, strings.Join(e.initArgs, " "), status, c.logs())
	}
	if _, err := os.Stat(filepath.Join(dir, "tomb.json")); err != nil {
		t.Fatalf("no tombstone from VIGIL_TOMBSTONE: the init was not vigil (%v)\n%s", err, c.logs())
	}
	readTombstone(t, filepath.Join(dir, "tomb.json")).check(t, map[string]any{
		"name": "e2e", "state": "exited", "class": "failure", "exit_status": 3, "exit_code": 3})
}

// versionLine is the one line Docker parses from the init's --version, the
// form tini prints: NAME version X - git.COMMIT. dockerd 20.10 splits what
// follows " - " at dots and wants exactly "git" and the commit, so a commit
// with a dot in it fails to parse; it takes X only after "tini version ",
// so for vigil it shows the commit alone.
var versionLine = regexp.MustCompile(`^vigil version (\S+) - git\.([^.\s]+)$`)

// dockerInitVersion: `docker version` and `docker info` run the init with
// --version and parse one line; vigil's must parse, with no warning in the
// daemon's log.
func dockerInitVersion(t *testing.T, e *engine, m *matrix) {
	out, err := exec.Command(vigilBin, "--version").Output()
	if err != nil {
		t.Fatalf("vigil --version: %v", err)
	}
	printed := strings.TrimSuffix(string(out), "\n")
	match := versionLine.FindStringSubmatch(printed)
	if match == nil {
		t.Errorf("vigil --version printed %q, want exactly one line \"vigil version X - git.COMMIT\", the form dockerd parses", out)
	}
	var components []struct {
		Name    string
		Version string
		Details map[string]string
	}
	if err := json.Unmarshal([]byte(e.must(t, time.Minute, "version", "--format", "{{json .Server.Components}}")), &components); err != nil {
		t.Fatalf("docker version: %v", err)
	}
	var commit string
	found := false
	for _, c := range components {
		if c.Name == "vigil" {
			found, commit = true, c.Details["GitCommit"]
			// docker 20.10 takes a version only after "tini version "; from
			// any other init it takes the commit alone.
			t.Logf("docker version lists the init as vigil: Version %q, GitCommit %q", c.Version, commit)
		}
	}
	var initCommit struct{ ID string }
	if err := json.Unmarshal([]byte(e.must(t, time.Minute, "info", "--format", "{{json .InitCommit}}")), &initCommit); err != nil {
		t.Fatalf("docker info: %v", err)
	}
	var warnings []string
	daemonLog, err := os.ReadFile(e.daemon.log)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(daemonLog), "\n") {
		if strings.Contains(line, vigilBin) && (strings.Contains(line, "failed to parse") || strings.Contains(line, "failed to retrieve")) {
			warnings = append(warnings, line)
		}
	}
	m.set("docker version: init commit, no parse warning", "vigil", fmt.Sprintf("commit %q, %d warnings", commit, len(warnings)))
	if match != nil && (!found || commit != match[2] || initCommit.ID != match[2]) {
		t.Errorf("vigil --version says commit %q; docker version lists vigil=%v with GitCommit %q, docker info's init version is %q",
			match[2], found, commit, initCommit.ID)
	}
	if !found {
		t.Errorf("docker version does not list the init (vigil) among its components: %+v", components)
	}
	if len(warnings) > 0 {
		t.Errorf("dockerd could not parse vigil --version:\n%s", strings.Join(warnings, "\n"))
	}
}

// dockerQuietLogs: the logs of a container whose child succeeded hold the
// child's output and nothing else, as under tini.
func dockerQuietLogs(t *testing.T, e *engine, m *matrix) {
	forEachInit(t, e, func(t *testing.T, in initCase) {
		c := e.start(t, nil, in.image, "sh", "-c", "echo out; echo err >&2")
		status := c.wait(time.Minute)
		stdout, stderr := c.output()
		extra := len(stdout) + len(stderr) - len("out\n") - len("err\n")
		m.set("docker logs of a successful run: bytes not the child's", in.name, strconv.Itoa(extra))
		judge(t, in, status == 0 && stdout == "out\n" && stderr == "err\n",
			"a successful run (exit %d) logged stdout %q and stderr %q; want only the child's \"out\\n\" and \"err\\n\"",
			status, stdout, stderr)
	})
}

// dockerJobWithSidecar is the Kubernetes Job with a sidecar, over a shared
// Docker volume: the main container's vigil writes its tombstone; the
// sidecar's vigil stops its child when that tombstone says exited, and the
// sidecar exits 0 with class stopped.
func dockerJobWithSidecar(t *testing.T, e *engine, m *matrix) {
	vol := fmt.Sprintf("vigil-e2e-%d-job", os.Getpid())
	e.must(t, time.Minute, "volume", "create", vol)
	// After the containers' own cleanups (they are registered later and so
	// run first).
	t.Cleanup(func() { e.do(time.Minute, "volume", "rm", "-f", vol) })
	dir := strings.TrimSpace(e.must(t, time.Minute, "volume", "inspect", "-f", "{{.Mountpoint}}", vol))
	v := []string{"-v", vol + ":/shared"}
	const base = "localhost/vigil-e2e:base"
	sidecar := e.start(t, v, base, "/vigil", "--name", "sidecar", "--tombstone", "/shared/sidecar.json",
		"--stop-on", "tombstone:/shared/main.json", "--", "sleep", "1000")
	main := e.start(t, v, base, "/vigil", "--name", "main", "--tombstone", "/shared/main.json",
		"--wait-for", "tombstone:/shared/sidecar.json", "--wait-timeout", "30s",
		"--", "sh", "-c", "echo working; sleep 0.3")
	mainStatus := main.wait(time.Minute)
	sideStatus := sidecar.wait(time.Minute)
	m.set("job + sidecar over a volume → 0, 0 (stopped)", "vigil", fmt.Sprintf("%d, %d", mainStatus, sideStatus))
	if mainStatus != 0 || sideStatus != 0 {
		t.Fatalf("main exited %d, sidecar %d; want 0 and 0\nmain:\n%s\nsidecar:\n%s", mainStatus, sideStatus, main.logs(), sidecar.logs())
	}
	mt := readTombstone(t, filepath.Join(dir, "main.json"))
	mt.check(t, map[string]any{"name": "main", "state": "exited", "class": "success", "exit_status": 0})
	st := readTombstone(t, filepath.Join(dir, "sidecar.json"))
	st.check(t, map[string]any{"name": "sidecar", "state": "exited", "class": "stopped", "signal": "SIGTERM", "exit_status": 0})
	if st.time(t, "ended_at").Before(mt.time(t, "ended_at")) {
		t.Errorf("the sidecar ended at %s, before the main container at %s", st["ended_at"], mt["ended_at"])
	}
}

// dockerOOM runs a child that allocates far past --memory 32m: the kernel's
// OOM killer ends it, vigil (small, in the same cgroup) survives, classifies
// oom and runs the --on-oom hook.
func dockerOOM(t *testing.T, e *engine, m *matrix) {
	limits := strings.Fields(e.must(t, time.Minute, "info", "--format", "{{.MemoryLimit}} {{.SwapLimit}}"))
	if len(limits) != 2 || limits[0] != "true" {
		// The kernel's memory cgroup is a property of the machine, not an
		// install step: no CI machine without it could run this.
		t.Skipf("dockerd reports no memory limit support on this kernel (docker info MemoryLimit SwapLimit: %v)", limits)
	}
	dir, v := shared(t)
	opts := append(v, "--memory", "32m")
	if limits[1] == "true" {
		opts = append(opts, "--memory-swap", "32m")
	}
	c := e.start(t, opts, "localhost/vigil-e2e:base", "/vigil", "--tombstone", "/shared/tomb.json",
		"--on-oom", "sh -c 'echo $VIGIL_CLASS $VIGIL_EXIT_STATUS > /shared/hook'", "--", "/e2e", "hog", "1024")
	status := c.wait(2 * time.Minute)
	hook, _ := os.ReadFile(filepath.Join(dir, "hook"))
	m.set("--memory 32m, child allocates 1 GiB → oom hook", "vigil", fmt.Sprintf("%d, hook: %s", status, strings.TrimSpace(string(hook))))
	if status != 137 {
		t.Errorf("%s exited %d, want 137 (the child SIGKILLed by the OOM killer)\n%s", c, status, c.logs())
	}
	if _, err := os.Stat(filepath.Join(dir, "tomb.json")); err != nil {
		t.Fatalf("no tombstone: vigil did not survive the OOM kill (%v)\n%s", err, c.logs())
	}
	readTombstone(t, filepath.Join(dir, "tomb.json")).check(t, map[string]any{
		"state": "exited", "class": "oom", "signal": "SIGKILL", "exit_status": 137})
	if string(hook) != "oom 137\n" {
		t.Errorf("the --on-oom hook wrote %q, want \"oom 137\\n\"\n%s", hook, c.logs())
	}
}
