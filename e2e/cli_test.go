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
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func init() {
	helpers["vigil-then-exit"] = vigilThenExit
}

// vigilThenExit starts vigil with ARGS, waits until READY says "ready",
// writes vigil's pid to FILE and exits, so that vigil's parent dies while
// vigil and its child run.
func vigilThenExit(args []string) int {
	file, ready, vigil := args[0], args[1], args[2]
	cmd := exec.Command(vigil, args[3:]...)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "vigil-then-exit:", err)
		return 90
	}
	if poll(10*time.Second, func() bool {
		b, _ := os.ReadFile(ready)
		return strings.Contains(string(b), "ready")
	}) {
		writeFile(file, strconv.Itoa(cmd.Process.Pid))
		return 0
	}
	return 89
}

func TestWarnOnReapNamesEachOrphan(t *testing.T) {
	report := filepath.Join(t.TempDir(), "report")
	r := start(t, opts{pid1: true}, append([]string{"-w", "--"}, helper("orphans", "5", report, "0")...)...)
	r.expect(0)
	if n := strings.Count(r.stderr.String(), "reaped a process that was not the main child"); n < 5 {
		t.Errorf("-w warned %d times for 5 orphans (plus their parents)\nstderr:\n%s", n, r.stderr)
	}
}

func TestDebugLogShowsSpawnSignalsAndReaps(t *testing.T) {
	file := filepath.Join(t.TempDir(), "got")
	r := start(t, opts{pid1: true}, append([]string{"-v", "--"}, helper("record", file)...)...)
	waitFile(t, file, "ready", 10*time.Second)
	r.signal(unix.SIGUSR1)
	r.expect(0)
	for _, want := range []string{"msg=spawned", "msg=received", "msg=sent", "signal=SIGUSR1", `msg="reaped main child"`} {
		if !strings.Contains(r.stderr.String(), want) {
			t.Errorf("debug log lacks %s\nstderr:\n%s", want, r.stderr)
		}
	}
}

func TestJSONLogsForShippers(t *testing.T) {
	r := start(t, opts{pid1: true}, append([]string{"--log-format", "json", "-v", "--"}, helper("exit", "3")...)...)
	r.expect(3)
	lines := strings.Split(strings.TrimSpace(r.stderr.String()), "\n")
	var ended map[string]any
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q (%v)", l, err)
		}
		if m["msg"] == "child ended" {
			ended = m
		}
	}
	if ended == nil || ended["class"] != "failure" || ended["status"] != float64(3) || ended["level"] != "DEBUG" {
		t.Errorf("no JSON line for the termination with class failure and status 3: %v", lines)
	}
}

// TestVersionIsOneLineDockerParses: dockerd runs the init with --version
// for docker info and docker version and reads one line, "NAME version X -
// git.COMMIT"; -v adds the build details on the lines after it.
func TestVersionIsOneLineDockerParses(t *testing.T) {
	line := regexp.MustCompile(`^vigil version [^ ]+ - git\.([0-9a-f]{7}|unknown)\n$`)
	out, err := exec.Command(vigilBin, "--version").Output()
	if err != nil || !line.Match(out) {
		t.Errorf("vigil --version: %q, %v; want one line matching %s", out, err, line)
	}
	for _, args := range [][]string{{"--version", "-v"}, {"-v", "--version"}} {
		out, err := exec.Command(vigilBin, args...).Output()
		first, rest, _ := strings.Cut(string(out), "\n")
		if err != nil || !line.MatchString(first+"\n") || !strings.HasPrefix(rest, "go: go1.") {
			t.Errorf("vigil %s: %q, %v; want the version line, then build details", strings.Join(args, " "), out, err)
		}
	}
}

func TestPdeathsigStopsVigilWhenItsParentDies(t *testing.T) {
	dir := t.TempDir()
	pidFile, childFile := filepath.Join(dir, "pid"), filepath.Join(dir, "child")
	// vigil -p TERM runs a recorder; its parent exits at once.
	cmd := exec.Command(self, append([]string{"vigil-then-exit", pidFile, childFile, vigilBin, "-p", "TERM", "--"},
		helper("record", childFile)...)...)
	cmd.Env = append(os.Environ(), "E2E_HELPER=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("parent: %v\n%s", err, out)
	}
	pid := atoi(t, waitFile(t, pidFile, "", 5*time.Second))
	// The parent is gone, so the kernel sends vigil SIGTERM, which vigil
	// forwards as a stop: the recorder says so and everything ends.
	if got := waitFile(t, childFile, "SIGTERM", 10*time.Second); got != "ready\nSIGTERM\n" {
		t.Errorf("child received %q, want SIGTERM", got)
	}
	var st string
	if !poll(10*time.Second, func() bool { st = procState(pid); return st == "" || st == "Z" }) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("vigil (pid %d, state %s) still runs after its parent died", pid, st)
	}
}
