package e2e

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The shutdown and Kubernetes lifecycle of issue 4: grace, drain, cleanup
// of leftovers, tombstones, the termination log, --wait-for, --stop-on and
// --user, each seen from outside with vigil as PID 1.

func init() {
	helpers["stamps"] = sigStamps
	helpers["started"] = startStamp
	helpers["spawn-daemon"] = spawnDaemon
	helpers["daemon-parent"] = daemonParent
	helpers["ids"] = credIDs
	helpers["stderr-lines"] = stderrLines
}

// sigStamps writes "ready pid=N" to FILE, then appends "SIGNAME UNIXNANO" for
// every signal it receives. MODE "stay" keeps it running whatever arrives
// (it catches SIGTERM, so only SIGKILL ends it); a number makes it exit with
// that status after the first signal.
func sigStamps(args []string) int {
	file, mode := args[0], args[1]
	c := make(chan os.Signal, 16)
	signal.Notify(c, catchable()...)
	got := fmt.Sprintf("ready pid=%d\n", os.Getpid())
	writeFile(file, got)
	for sig := range c {
		got += fmt.Sprintf("%s %d\n", unix.SignalName(sig.(unix.Signal)), time.Now().UnixNano())
		writeFile(file, got)
		if mode != "stay" {
			return mustAtoi(mode)
		}
	}
	return 0
}

// startStamp writes "started UNIXNANO" to FILE and exits 0: the proof of when
// the command began.
func startStamp(args []string) int {
	writeFile(args[0], fmt.Sprintf("started %d\n", time.Now().UnixNano()))
	return 0
}

// spawnDaemon leaves a daemon behind: a stamps FILE MODE process in a new
// session whose parent has exited, the way a double-forking daemon detaches.
// Once the daemon is ready it writes "exiting UNIXNANO" to FILE.main and
// exits with CODE.
func spawnDaemon(args []string) int {
	file, mode, code := args[0], args[1], mustAtoi(args[2])
	parent := exec.Command(os.Args[0], "daemon-parent", file, mode)
	parent.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	parent.Stderr = os.Stderr
	if err := parent.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "spawn-daemon:", err)
		return 96
	}
	if !poll(10*time.Second, func() bool {
		b, _ := os.ReadFile(file)
		return strings.Contains(string(b), "ready")
	}) {
		fmt.Fprintln(os.Stderr, "spawn-daemon: the daemon never became ready")
		return 95
	}
	writeFile(file+".main", fmt.Sprintf("exiting %d\n", time.Now().UnixNano()))
	return code
}

// daemonParent is the middle of the double fork: it starts the daemon and
// exits without waiting, so the daemon is reparented to vigil.
func daemonParent(args []string) int {
	d := exec.Command(os.Args[0], "stamps", args[0], args[1])
	d.Stderr = os.Stderr
	if err := d.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "daemon-parent:", err)
		return 94
	}
	return 0
}

// credIDs writes the credential lines of /proc/self/status and HOME to FILE.
func credIDs(args []string) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		fmt.Fprintln(os.Stderr, "ids:", err)
		return 93
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		for _, k := range []string{"Uid:", "Gid:", "Groups:", "CapEff:", "CapPrm:", "NoNewPrivs:"} {
			if strings.HasPrefix(line, k) {
				out = append(out, k+" "+strings.Join(strings.Fields(line[len(k):]), " "))
			}
		}
	}
	out = append(out, "HOME: "+os.Getenv("HOME"))
	writeFile(args[0], strings.Join(out, "\n")+"\n")
	return 0
}

// stderrLines writes N numbered lines to stderr and exits with CODE.
func stderrLines(args []string) int {
	n, code := mustAtoi(args[0]), mustAtoi(args[1])
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "line %05d of the child's complaint\n", i)
	}
	os.Stderr.WriteString(b.String())
	return code
}

// vigilArgs is flags, then "--", then the helper's argv.
func vigilArgs(flags []string, argv []string) []string {
	return append(append(append([]string(nil), flags...), "--"), argv...)
}

// readyPid waits for a stamps helper to be ready and returns its pid.
func readyPid(t *testing.T, file string) int {
	t.Helper()
	got := waitFile(t, file, "ready", 10*time.Second)
	var pid int
	if _, err := fmt.Sscanf(got, "ready pid=%d", &pid); err != nil {
		t.Fatalf("%s: %q is not a ready line", file, got)
	}
	return pid
}

// stampsOf returns the time of each signal a stamps helper recorded, in
// order, with the signal's name.
func stampsOf(t *testing.T, file string) (names []string, at []time.Time) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) != 2 {
			t.Fatalf("%s: bad line %q", file, line)
		}
		ns, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			t.Fatalf("%s: bad line %q", file, line)
		}
		names = append(names, f[0])
		at = append(at, time.Unix(0, ns))
	}
	return names, at
}

// stampOf reads the UNIXNANO after word in file.
func stampOf(t *testing.T, file, word string) time.Time {
	t.Helper()
	got := waitFile(t, file, word, 10*time.Second)
	var ns int64
	if _, err := fmt.Sscanf(got, word+" %d", &ns); err != nil {
		t.Fatalf("%s: %q has no %s time", file, got, word)
	}
	return time.Unix(0, ns)
}

// tombstone is a tombstone as JSON values, so that a test sees null, a
// missing key and a wrong type for what they are.
type tombstone map[string]any

func readTombstone(t *testing.T, path string) tombstone {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading the tombstone: %v", err)
	}
	var ts tombstone
	if err := json.Unmarshal(b, &ts); err != nil {
		t.Fatalf("tombstone %s is not JSON: %v\n%s", path, err, b)
	}
	return ts
}

// check compares the tombstone's fields with want; a nil in want means null.
func (ts tombstone) check(t *testing.T, want map[string]any) {
	t.Helper()
	for _, k := range []string{"name", "state", "pid", "started_at", "ended_at", "class",
		"exit_status", "exit_code", "signal", "core_dumped"} {
		if _, ok := ts[k]; !ok {
			t.Errorf("tombstone has no %q: %v", k, ts)
		}
	}
	// The ten above always; these only when they say something.
	optional := map[string]bool{"error": true, "restarts": true, "status": true, "ready_at": true,
		"run_id": true, "run_started_at": true, "locked": true, "oom_kills": true}
	for k := range ts {
		if !optional[k] && !slices.Contains([]string{"name", "state", "pid", "started_at", "ended_at", "class",
			"exit_status", "exit_code", "signal", "core_dumped"}, k) {
			t.Errorf("tombstone has an unknown field %q: %v", k, ts)
		}
	}
	for k, v := range want {
		if n, ok := v.(int); ok {
			v = float64(n) // JSON numbers decode as float64
		}
		if ts[k] != v {
			t.Errorf("tombstone %s = %#v, want %#v", k, ts[k], v)
		}
	}
}

// time parses one of the tombstone's times.
func (ts tombstone) time(t *testing.T, k string) time.Time {
	t.Helper()
	s, _ := ts[k].(string)
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("tombstone %s = %#v: %v", k, ts[k], err)
	}
	return tm
}

func TestGraceThenSIGKILLForChildIgnoringTERM(t *testing.T) {
	tests := []struct {
		name  string
		grace time.Duration
	}{
		{"grace 1s", time.Second},
		{"grace 0 kills at once", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ready, tomb := filepath.Join(dir, "ready"), filepath.Join(dir, "tomb.json")
			r := start(t, opts{pid1: true}, vigilArgs([]string{"--grace", tt.grace.String(), "--tombstone", tomb},
				helper("ignore-term", ready))...)
			waitFile(t, ready, "ready", 10*time.Second)
			t0 := time.Now()
			r.signal(unix.SIGTERM)
			r.expect(137)
			// Well under the default grace of 10s: the flag was obeyed.
			if took := time.Since(t0); took < tt.grace || took > tt.grace+3*time.Second {
				t.Errorf("vigil exited %s after SIGTERM, want about the grace of %s\nstderr:\n%s", took, tt.grace, r.stderr)
			}
			if !strings.Contains(r.stderr.String(), "grace period over") {
				t.Errorf("vigil did not log the end of the grace period\nstderr:\n%s", r.stderr)
			}
			readTombstone(t, tomb).check(t, map[string]any{"state": "exited", "class": "kill", "exit_status": 137,
				"exit_code": nil, "signal": "SIGKILL", "core_dumped": false})
		})
	}
}

func TestLeftoverDaemonIsStoppedAfterMainChildExits(t *testing.T) {
	tests := []struct {
		name  string
		pid1  bool
		mode  string // the daemon's: "0" exits on SIGTERM, "stay" needs SIGKILL
		grace time.Duration
	}{
		{"pid1, daemon obeys SIGTERM", true, "0", 5 * time.Second},
		{"pid1, daemon ignores SIGTERM", true, "stay", time.Second},
		{"subreaper, daemon ignores SIGTERM", false, "stay", time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			needRoot(t) // the subreaper case too: kill(-1) must not be what makes it pass
			daemon := filepath.Join(t.TempDir(), "daemon")
			r := start(t, opts{pid1: tt.pid1}, vigilArgs([]string{"--grace", tt.grace.String()},
				helper("spawn-daemon", daemon, tt.mode, "4"))...)
			r.expect(4) // the main child's status, not the daemon's
			stderr := r.stderr.String()
			pid := readyPid(t, daemon)
			mainExited := stampOf(t, daemon+".main", "exiting")
			names, at := stampsOf(t, daemon)
			if len(names) == 0 || names[0] != "SIGTERM" {
				t.Fatalf("daemon received %v, want SIGTERM first\nstderr:\n%s", names, stderr)
			}
			if at[0].Before(mainExited) {
				t.Errorf("daemon got SIGTERM %s before the main child exited", mainExited.Sub(at[0]))
			}
			term := fmt.Sprintf("pid=%d", pid)
			if !hasLogLine(stderr, "INFO", "killing leftover process", term, "signal=SIGTERM") {
				t.Errorf("vigil did not say that it sent SIGTERM to leftover %s\nstderr:\n%s", term, stderr)
			}
			killed := hasLogLine(stderr, "INFO", "killing leftover process", term, "signal=SIGKILL")
			if killed != (tt.mode == "stay") {
				t.Errorf("SIGKILL logged for the daemon: %v, want %v\nstderr:\n%s", killed, tt.mode == "stay", stderr)
			}
			if !tt.pid1 {
				// Not PID 1, so the kernel would not have killed it when
				// vigil exited: it is gone because vigil killed and reaped it.
				if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); !os.IsNotExist(err) {
					unix.Kill(pid, unix.SIGKILL)
					t.Errorf("daemon %d outlived vigil (stat: %v)\nstderr:\n%s", pid, err, stderr)
				}
			}
		})
	}
}

// hasLogLine reports whether one line of vigil's log holds every word.
func hasLogLine(log string, words ...string) bool {
	for _, line := range strings.Split(log, "\n") {
		all := true
		for _, w := range words {
			all = all && strings.Contains(line, w)
		}
		if all {
			return true
		}
	}
	return false
}

func TestNoCleanupExitsAtOnce(t *testing.T) {
	daemon := filepath.Join(t.TempDir(), "daemon")
	const grace = 5 * time.Second
	t0 := time.Now()
	r := start(t, opts{pid1: true}, vigilArgs([]string{"--no-cleanup", "--grace", grace.String()},
		helper("spawn-daemon", daemon, "stay", "4"))...)
	r.expect(4)
	if took := time.Since(stampOf(t, daemon+".main", "exiting")); took > 2*time.Second {
		t.Errorf("vigil exited %s after the main child, want at once (grace is %s)\nstderr:\n%s", took, grace, r.stderr)
	}
	if took := time.Since(t0); took > grace {
		t.Errorf("vigil took %s in all, more than the grace of %s", took, grace)
	}
	if names, _ := stampsOf(t, daemon); len(names) != 0 {
		t.Errorf("with --no-cleanup the daemon received %v, want nothing", names)
	}
	if strings.Contains(r.stderr.String(), "leftover") {
		t.Errorf("with --no-cleanup vigil still went after leftovers\nstderr:\n%s", r.stderr)
	}
}

func TestDrainDelaysTheStopSignal(t *testing.T) {
	file := filepath.Join(t.TempDir(), "stamps")
	const drain = 700 * time.Millisecond
	r := start(t, opts{pid1: true}, vigilArgs([]string{"--drain", drain.String()}, helper("stamps", file, "0"))...)
	readyPid(t, file)
	t0 := time.Now()
	// One TERM: a second during the drain ends it, as documented and as
	// TestStopSignalsDuringTheDrainAreForwarded checks.
	r.signal(unix.SIGTERM)
	r.expect(0)
	names, at := stampsOf(t, file)
	if len(names) != 1 || names[0] != "SIGTERM" {
		t.Fatalf("child received %v, want one SIGTERM\nstderr:\n%s", names, r.stderr)
	}
	if d := at[0].Sub(t0); d < drain || d > drain+2*time.Second {
		t.Errorf("SIGTERM reached the child %s after it reached vigil, want just after the drain of %s", d, drain)
	}
}

func TestSecondTERMDoesNotRestartGrace(t *testing.T) {
	file := filepath.Join(t.TempDir(), "stamps")
	const grace, second = 2 * time.Second, 1200 * time.Millisecond
	r := start(t, opts{pid1: true}, vigilArgs([]string{"--grace", grace.String()}, helper("stamps", file, "stay"))...)
	readyPid(t, file)
	t0 := time.Now()
	r.signal(unix.SIGTERM)
	waitFile(t, file, "SIGTERM", 5*time.Second)
	// The second TERM comes late in the grace on purpose: a restarted
	// clock would then end it at second+grace, well after t0+grace.
	time.Sleep(time.Until(t0.Add(second)))
	r.signal(unix.SIGTERM)
	r.expect(137)
	took := time.Since(t0)
	if took < grace || took >= second+grace-200*time.Millisecond {
		t.Errorf("SIGKILL came %s after the first SIGTERM; want the grace of %s from the first, not from the second at %s\nstderr:\n%s",
			took, grace, second, r.stderr)
	}
	if names, _ := stampsOf(t, file); strings.Join(names, ",") != "SIGTERM,SIGTERM" {
		t.Errorf("child received %v, want both SIGTERMs", names)
	}
}

func TestStopSignalChoosesWhatBeginsAStop(t *testing.T) {
	file := filepath.Join(t.TempDir(), "stamps")
	const drain, grace = 800 * time.Millisecond, 500 * time.Millisecond
	r := start(t, opts{pid1: true}, vigilArgs([]string{"--stop-signal", "USR1", "--drain", drain.String(),
		"--grace", grace.String()}, helper("stamps", file, "stay"))...)
	readyPid(t, file)

	// TERM is no longer a stop signal: forwarded at once, no drain, no kill.
	t0 := time.Now()
	r.signal(unix.SIGTERM)
	waitFile(t, file, "SIGTERM", 5*time.Second)
	if _, at := stampsOf(t, file); at[0].Sub(t0) >= drain {
		t.Errorf("SIGTERM took %s to reach the child: it was drained like a stop signal", at[0].Sub(t0))
	}

	// USR1 is: drained, forwarded, and SIGKILL after the grace.
	t1 := time.Now()
	r.signal(unix.SIGUSR1)
	r.expect(137)
	took := time.Since(t1)
	names, at := stampsOf(t, file)
	if strings.Join(names, ",") != "SIGTERM,SIGUSR1" {
		t.Fatalf("child received %v, want SIGTERM then SIGUSR1\nstderr:\n%s", names, r.stderr)
	}
	if d := at[1].Sub(t1); d < drain {
		t.Errorf("SIGUSR1 reached the child %s after vigil, before the drain of %s ended", d, drain)
	}
	if took < drain+grace || took > drain+grace+3*time.Second {
		t.Errorf("vigil exited %s after SIGUSR1, want about drain+grace = %s", took, drain+grace)
	}
}

func TestTombstoneRecordsRunningThenExited(t *testing.T) {
	dir := t.TempDir()
	file, tomb := filepath.Join(dir, "stamps"), filepath.Join(dir, "tomb.json")
	before := time.Now()
	r := start(t, opts{pid1: true}, vigilArgs([]string{"--name", "web", "--tombstone", tomb}, helper("stamps", file, "3"))...)
	pid := readyPid(t, file)

	// The record is written off vigil's loop, so it may trail the child.
	waitFile(t, tomb, `"state":"running"`, 10*time.Second)
	running := readTombstone(t, tomb)
	running.check(t, map[string]any{"name": "web", "state": "running", "pid": pid, "ended_at": nil, "class": nil,
		"exit_status": nil, "exit_code": nil, "signal": nil, "core_dumped": nil})
	startedAt := running.time(t, "started_at")
	if startedAt.Before(before.Add(-time.Second)) || startedAt.After(time.Now()) {
		t.Errorf("started_at %s is not when the child started (test began %s)", startedAt, before)
	}
	fi, err := os.Stat(tomb)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o644 {
		t.Errorf("tombstone mode %v, want -rw-r--r--", fi.Mode())
	}

	r.signal(unix.SIGTERM)
	r.expect(3)
	exited := readTombstone(t, tomb)
	exited.check(t, map[string]any{"name": "web", "state": "exited", "pid": pid, "started_at": running["started_at"],
		"class": "failure", "exit_status": 3, "exit_code": 3, "signal": "", "core_dumped": false})
	if endedAt := exited.time(t, "ended_at"); endedAt.Before(startedAt) || endedAt.After(time.Now()) {
		t.Errorf("ended_at %s is not between started_at %s and now", endedAt, startedAt)
	}
	if fi, err := os.Stat(tomb); err != nil || fi.Mode() != 0o644 {
		t.Errorf("exited tombstone: mode %v (err %v), want -rw-r--r--", fi.Mode(), err)
	}
	if d, _ := os.ReadDir(dir); len(d) != 2 {
		t.Errorf("directory holds %d entries, want the tombstone and the helper's file: %v", len(d), d)
	}
}

func TestTombstoneNameDefaultsToCommand(t *testing.T) {
	tomb := filepath.Join(t.TempDir(), "tomb.json")
	start(t, opts{pid1: true}, vigilArgs([]string{"--tombstone", tomb}, helper("die", "SEGV"))...).expect(139)
	readTombstone(t, tomb).check(t, map[string]any{"name": filepath.Base(self), "state": "exited", "class": "fault",
		"exit_status": 139, "exit_code": nil, "signal": "SIGSEGV"})
}

func TestTombstoneReadersNeverSeeAPartialRecord(t *testing.T) {
	dir := t.TempDir()
	tomb := filepath.Join(dir, "tomb.json")
	// A large record: a writer that truncated and then wrote would leave a
	// window wide enough for the reader below to fall into. (An argument or
	// variable may hold at most 128KiB.)
	name := strings.Repeat("n", 120<<10)
	stop := make(chan struct{})
	type result struct {
		reads   int
		states  map[string]int
		invalid []string
	}
	done := make(chan result)
	go func() {
		res := result{states: map[string]int{}}
		for {
			select {
			case <-stop:
				done <- res
				return
			default:
			}
			b, err := os.ReadFile(tomb)
			if os.IsNotExist(err) {
				continue // before the first write
			}
			res.reads++
			var ts struct {
				Name, State string
			}
			if err != nil {
				res.invalid = append(res.invalid, err.Error())
			} else if err := json.Unmarshal(b, &ts); err != nil || ts.Name != name {
				res.invalid = append(res.invalid, fmt.Sprintf("%d bytes: %v", len(b), err))
			} else {
				res.states[ts.State]++
			}
		}
	}()
	const runs = 20
	for i := 0; i < runs; i++ {
		start(t, opts{pid1: true, env: []string{"VIGIL_NAME=" + name}},
			vigilArgs([]string{"--tombstone", tomb}, helper("exit", "0"))...).expect(0)
	}
	close(stop)
	res := <-done
	if len(res.invalid) > 0 {
		t.Errorf("%d of %d reads saw a partial or invalid tombstone, e.g. %s", len(res.invalid), res.reads, res.invalid[0])
	}
	// starting is written at start, before the child runs (the room and
	// the lock are taken then).
	if res.states["running"] == 0 || res.states["exited"] == 0 || len(res.states)-min(1, res.states["starting"]) != 2 {
		t.Errorf("reader saw states %v, want running and exited, nothing else but starting", res.states)
	}
	t.Logf("%d runs, %d reads: %v", runs, res.reads, res.states)
	if d, _ := os.ReadDir(dir); len(d) != 1 {
		t.Errorf("temporary files left next to the tombstone: %v", d)
	}
}

func TestTombstoneReplacesPlantedSymlink(t *testing.T) {
	dir := t.TempDir()
	victim, tomb := filepath.Join(dir, "victim"), filepath.Join(dir, "tomb.json")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, tomb); err != nil {
		t.Fatal(err)
	}
	start(t, opts{pid1: true}, vigilArgs([]string{"--tombstone", tomb}, helper("exit", "0"))...).expect(0)
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Errorf("the symlink's target was written through: it holds %q", b)
	}
	fi, err := os.Lstat(tomb)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o644 {
		t.Errorf("tombstone is %v, want a regular file -rw-r--r-- in place of the symlink", fi.Mode())
	}
	readTombstone(t, tomb).check(t, map[string]any{"state": "exited", "class": "success"})
}

func TestTerminationLogSummarisesWithin4096Bytes(t *testing.T) {
	tests := []struct {
		name  string
		flags []string
		argv  []string
		want  int
		first string
		last  string
	}{
		{"failure with a long stderr tail", []string{"--capture-tail", "65536"}, helper("stderr-lines", "5000", "1"), 1,
			filepath.Base(self) + ": failure, exit status 1\n", "line 05000 of the child's complaint\n"},
		{"killed by a signal", nil, helper("die", "TERM"), 143, filepath.Base(self) + ": signal, exit status 143 (SIGTERM)\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := filepath.Join(t.TempDir(), "termination-log")
			r := start(t, opts{pid1: true}, vigilArgs(append(tt.flags, "--termination-log", log), tt.argv)...)
			r.expect(tt.want)
			b, err := os.ReadFile(log)
			if err != nil {
				t.Fatalf("no termination log: %v\nstderr:\n%s", err, r.stderr)
			}
			got := string(b)
			if len(got) > 4096 {
				t.Errorf("termination log is %d bytes, more than the kubelet's 4096", len(got))
			}
			if !strings.HasPrefix(got, tt.first) {
				t.Errorf("termination log begins %q, want %q", got[:min(len(got), 80)], tt.first)
			}
			if tt.last == "" {
				if got != tt.first {
					t.Errorf("termination log is %q, want just %q", got, tt.first)
				}
				return
			}
			if !strings.HasSuffix(got, tt.last) {
				t.Errorf("termination log ends %q, want the last line of stderr %q", got[max(0, len(got)-80):], tt.last)
			}
			tail, ok := strings.CutPrefix(got, tt.first+"last stderr:\n")
			if !ok || !strings.HasPrefix(tail, "line ") || len(got) < 4000 {
				t.Errorf("want the header, then as many whole lines of stderr as fit; got %d bytes:\n%.300s", len(got), got)
			}
		})
	}
}

// waitInotify waits until process pid has an inotify watch: vigil is then
// waiting for its targets, past everything it does before.
func waitInotify(t *testing.T, pid int) {
	t.Helper()
	waitFor(t, 10*time.Second, fmt.Sprintf("vigil (pid %d) to set an inotify watch", pid), func() bool {
		fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fdinfo/*", pid))
		for _, fd := range fds {
			if b, _ := os.ReadFile(fd); strings.Contains(string(b), "inotify wd:") {
				return true
			}
		}
		return false
	})
}

func TestWaitForFileHoldsTheChildBack(t *testing.T) {
	dir := t.TempDir()
	report := filepath.Join(dir, "started")
	// Neither the file nor its directory exists yet.
	target := filepath.Join(dir, "later", "ready")
	r := start(t, opts{pid1: true}, vigilArgs([]string{"--wait-for", "file:" + target}, helper("started", report))...)
	waitInotify(t, r.cmd.Process.Pid)
	if _, err := os.Stat(report); !os.IsNotExist(err) {
		t.Fatalf("the child started before %s existed", target)
	}
	created := time.Now()
	if err := os.Mkdir(filepath.Dir(target), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r.expect(0)
	if at := stampOf(t, report, "started"); at.Before(created) {
		t.Errorf("the child started %s before the file was created", created.Sub(at))
	} else if at.Sub(created) > 3*time.Second {
		t.Errorf("the child started %s after the file was created", at.Sub(created))
	}
}

// synsTo counts the TCP connection attempts (SYNs) to addr, an IPv4
// address on the loopback device, as a packet socket sees them arrive: a
// client's retries are then an event to wait for.
func synsTo(t *testing.T, addr string) *atomic.Int64 {
	t.Helper()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	const ipProto = unix.ETH_P_IP<<8&0xff00 | unix.ETH_P_IP>>8 // in network byte order
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, ipProto)
	if err != nil {
		t.Fatalf("a packet socket to watch the loopback: %v", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: ipProto, Ifindex: lo.Index}); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	// A timeout lets the reader see the end of the test.
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 50_000}); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	var syns atomic.Int64
	quit, stopped := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(quit); <-stopped; unix.Close(fd) })
	go func() {
		defer close(stopped)
		buf := make([]byte, 128) // the headers are enough
		for {
			select {
			case <-quit:
				return
			default:
			}
			n, from, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				continue
			}
			// The loopback shows each packet twice: going out, coming in.
			if sll, ok := from.(*unix.SockaddrLinklayer); !ok || sll.Pkttype == unix.PACKET_OUTGOING {
				continue
			}
			p := buf[:n]
			if len(p) < 20 || p[9] != unix.IPPROTO_TCP || [4]byte(p[16:20]) != ap.Addr().As4() {
				continue
			}
			tcp := p[int(p[0]&0x0f)*4:]
			if len(tcp) >= 14 && binary.BigEndian.Uint16(tcp[2:4]) == ap.Port() && tcp[13]&0x12 == 0x02 { // SYN, not SYN-ACK
				syns.Add(1)
			}
		}
	}()
	return &syns
}

// freePort returns a local TCP port that nothing listens on.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestWaitForTCPHoldsTheChildBack(t *testing.T) {
	report := filepath.Join(t.TempDir(), "started")
	addr := freePort(t)
	syns := synsTo(t, addr)
	r := start(t, opts{pid1: true}, vigilArgs([]string{"--wait-for", "tcp:" + addr}, helper("started", report))...)
	// Three refused connections (the first, then after backoffs of 50
	// and 100 ms) before the port opens.
	waitFor(t, 10*time.Second, "three connection attempts to "+addr, func() bool { return syns.Load() >= 3 })
	if _, err := os.Stat(report); !os.IsNotExist(err) {
		t.Fatalf("the child started before %s accepted connections\nstderr:\n%s", addr, r.stderr)
	}
	t.Logf("%d connection attempts refused before the port opens", syns.Load())
	listening := time.Now()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening again on %s: %v", addr, err)
	}
	defer l.Close()
	go acceptAll(l)
	r.expect(0)
	if at := stampOf(t, report, "started"); at.Before(listening) {
		t.Errorf("the child started %s before the port opened", listening.Sub(at))
	} else if at.Sub(listening) > 3*time.Second {
		t.Errorf("the child started %s after the port opened; the backoff is capped at 1s", at.Sub(listening))
	}
}

func TestWaitForTimeoutExits124(t *testing.T) {
	dir := t.TempDir()
	report, never := filepath.Join(dir, "started"), filepath.Join(dir, "never")
	addr := freePort(t)
	const timeout = 300 * time.Millisecond
	t0 := time.Now()
	status, stderr := vigil(t, opts{pid1: true}, vigilArgs([]string{"--wait-for", "file:" + never,
		"--wait-for", "tcp:" + addr, "--wait-timeout", timeout.String()}, helper("started", report))...)
	took := time.Since(t0)
	if status != 124 {
		t.Fatalf("vigil exited %d, want 124\nstderr:\n%s", status, stderr)
	}
	for _, want := range []string{"file:" + never, "tcp:" + addr, "not started"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("message does not say %q\nstderr:\n%s", want, stderr)
		}
	}
	if _, err := os.Stat(report); !os.IsNotExist(err) {
		t.Errorf("the child started although its dependencies never came up")
	}
	if took < timeout || took > timeout+3*time.Second {
		t.Errorf("vigil gave up after %s, want about the --wait-timeout of %s", took, timeout)
	}
}

func TestStopOnTombstoneStopsTheSidecar(t *testing.T) {
	dir := t.TempDir()
	mainTomb, sideTomb := filepath.Join(dir, "main.json"), filepath.Join(dir, "sidecar.json")
	mainFile, sideFile := filepath.Join(dir, "main"), filepath.Join(dir, "sidecar")
	// The sidecar starts first, before the main tombstone exists.
	side := start(t, opts{pid1: true}, vigilArgs([]string{"--stop-on", "tombstone:" + mainTomb, "--tombstone", sideTomb,
		"--grace", "5s"}, helper("stamps", sideFile, "0"))...)
	readyPid(t, sideFile)
	main := start(t, opts{pid1: true}, vigilArgs([]string{"--tombstone", mainTomb}, helper("stamps", mainFile, "0"))...)
	readyPid(t, mainFile)
	// The record is written off vigil's loop, so it may trail the child.
	waitFile(t, mainTomb, `"state":"running"`, 10*time.Second)
	readTombstone(t, mainTomb).check(t, map[string]any{"state": "running"})
	// A running main container does not stop the sidecar.
	if names, _ := stampsOf(t, sideFile); len(names) != 0 {
		t.Fatalf("sidecar received %v while the main container ran\nstderr:\n%s", names, side.stderr)
	}
	main.signal(unix.SIGTERM)
	main.expect(0)
	mainEnded := readTombstone(t, mainTomb).time(t, "ended_at")
	side.expect(0) // its child exits 0 on SIGTERM
	names, at := stampsOf(t, sideFile)
	if strings.Join(names, ",") != "SIGTERM" {
		t.Fatalf("sidecar's child received %v, want SIGTERM\nstderr:\n%s", names, side.stderr)
	}
	if at[0].Before(mainEnded) {
		t.Errorf("sidecar was stopped %s before the main tombstone said exited", mainEnded.Sub(at[0]))
	}
	readTombstone(t, sideTomb).check(t, map[string]any{"state": "exited", "class": "stopped", "exit_status": 0,
		"exit_code": 0, "signal": ""})
	// A stop on purpose is told by the record; the log stays quiet.
	if strings.Contains(side.stderr.String(), "logger=vigil") {
		t.Errorf("sidecar's vigil logged at the default level\nstderr:\n%s", side.stderr)
	}
}

// publicCopy copies the test binary where any user may run it: the one go
// test built sits in a directory only root can enter.
func publicCopy(t *testing.T) (bin, dir string) {
	t.Helper()
	dir = t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o777|os.ModeSticky); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(dir, "e2e.test")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, dir
}

// passwdEntry returns uid, gid, home and the supplementary gids of name in
// this machine's /etc/passwd and /etc/group, or ok false.
func passwdEntry(name string) (uid, gid, home string, groups []string, ok bool) {
	b, _ := os.ReadFile("/etc/passwd")
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Split(line, ":"); len(f) >= 7 && f[0] == name {
			uid, gid, home, ok = f[2], f[3], f[5], true
		}
	}
	groups = []string{gid}
	b, _ = os.ReadFile("/etc/group")
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 4 || f[2] == gid {
			continue
		}
		for _, m := range strings.Split(f[3], ",") {
			if m == name {
				groups = append(groups, f[2])
			}
		}
	}
	return
}

func TestRunAsUser(t *testing.T) {
	needRoot(t)
	bin, dir := publicCopy(t)
	tests := []struct {
		name     string
		flags    []string
		uid, gid string
		groups   string
		home     string
		nnp      string
	}{
		{"numeric uid:gid", []string{"-u", "65534:65534"}, "65534", "65534", "65534", "", "0"},
		{"numeric uid unknown to passwd gets gid 0", []string{"-u", "12345"}, "12345", "0", "0", "/", "0"},
		{"--no-new-privs", []string{"--no-new-privs", "-u", "65534:65534"}, "65534", "65534", "65534", "", "1"},
	}
	if uid, gid, home, groups, ok := passwdEntry("nobody"); ok {
		tests = append(tests, struct {
			name     string
			flags    []string
			uid, gid string
			groups   string
			home     string
			nnp      string
		}{"name from /etc/passwd", []string{"--user", "nobody"}, uid, gid, strings.Join(groups, " "), home, "0"})
		tests[0].home, tests[2].home = home, home // 65534 is nobody here too
	} else {
		t.Log("no user nobody in /etc/passwd: the by-name case is left to the runc test")
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			report := filepath.Join(dir, fmt.Sprintf("ids%d", i))
			start(t, opts{pid1: true}, vigilArgs(tt.flags, []string{bin, "ids", report})...).expect(0)
			got := waitFile(t, report, "HOME:", time.Second)
			want := fmt.Sprintf("Uid: %[1]s %[1]s %[1]s %[1]s\nGid: %[2]s %[2]s %[2]s %[2]s\nGroups: %[3]s\n"+
				"CapPrm: 0000000000000000\nCapEff: 0000000000000000\nNoNewPrivs: %[4]s\n",
				tt.uid, tt.gid, tt.groups, tt.nnp)
			if tt.home != "" {
				want += "HOME: " + tt.home + "\n"
			}
			if !strings.HasPrefix(got, want) || (tt.home != "" && got != want) {
				t.Errorf("the child reports:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestRunAsUserCanStillBeStopped(t *testing.T) {
	bin, dir := publicCopy(t)
	file := filepath.Join(dir, "stamps")
	r := start(t, opts{pid1: true}, vigilArgs([]string{"-u", "65534:65534", "--grace", "1s"}, []string{bin, "stamps", file, "stay"})...)
	readyPid(t, file)
	r.signal(unix.SIGTERM)
	r.expect(137) // vigil stayed root: it could signal, then kill, an unprivileged child
	if names, _ := stampsOf(t, file); strings.Join(names, ",") != "SIGTERM" {
		t.Errorf("child received %v, want SIGTERM", names)
	}
}

func TestUnknownUserExits2AndStartsNothing(t *testing.T) {
	for _, spec := range []string{"no-such-user", "65534:no-such-group", "nobody:"} {
		t.Run(spec, func(t *testing.T) {
			report := filepath.Join(t.TempDir(), "started")
			status, stderr := vigil(t, opts{pid1: true}, vigilArgs([]string{"-u", spec}, helper("started", report))...)
			if status != 2 {
				t.Errorf("vigil exited %d, want 2\nstderr:\n%s", status, stderr)
			}
			if !strings.Contains(stderr, spec) {
				t.Errorf("message does not name %q\nstderr:\n%s", spec, stderr)
			}
			if _, err := os.Stat(report); !os.IsNotExist(err) {
				t.Errorf("the command started although the user is unknown")
			}
		})
	}
}

func TestStopOnFileStopsTheChild(t *testing.T) {
	dir := t.TempDir()
	file, tomb := filepath.Join(dir, "stamps"), filepath.Join(dir, "tomb.json")
	stop := filepath.Join(dir, "later", "stop") // its directory does not exist yet either
	r := start(t, opts{pid1: true}, vigilArgs([]string{"--stop-on", "file:" + stop, "--tombstone", tomb},
		helper("stamps", file, "0"))...)
	readyPid(t, file)
	if err := os.Mkdir(filepath.Dir(stop), 0o755); err != nil {
		t.Fatal(err)
	}
	created := time.Now()
	if err := os.WriteFile(stop, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r.expect(0)
	names, at := stampsOf(t, file)
	if strings.Join(names, ",") != "SIGTERM" {
		t.Fatalf("child received %v, want SIGTERM\nstderr:\n%s", names, r.stderr)
	}
	if at[0].Before(created) {
		t.Errorf("child was stopped %s before %s appeared", created.Sub(at[0]), stop)
	}
	readTombstone(t, tomb).check(t, map[string]any{"state": "exited", "class": "stopped", "exit_status": 0})
}

func TestStopSignalWhileWaitingStartsNothing(t *testing.T) {
	dir := t.TempDir()
	report := filepath.Join(dir, "started")
	r := start(t, opts{pid1: true}, vigilArgs([]string{"--wait-for", "file:" + filepath.Join(dir, "never")},
		helper("started", report))...)
	waitInotify(t, r.cmd.Process.Pid)
	r.signal(unix.SIGTERM)
	r.expect(143) // as if the command had been killed by it: there is no command to pass it to
	if !strings.Contains(r.stderr.String(), "not started") {
		t.Errorf("vigil did not say the command was not started\nstderr:\n%s", r.stderr)
	}
	if _, err := os.Stat(report); !os.IsNotExist(err) {
		t.Errorf("the command started after the stop signal")
	}
}

func init() {
	helpers["exit-when"] = exitWhen
}

// exitWhen says "ready" in FILE, waits until PATH exists and exits CODE.
func exitWhen(args []string) int {
	writeFile(args[0], "ready")
	if !poll(time.Minute, func() bool { _, err := os.Stat(args[1]); return err == nil }) {
		fmt.Fprintln(os.Stderr, "exit-when:", args[1], "did not appear within a minute")
		return 97
	}
	return mustAtoi(args[2])
}

func TestChildFailingDuringStopOnDrainIsAFailure(t *testing.T) {
	// --stop-on fires and vigil drains before signalling; the child fails
	// by itself meanwhile. vigil did not stop it: class failure, status 3,
	// not a stop that exits 0.
	dir := t.TempDir()
	ready, trigger, tomb := filepath.Join(dir, "ready"), filepath.Join(dir, "trigger"), filepath.Join(dir, "tomb.json")
	r := start(t, opts{pid1: true}, append([]string{"--stop-on", "file:" + trigger, "--drain", "5s",
		"--tombstone", tomb, "--"}, helper("exit-when", ready, trigger, "3")...)...)
	waitFile(t, ready, "ready", 10*time.Second)
	if err := os.WriteFile(trigger, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r.expect(3)
	readTombstone(t, tomb).check(t, map[string]any{"state": "exited", "class": "failure", "exit_status": 3})
}

// TestCaptureTailWithNoCleanupIsRefused: the captured stderr is a pipe
// that only vigil reads, so a daemon --no-cleanup leaves running would die
// of SIGPIPE at its next write once vigil has exited. The combination is
// refused at start, as PID 1 and not: one line, exit 2, nothing started.
func TestCaptureTailWithNoCleanupIsRefused(t *testing.T) {
	for _, pid1 := range []bool{false, true} {
		for _, o := range []opts{
			{pid1: pid1},
			{pid1: pid1, env: []string{"VIGIL_CAPTURE_TAIL=4096", "VIGIL_NO_CLEANUP=true"}},
		} {
			if pid1 {
				needRoot(t)
			}
			never := filepath.Join(t.TempDir(), "never")
			args := helper("started", never)
			if len(o.env) == 0 {
				args = append([]string{"--capture-tail", "4096", "--no-cleanup", "--"}, args...)
			}
			status, stderr := vigil(t, o, args...)
			if status != 2 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "--capture-tail and --no-cleanup") {
				t.Errorf("pid1 %v, env %q: status %d, stderr %q; want 2 and one line naming both flags", pid1, o.env, status, stderr)
			}
			if _, err := os.Stat(never); !os.IsNotExist(err) {
				t.Errorf("pid1 %v, env %q: the command started", pid1, o.env)
			}
		}
	}
}
