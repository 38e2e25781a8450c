package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func init() {
	helpers["as"] = asPid
	helpers["core"] = withCore
	helpers["hookdump"] = hookdump
	helpers["hooklog"] = hooklog
	helpers["hang-hook"] = hangHook
	helpers["hog"] = hog
	helpers["spew"] = spew
	helpers["spew-progress"] = spewProgress
}

// asPid writes its pid to FILE, then becomes helper NAME with ARGS: the tests
// learn the child's pid in vigil's namespace without trusting vigil.
func asPid(args []string) int {
	writeFile(args[0], strconv.Itoa(os.Getpid()))
	return runHelper(args[1], args[2:])
}

// withCore sets RLIMIT_CORE to unlimited ("on") or 0 ("off") and changes to DIR,
// where a core_pattern without a path writes the core, then becomes helper
// NAME with ARGS.
func withCore(args []string) int {
	var lim uint64
	if args[0] == "on" {
		lim = unix.RLIM_INFINITY
	}
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: lim, Max: lim}); err != nil {
		fmt.Fprintln(os.Stderr, "core: setrlimit:", err)
		return 90
	}
	if err := os.Chdir(args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "core:", err)
		return 90
	}
	return runHelper(args[2], args[3:])
}

// hookReport is what hookdump saw, as JSON in its FILE.
type hookReport struct {
	Env     map[string]string // every VIGIL_* variable, present even when empty
	Stdin   string
	Tail    *string // the content of $VIGIL_STDERR_TAIL, nil when unset
	TailErr string
	Pid     int
	Ppid    int
	Pgid    int
	Zombies int // other processes in the namespace, once they had a chance to be reaped
	Others  int
}

// hookdump is a hook: it reads its stdin to the end, collects its VIGIL_*
// environment, the stderr tail file and a census of the namespace, and
// writes them as a hookReport to FILE.
func hookdump(args []string) int {
	rep := hookReport{Env: map[string]string{}, Pid: os.Getpid(), Ppid: os.Getppid(), Pgid: unix.Getpgrp()}
	stdin, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hookdump: stdin:", err)
		return 90
	}
	rep.Stdin = string(stdin)
	for _, kv := range os.Environ() {
		// Go, like getenv(3), sees the first of two values for a name.
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "VIGIL_") {
			rep.Env[k] = v
		}
	}
	if p, ok := rep.Env["VIGIL_STDERR_TAIL"]; ok {
		if b, err := os.ReadFile(p); err != nil {
			rep.TailErr = err.Error()
		} else {
			s := string(b)
			rep.Tail = &s
		}
	}
	// Earlier hooks and whatever they left behind are vigil's to reap;
	// give its loop, which runs while this hook does, a moment to do so.
	poll(5*time.Second, func() bool {
		rep.Zombies, rep.Others = census()
		return rep.Zombies == 0 && rep.Others == 0
	})
	b, err := json.Marshal(rep)
	if err != nil {
		panic(err)
	}
	writeFile(args[0], string(b))
	return 0
}

// hooklog is a hook: it appends NAME (its base name, so that a script
// "#!/path/to/e2e.test hooklog" in a hooks directory logs its file name) to
// the file $E2E_HOOKLOG and exits with STATUS (default 0).
func hooklog(args []string) int {
	f, err := os.OpenFile(os.Getenv("E2E_HOOKLOG"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hooklog:", err)
		return 90
	}
	defer f.Close()
	if _, err := f.WriteString(filepath.Base(args[0]) + "\n"); err != nil {
		fmt.Fprintln(os.Stderr, "hooklog:", err)
		return 90
	}
	if len(args) > 1 {
		return mustAtoi(args[1])
	}
	return 0
}

// hangHook is a hook that never ends: it starts a grandchild in its own
// process group, writes "hook=PID grandchild=PID" to FILE and sleeps.
func hangHook(args []string) int {
	cmd := exec.Command(os.Args[0], "sleep")
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "hang-hook:", err)
		return 90
	}
	writeFile(args[0], fmt.Sprintf("hook=%d grandchild=%d", os.Getpid(), cmd.Process.Pid))
	time.Sleep(time.Hour)
	return 0
}

// hog maps and touches anonymous memory, a MiB at a time, up to MIB MiB.
// In a memory cgroup with a lower limit the OOM killer ends it; if it
// survives it exits 90.
func hog(args []string) int {
	for i := 0; i < mustAtoi(args[0]); i++ {
		m, err := unix.Mmap(-1, 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			fmt.Fprintln(os.Stderr, "hog: mmap:", err)
			return 91
		}
		for off := 0; off < len(m); off += 4096 {
			m[off] = 1
		}
	}
	return 90
}

// spew writes spewStream(TOTAL) to its stderr in writes of uneven sizes and
// exits 0.
func spew(args []string) int {
	data := spewStream(mustAtoi(args[0]))
	seed := uint32(1)
	for len(data) > 0 {
		seed = seed*1664525 + 1013904223
		n := min(len(data), 1+int(seed>>16)) // 1 to 65536 bytes
		if _, err := os.Stderr.Write(data[:n]); err != nil {
			return 91
		}
		data = data[n:]
	}
	return 0
}

// spewProgress writes spewStream(TOTAL) to its stderr 16 KiB at a time and
// after each write records in FILE how many bytes it has written.
func spewProgress(args []string) int {
	data := spewStream(mustAtoi(args[1]))
	for done := 0; done < len(data); {
		n, err := os.Stderr.Write(data[done:min(len(data), done+16<<10)])
		if err != nil {
			return 91
		}
		done += n
		writeFile(args[0], strconv.Itoa(done))
	}
	return 0
}

// spewStream is TOTAL bytes of numbered lines of varying length, so that a lost,
// repeated or reordered piece shows.
func spewStream(total int) []byte {
	var b bytes.Buffer
	b.Grow(total + 100)
	for i := 0; b.Len() < total; i++ {
		fmt.Fprintf(&b, "%09d %s\n", i, strings.Repeat(string(rune('a'+i%26)), i%71))
	}
	return b.Bytes()[:total]
}

// hookLine quotes argv as one hook command line.
func hookLine(argv ...string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// readReport waits for the hookReport in file.
func readReport(t *testing.T, file, stderr string) hookReport {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("the hook left no report: %v\nvigil's stderr:\n%s", err, clipLog(stderr))
	}
	var rep hookReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("hook report %s: %v", b, err)
	}
	return rep
}

// clipLog keeps the end of a long stderr for failure messages.
func clipLog(s string) string {
	const max = 8 << 10
	if len(s) > max {
		return fmt.Sprintf("[... %d bytes ...]%s", len(s)-max, s[len(s)-max:])
	}
	return s
}

// hookFacts is what a hook must be told about one termination.
type hookFacts struct {
	class   string
	status  int
	code    string // "" when signalled
	signal  string // "" when it exited
	core    string // "0" or "1"
	pid     int
	command []string
	tail    *string // nil: no --capture-tail
}

// checkFacts compares, field by field, the environment and the JSON a hook
// received with want, and checks they agree with each other and with the
// window [before, after] in which vigil ran.
func checkFacts(t *testing.T, rep hookReport, want hookFacts, before, after time.Time, stderr string) {
	t.Helper()
	defer func() {
		if t.Failed() {
			t.Logf("vigil's stderr:\n%s", clipLog(stderr))
		}
	}()
	env := rep.Env
	wantEnv := map[string]string{
		"VIGIL_CLASS":       want.class,
		"VIGIL_EXIT_STATUS": strconv.Itoa(want.status),
		"VIGIL_EXIT_CODE":   want.code,
		"VIGIL_SIGNAL":      want.signal,
		"VIGIL_CORE_DUMPED": want.core,
		"VIGIL_PID":         strconv.Itoa(want.pid),
		"VIGIL_COMMAND":     strings.Join(want.command, " "),
	}
	for k, v := range wantEnv {
		got, ok := env[k]
		if !ok {
			t.Errorf("%s is not set, want %q", k, v)
		} else if got != v {
			t.Errorf("%s=%q, want %q", k, got, v)
		}
	}
	var envStart, envEnd time.Time
	for k, dst := range map[string]*time.Time{"VIGIL_STARTED_AT": &envStart, "VIGIL_ENDED_AT": &envEnd} {
		v, err := time.Parse(time.RFC3339, env[k])
		if err != nil {
			t.Errorf("%s=%q is not RFC 3339: %v", k, env[k], err)
			continue
		}
		*dst = v
		// RFC 3339 carries the offset; the window is checked to the second
		// it may have been rounded to.
		if v.Before(before.Add(-time.Second)) || v.After(after.Add(time.Second)) {
			t.Errorf("%s=%s is outside the run, %s to %s", k, v, before.Format(time.RFC3339Nano), after.Format(time.RFC3339Nano))
		}
	}
	dur, err := strconv.ParseInt(env["VIGIL_DURATION_MS"], 10, 64)
	if err != nil || dur < 0 {
		t.Errorf("VIGIL_DURATION_MS=%q, want a number of milliseconds", env["VIGIL_DURATION_MS"])
	}
	if !envStart.IsZero() && !envEnd.IsZero() {
		if envEnd.Before(envStart) {
			t.Errorf("VIGIL_ENDED_AT %s is before VIGIL_STARTED_AT %s", envEnd, envStart)
		}
		if d := envEnd.Sub(envStart).Milliseconds() - dur; d < -5 || d > 5 {
			t.Errorf("VIGIL_DURATION_MS=%d, but the times are %s apart", dur, envEnd.Sub(envStart))
		}
	}
	if want.tail == nil {
		if v, ok := env["VIGIL_STDERR_TAIL"]; ok {
			t.Errorf("VIGIL_STDERR_TAIL=%q without --capture-tail", v)
		}
	} else if rep.Tail == nil {
		t.Errorf("VIGIL_STDERR_TAIL=%q: cannot read it: %s", env["VIGIL_STDERR_TAIL"], rep.TailErr)
	} else if *rep.Tail != *want.tail {
		t.Errorf("the file in VIGIL_STDERR_TAIL holds %d bytes ending %q, want %d bytes ending %q",
			len(*rep.Tail), clipEnd(*rep.Tail), len(*want.tail), clipEnd(*want.tail))
	}

	// The JSON on stdin, field by field, with the exact set of fields.
	var js map[string]json.RawMessage
	if err := json.Unmarshal([]byte(rep.Stdin), &js); err != nil {
		t.Fatalf("the hook's stdin is not one JSON object: %v\n%q", err, rep.Stdin)
	}
	keys := []string{"class", "exit_status", "exit_code", "signal", "core_dumped", "pid", "command",
		"started_at", "ended_at", "duration_ms", "restarts", "ready", "ready_at", "status"}
	if want.tail != nil {
		keys = append(keys, "stderr_tail")
	}
	var gotKeys []string
	for k := range js {
		gotKeys = append(gotKeys, k)
	}
	slices.Sort(keys)
	slices.Sort(gotKeys)
	if !slices.Equal(gotKeys, keys) {
		t.Errorf("JSON fields %v, want %v", gotKeys, keys)
	}
	field := func(name string, dst any) bool {
		raw, ok := js[name]
		if !ok {
			return false
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			t.Errorf("JSON %s=%s: %v", name, raw, err)
			return false
		}
		return true
	}
	var (
		class, signal, started, ended string
		status, pid                   int
		durMS                         int64
		code                          *int
		coreDumped                    bool
		command                       []string
		tail                          string
	)
	if field("class", &class) && class != want.class {
		t.Errorf("JSON class=%q, want %q", class, want.class)
	}
	if field("exit_status", &status) && status != want.status {
		t.Errorf("JSON exit_status=%d, want %d", status, want.status)
	}
	if field("exit_code", &code) {
		switch {
		case want.code == "" && code != nil:
			t.Errorf("JSON exit_code=%d, want null for a signalled child", *code)
		case want.code != "" && (code == nil || strconv.Itoa(*code) != want.code):
			t.Errorf("JSON exit_code=%s, want %s", js["exit_code"], want.code)
		}
	}
	if field("signal", &signal) && signal != want.signal {
		t.Errorf("JSON signal=%q, want %q", signal, want.signal)
	}
	if field("core_dumped", &coreDumped) && coreDumped != (want.core == "1") {
		t.Errorf("JSON core_dumped=%v, want %v", coreDumped, want.core == "1")
	}
	if field("pid", &pid) && pid != want.pid {
		t.Errorf("JSON pid=%d, want %d", pid, want.pid)
	}
	if field("command", &command) && !slices.Equal(command, want.command) {
		t.Errorf("JSON command=%q, want %q", command, want.command)
	}
	if field("started_at", &started) && started != env["VIGIL_STARTED_AT"] {
		t.Errorf("JSON started_at=%q, VIGIL_STARTED_AT=%q", started, env["VIGIL_STARTED_AT"])
	}
	if field("ended_at", &ended) && ended != env["VIGIL_ENDED_AT"] {
		t.Errorf("JSON ended_at=%q, VIGIL_ENDED_AT=%q", ended, env["VIGIL_ENDED_AT"])
	}
	if field("duration_ms", &durMS) && durMS != dur {
		t.Errorf("JSON duration_ms=%d, VIGIL_DURATION_MS=%d", durMS, dur)
	}
	if want.tail != nil && field("stderr_tail", &tail) && tail != *want.tail {
		t.Errorf("JSON stderr_tail has %d bytes ending %q, want %d bytes ending %q",
			len(tail), clipEnd(tail), len(*want.tail), clipEnd(*want.tail))
	}

	// The hook itself: vigil's child, in a process group of its own, and
	// every process before it (the child, earlier hooks) reaped.
	if rep.Ppid != 1 {
		t.Errorf("hook's parent is %d, want vigil, PID 1", rep.Ppid)
	}
	if rep.Pgid != rep.Pid {
		t.Errorf("hook is in process group %d, want its own (%d)", rep.Pgid, rep.Pid)
	}
	if rep.Zombies != 0 || rep.Others != 0 {
		t.Errorf("while the hook ran: %d zombies and %d other processes, want none", rep.Zombies, rep.Others)
	}
}

func clipEnd(s string) string {
	if len(s) > 40 {
		return s[len(s)-40:]
	}
	return s
}

// classHooks returns flags that log every class's hook and the on-exit hook
// to the file the E2E_HOOKLOG variable names, so a test can see that
// exactly one class ran, then on-exit.
func classHooks() []string {
	var args []string
	for _, c := range []string{"success", "failure", "signal", "fault", "kill", "oom", "timeout", "stopped", "exit"} {
		args = append(args, "--on-"+c, hookLine(helper("hooklog", c)...))
	}
	return args
}

// hookRun is one run of vigil as PID 1 whose hooks report.
type hookRun struct {
	status        int
	stderr        string
	before, after time.Time
	elapsed       time.Duration
	report        hookReport
	pid           int      // the child's, as it reported it
	command       []string // the child's argv
}

// runClass runs child (a helper's argv after "as PIDFILE") under vigil as
// PID 1 with flags, a hookdump hook for class and the class logger, and
// returns what happened.
func runClass(t *testing.T, o opts, class string, flags []string, child []string) hookRun {
	t.Helper()
	dir := t.TempDir()
	pidFile, report, log := filepath.Join(dir, "pid"), filepath.Join(dir, "report"), filepath.Join(dir, "hooks")
	var h hookRun
	h.command = helper("as", append([]string{pidFile}, child...)...)
	args := append(append([]string{}, flags...), classHooks()...)
	args = append(args, "--on-"+class, hookLine(helper("hookdump", report)...))
	args = append(append(args, "--"), h.command...)
	o.pid1 = true
	o.env = append(o.env, "E2E_HOOKLOG="+log)
	h.before = time.Now()
	r := start(t, o, args...)
	h.status = r.wait(30 * time.Second)
	h.after = time.Now()
	h.elapsed = h.after.Sub(h.before)
	h.stderr = r.stderr.String()
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatalf("no hook ran: %v\nvigil's stderr:\n%s", err, clipLog(h.stderr))
	}
	if got, want := strings.Join(strings.Fields(string(b)), ","), class+",exit"; got != want {
		t.Errorf("hooks ran for %s, want %s\nvigil's stderr:\n%s", got, want, clipLog(h.stderr))
	}
	pid, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the child never started: %v\nvigil's stderr:\n%s", err, clipLog(h.stderr))
	}
	h.pid = atoi(t, string(pid))
	h.report = readReport(t, report, h.stderr)
	return h
}

// coreWanted runs helper args once outside vigil, with the same core
// settings, and reports whether the kernel dumped a core: the ground truth
// vigil must agree with whatever core_pattern says.
func coreWanted(t *testing.T, args []string) string {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "E2E_HELPER=1")
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("%q outside vigil: %v, want it to die of a signal", args[1:], err)
	}
	ws := ee.Sys().(syscall.WaitStatus)
	if !ws.Signaled() {
		t.Fatalf("%q outside vigil: %v, want it to die of a signal", args[1:], err)
	}
	if ws.CoreDump() {
		return "1"
	}
	return "0"
}

func corePattern(t *testing.T) string {
	b, err := os.ReadFile("/proc/sys/kernel/core_pattern")
	if err != nil {
		t.Logf("core_pattern: %v", err)
	}
	return strings.TrimSpace(string(b))
}

func TestHookSeesHowTheChildEnded(t *testing.T) {
	coreDir := t.TempDir() // where cores land with a plain core_pattern; removed after
	tests := []struct {
		name  string
		class string
		flags []string
		env   []string
		child []string
		want  hookFacts
	}{
		{name: "exit 0 is success", class: "success", child: []string{"exit", "0"},
			want: hookFacts{status: 0, code: "0", core: "0"}},
		{name: "exit 3 is failure", class: "failure", child: []string{"exit", "3"},
			want: hookFacts{status: 3, code: "3", core: "0"}},
		{name: "exit 255 is failure", class: "failure", child: []string{"exit", "255"},
			want: hookFacts{status: 255, code: "255", core: "0"}},
		{name: "remapped status is what vigil exits with", class: "failure", flags: []string{"-e", "3"},
			child: []string{"exit", "3"}, want: hookFacts{status: 0, code: "3", core: "0"}},
		{name: "TERM is signal", class: "signal", child: []string{"die", "TERM"},
			want: hookFacts{status: 143, signal: "SIGTERM", core: "0"}},
		{name: "HUP is signal", class: "signal", child: []string{"die", "HUP"},
			want: hookFacts{status: 129, signal: "SIGHUP", core: "0"}},
		{name: "KILL is kill", class: "kill", child: []string{"die", "KILL"},
			want: hookFacts{status: 137, signal: "SIGKILL", core: "0"}},
		{name: "segfault without core is fault", class: "fault", child: []string{"core", "off", coreDir, "segv"},
			want: hookFacts{status: 139, signal: "SIGSEGV"}},
		{name: "segfault with core is fault", class: "fault", child: []string{"core", "on", coreDir, "segv"},
			want: hookFacts{status: 139, signal: "SIGSEGV"}},
		{name: "abort without core is fault", class: "fault", child: []string{"core", "off", coreDir, "abort"},
			want: hookFacts{status: 134, signal: "SIGABRT"}},
		{name: "abort with core is fault", class: "fault", child: []string{"core", "on", coreDir, "abort"},
			want: hookFacts{status: 134, signal: "SIGABRT"}},
		{name: "BUS is fault", class: "fault", child: []string{"core", "off", coreDir, "die", "BUS"},
			want: hookFacts{status: 135, signal: "SIGBUS"}},
		{name: "timeout that TERM ends is timeout", class: "timeout", flags: []string{"--timeout", "200ms"},
			child: []string{"sleep"}, want: hookFacts{status: 143, signal: "SIGTERM", core: "0"}},
		{name: "VIGIL_TIMEOUT and VIGIL_TIMEOUT_SIGNAL", class: "timeout",
			env:   []string{"VIGIL_TIMEOUT=200ms", "VIGIL_TIMEOUT_SIGNAL=HUP"},
			child: []string{"sleep"}, want: hookFacts{status: 129, signal: "SIGHUP", core: "0"}},
		{name: "stale VIGIL_ variables in vigil's environment are replaced", class: "failure",
			env: []string{"VIGIL_CLASS=stale", "VIGIL_EXIT_CODE=stale", "VIGIL_PID=stale",
				"VIGIL_STDERR_TAIL=/stale"},
			child: []string{"exit", "4"}, want: hookFacts{status: 4, code: "4", core: "0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.class == "fault" {
				tt.want.core = coreWanted(t, helper(tt.child[0], tt.child[1:]...))
				if p := corePattern(t); !strings.HasPrefix(p, "|") {
					// A plain pattern honours RLIMIT_CORE, so both answers
					// are exercised here.
					if want := map[string]string{"on": "1", "off": "0"}[tt.child[1]]; tt.want.core != want {
						t.Errorf("core_pattern %q with core %s: the kernel says core dumped=%s, want %s",
							p, tt.child[1], tt.want.core, want)
					}
				}
			}
			h := runClass(t, opts{env: tt.env}, tt.class, tt.flags, tt.child)
			if h.status != tt.want.status {
				t.Errorf("vigil exited %d, want %d\nstderr:\n%s", h.status, tt.want.status, clipLog(h.stderr))
			}
			tt.want.class, tt.want.pid, tt.want.command = tt.class, h.pid, h.command
			checkFacts(t, h.report, tt.want, h.before, h.after, h.stderr)
			// Quiet unless vigil knows more than the status says.
			line := "class=" + tt.class
			switch warns := hasLogLine(h.stderr, "WARN", "child ended", line); tt.class {
			case "oom", "fault", "timeout":
				if !warns {
					t.Errorf("vigil's stderr has no warning with %q:\n%s", line, clipLog(h.stderr))
				}
			case "kill":
				// Only a SIGKILL vigil did not send itself is news.
			default:
				if strings.Contains(h.stderr, "child ended") {
					t.Errorf("vigil logged the end of a %s at the default level:\n%s", tt.class, clipLog(h.stderr))
				}
			}
		})
	}
	// Cores, if any, went to coreDir; none may land where go test runs.
	if m, _ := filepath.Glob("core.[0-9]*"); len(m) > 0 || pathExists("core") {
		t.Errorf("core files in the package directory: %v", m)
	}
}

func TestTimeoutKillsChildThatIgnoresTERMAfterGrace(t *testing.T) {
	const timeout = time.Second
	for _, grace := range []time.Duration{time.Second, 0} {
		t.Run("grace "+grace.String(), func(t *testing.T) {
			ready := filepath.Join(t.TempDir(), "ready")
			h := runClass(t, opts{}, "timeout",
				[]string{"--timeout", timeout.String(), "--grace", grace.String()},
				[]string{"ignore-term", ready})
			if h.status != 137 {
				t.Errorf("vigil exited %d, want 137 (SIGKILL)\nstderr:\n%s", h.status, clipLog(h.stderr))
			}
			waitFile(t, ready, "ready", time.Second) // it was ignoring TERM when TERM came
			checkFacts(t, h.report, hookFacts{class: "timeout", status: 137, signal: "SIGKILL", core: "0",
				pid: h.pid, command: h.command}, h.before, h.after, h.stderr)
			// Killed after timeout+grace, not at the timeout and nowhere
			// near the default grace of 10s.
			want := timeout + grace
			if d := time.Duration(atoi(t, h.report.Env["VIGIL_DURATION_MS"])) * time.Millisecond; d < want || d > want+3*time.Second {
				t.Errorf("the child ran %s, want %s to %s", d, want, want+3*time.Second)
			}
			for _, msg := range []string{"timeout; stopping the child", "grace period over"} {
				if !strings.Contains(h.stderr, msg) {
					t.Errorf("vigil's stderr does not say %q:\n%s", msg, h.stderr)
				}
			}
		})
	}
}

// memoryCgroup creates a memory cgroup limited to limit bytes and returns
// its cgroup.procs, or skips the test saying why it cannot.
func memoryCgroup(t *testing.T, limit int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a memory cgroup")
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Skipf("no /proc/self/cgroup: %v", err)
	}
	name := fmt.Sprintf("vigil-e2e-oom-%d", os.Getpid())
	var v1Parents, v2Parents []string
	for _, line := range strings.Split(string(self), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2Parents = append(v2Parents, filepath.Join("/sys/fs/cgroup", parts[2]), "/sys/fs/cgroup")
		} else if slices.Contains(strings.Split(parts[1], ","), "memory") {
			v1Parents = append(v1Parents, filepath.Join("/sys/fs/cgroup/memory", parts[2]), "/sys/fs/cgroup/memory")
		}
	}
	var why []string
	try := func(parent string, setup func(dir string) error) string {
		dir := filepath.Join(parent, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			why = append(why, err.Error())
			return ""
		}
		t.Cleanup(func() { removeCgroup(t, dir) })
		if err := setup(dir); err != nil {
			why = append(why, fmt.Sprintf("%s: %v", dir, err))
			return ""
		}
		return filepath.Join(dir, "cgroup.procs")
	}
	write := func(file, v string) error { return os.WriteFile(file, []byte(v), 0o644) }
	lim := strconv.FormatInt(limit, 10)
	for _, p := range v1Parents {
		if _, err := os.Stat(filepath.Join(p, "memory.oom_control")); err != nil {
			why = append(why, err.Error())
			continue
		}
		if procs := try(p, func(dir string) error {
			if err := write(filepath.Join(dir, "memory.limit_in_bytes"), lim); err != nil {
				return err
			}
			// Without swap accounting the limit would not stop swapping.
			sw := filepath.Join(dir, "memory.memsw.limit_in_bytes")
			if _, err := os.Stat(sw); err == nil {
				return write(sw, lim)
			}
			return write(filepath.Join(dir, "memory.swappiness"), "0")
		}); procs != "" {
			return procs
		}
	}
	for _, p := range v2Parents {
		ctl, err := os.ReadFile(filepath.Join(p, "cgroup.controllers"))
		if err != nil || !slices.Contains(strings.Fields(string(ctl)), "memory") {
			why = append(why, p+": no memory controller")
			continue
		}
		sub, _ := os.ReadFile(filepath.Join(p, "cgroup.subtree_control"))
		if !slices.Contains(strings.Fields(string(sub)), "memory") {
			// Fails when p holds processes and is not the root: a v2 cgroup
			// cannot both hold processes and give controllers to children.
			if err := write(filepath.Join(p, "cgroup.subtree_control"), "+memory"); err != nil {
				why = append(why, fmt.Sprintf("%s: enable memory for children: %v", p, err))
				continue
			}
		}
		if procs := try(p, func(dir string) error {
			if err := write(filepath.Join(dir, "memory.max"), lim); err != nil {
				return err
			}
			if sw := filepath.Join(dir, "memory.swap.max"); pathExists(sw) {
				return write(sw, "0")
			}
			return nil
		}); procs != "" {
			return procs
		}
	}
	t.Skipf("no usable memory cgroup (v1 or v2) to limit: %s", strings.Join(why, "; "))
	return ""
}

func pathExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// removeCgroup removes dir once the processes in it are gone; they may take
// a moment to leave after vigil's exit has been seen.
func removeCgroup(t *testing.T, dir string) {
	var err error
	poll(10*time.Second, func() bool { err = unix.Rmdir(dir); return !errors.Is(err, unix.EBUSY) })
	if err != nil && !errors.Is(err, unix.ENOENT) {
		t.Errorf("removing cgroup %s: %v", dir, err)
	}
}

func TestOOMKillIsClassifiedOOM(t *testing.T) {
	procs := memoryCgroup(t, 32<<20)
	t.Logf("memory cgroup: %s", filepath.Dir(procs))
	h := runClass(t, opts{env: []string{"E2E_CGROUP_PROCS=" + procs}}, "oom", nil, []string{"hog", "1024"})
	if h.status != 137 {
		t.Errorf("vigil exited %d, want 137 (SIGKILL by the OOM killer)\nstderr:\n%s", h.status, clipLog(h.stderr))
	}
	checkFacts(t, h.report, hookFacts{class: "oom", status: 137, signal: "SIGKILL", core: "0",
		pid: h.pid, command: h.command}, h.before, h.after, h.stderr)
}

func TestHangingHookIsKilledAfterHookTimeout(t *testing.T) {
	dir := t.TempDir()
	pids, report := filepath.Join(dir, "pids"), filepath.Join(dir, "report")
	before := time.Now()
	r := start(t, opts{pid1: true}, "--hook-timeout", "1s",
		"--on-failure", hookLine(helper("hang-hook", pids)...),
		"--on-failure", hookLine(helper("hookdump", report)...),
		"--", self, "exit", "3")
	status := r.wait(20 * time.Second)
	took := time.Since(before)
	stderr := r.stderr.String()
	if status != 3 {
		t.Errorf("vigil exited %d, want the child's 3\nstderr:\n%s", status, stderr)
	}
	if took > 5*time.Second {
		t.Errorf("vigil took %s with a 1s hook timeout", took)
	}
	got := waitFile(t, pids, "grandchild=", time.Second)
	if !strings.Contains(stderr, "hook timed out") {
		t.Errorf("vigil's stderr does not say the hook timed out:\n%s", stderr)
	}
	// The next hook ran, and by then the hung hook and the grandchild in
	// its process group were killed and reaped.
	rep := readReport(t, report, stderr)
	if rep.Zombies != 0 || rep.Others != 0 {
		t.Errorf("after the hung hook (%s): %d zombies, %d other processes, want none\nstderr:\n%s",
			got, rep.Zombies, rep.Others, stderr)
	}
	if rep.Env["VIGIL_EXIT_STATUS"] != "3" {
		t.Errorf("next hook got VIGIL_EXIT_STATUS=%q, want 3", rep.Env["VIGIL_EXIT_STATUS"])
	}
}

func TestHookFailuresDoNotChangeStatusOrStopLaterHooks(t *testing.T) {
	dir := t.TempDir()
	noexec := notExecutable(t, dir)
	tests := []struct {
		name string
		hook string
		logs []string // in vigil's stderr
	}{
		{"missing hook is logged", hookLine(filepath.Join(dir, "missing"), "arg"),
			[]string{"hook not run", filepath.Join(dir, "missing"), "not found"}},
		{"hook not on PATH is logged", "vigil-no-such-hook",
			[]string{"hook not run", "vigil-no-such-hook", "not found"}},
		{"hook that is not executable is logged", hookLine(noexec),
			[]string{"hook not run", "permission denied"}},
		{"failing hook is logged with its status", hookLine(helper("exit", "5")...),
			[]string{"hook failed", "status=5"}},
		{"hook killed by a signal is logged", hookLine(helper("die", "TERM")...),
			[]string{"hook failed", "status=143", "signal=SIGTERM"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := filepath.Join(t.TempDir(), "hooks")
			r := start(t, opts{pid1: true, env: []string{"E2E_HOOKLOG=" + log}},
				"--on-failure", tt.hook,
				"--on-failure", hookLine(helper("hooklog", "after")...),
				"--on-exit", hookLine(helper("hooklog", "exit")...),
				"--", self, "exit", "7")
			r.expect(7)
			stderr := r.stderr.String()
			for _, want := range tt.logs {
				if !strings.Contains(stderr, want) {
					t.Errorf("vigil's stderr does not say %q:\n%s", want, stderr)
				}
			}
			if got := waitFile(t, log, "", time.Second); got != "after\nexit\n" {
				t.Errorf("later hooks ran as %q, want after, exit\nstderr:\n%s", got, stderr)
			}
		})
	}
}

func TestHooksDirRunsInLexicalOrderAfterFlags(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "hooks")
	hooks := filepath.Join(dir, "hooks.d")
	// Scripts whose interpreter is the test binary: "#!/path/e2e.test
	// hooklog" runs hooklog with the script's path; no shell needed.
	script := "#!" + self + " hooklog\n"
	if len(script) > 255 {
		t.Skipf("test binary path too long for a #! line: %s", self)
	}
	files := []struct {
		path string
		mode os.FileMode
	}{
		{"on-failure.d/20-b", 0o755},
		{"on-failure.d/10-a", 0o755},
		{"on-failure.d/9-c", 0o755}, // lexical, not numeric: after 20-b
		{"on-failure.d/15-not-executable", 0o644},
		{"on-exit.d/b", 0o755},
		{"on-exit.d/a", 0o700},
		{"on-success.d/other-class", 0o755},
		{"on-fault.d/other-class", 0o755},
	}
	for _, f := range files {
		p := filepath.Join(hooks, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(script), f.mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(hooks, "on-failure.d", "12-a-directory"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := start(t, opts{pid1: true, env: []string{"E2E_HOOKLOG=" + log}},
		"--hooks-dir", hooks,
		"--on-exit", hookLine(helper("hooklog", "flag-exit,with-comma")...),
		"--on-failure", hookLine(helper("hooklog", "flag-failure-1")...),
		"--on-failure", hookLine(helper("hooklog", "flag-failure-2", "5")...), // fails; the rest still run
		"--on-success", hookLine(helper("hooklog", "flag-success")...),
		"--", self, "exit", "1")
	r.expect(1)
	got := strings.Fields(waitFile(t, log, "", time.Second))
	want := []string{"flag-failure-1", "flag-failure-2", "10-a", "20-b", "9-c", "flag-exit,with-comma", "a", "b"}
	if !slices.Equal(got, want) {
		t.Errorf("hooks ran in the order\n  %v\nwant\n  %v\nvigil's stderr:\n%s", got, want, r.stderr)
	}
}

func TestCaptureTailPassesEveryByteAndKeepsTheLast(t *testing.T) {
	tests := []struct {
		name        string
		total, keep int
	}{
		{"more than 10 MB through a 4097-byte tail", 10<<20 + 12345, 4097},
		{"less than the tail keeps it all", 3000, 4097},
		{"a tail of one byte", 70000, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			report, pidFile := filepath.Join(dir, "report"), filepath.Join(dir, "pid")
			child := helper("as", pidFile, "spew", strconv.Itoa(tt.total))
			before := time.Now()
			r := start(t, opts{pid1: true}, append([]string{"--capture-tail", strconv.Itoa(tt.keep),
				"--on-success", hookLine(helper("hookdump", report)...), "--"}, child...)...)
			status := r.wait(60 * time.Second)
			after := time.Now()
			out := r.stderr.Bytes()
			want := spewStream(tt.total)
			if status != 0 {
				t.Fatalf("vigil exited %d, want 0\nstderr:\n%s", status, clipLog(string(out)))
			}
			// vigil's stderr is the child's bytes, exactly, then vigil's
			// own log lines.
			if !bytes.HasPrefix(out, want) {
				i := 0
				for i < len(out) && i < len(want) && out[i] == want[i] {
					i++
				}
				t.Fatalf("vigil's stderr (%d bytes) differs from the child's %d bytes at byte %d: got %q, want %q",
					len(out), len(want), i, out[i:min(len(out), i+40)], want[i:min(len(want), i+40)])
			}
			sc := bufio.NewScanner(bytes.NewReader(out[len(want):]))
			for sc.Scan() {
				if !strings.HasPrefix(sc.Text(), "time=") {
					t.Errorf("after the child's bytes, vigil's stderr has %q, want only log lines", sc.Text())
				}
			}
			tail := string(want[max(0, len(want)-tt.keep):])
			rep := readReport(t, report, string(out))
			checkFacts(t, rep, hookFacts{class: "success", status: 0, code: "0", core: "0",
				pid: atoi(t, waitFile(t, pidFile, "", time.Second)), command: child, tail: &tail},
				before, after, clipLog(string(out)))
		})
	}
}

func TestCaptureTailWithSilentChildGivesHooksAnEmptyTail(t *testing.T) {
	report := filepath.Join(t.TempDir(), "report")
	pidFile := filepath.Join(t.TempDir(), "pid")
	child := helper("as", pidFile, "exit", "0")
	before := time.Now()
	r := start(t, opts{pid1: true}, append([]string{"--capture-tail", "100",
		"--on-success", hookLine(helper("hookdump", report)...), "--"}, child...)...)
	r.expect(0)
	empty := ""
	checkFacts(t, readReport(t, report, r.stderr.String()), hookFacts{class: "success", status: 0, code: "0",
		core: "0", pid: atoi(t, waitFile(t, pidFile, "", time.Second)), command: child, tail: &empty},
		before, time.Now(), r.stderr.String())
}

func TestHookSettingsComeFromVIGILEnvironmentToo(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "hooks")
	hooks := filepath.Join(dir, "hooks.d")
	if err := os.MkdirAll(filepath.Join(hooks, "on-failure.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hooks, "on-failure.d", "from-dir"), []byte("#!"+self+" hooklog\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// One variable holds several hooks, one per line: command lines may
	// hold commas.
	r := start(t, opts{pid1: true, env: []string{
		"E2E_HOOKLOG=" + log,
		"VIGIL_ON_FAILURE=" + hookLine(helper("hooklog", "a,1")...) + "\n" + hookLine(helper("hooklog", "b")...),
		"VIGIL_ON_EXIT=" + hookLine(helper("hooklog", "exit")...),
		"VIGIL_HOOKS_DIR=" + hooks,
	}}, self, "exit", "6")
	r.expect(6)
	got := strings.Fields(waitFile(t, log, "", time.Second))
	if want := []string{"a,1", "b", "from-dir", "exit"}; !slices.Equal(got, want) {
		t.Errorf("hooks ran as %v, want %v\nvigil's stderr:\n%s", got, want, r.stderr)
	}
}

// inPipeWrite reports whether some thread of pid sleeps writing to a full
// pipe, whether pid still runs, and whether /proc named the function any
// of its threads sleeps in (without kallsyms it never does).
func inPipeWrite(pid int) (blocked, alive, named bool) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return false, false, false
	}
	for _, task := range tasks {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/wchan", pid, task.Name()))
		if string(b) == "0" || string(b) == "" {
			continue
		}
		named = true
		if strings.Contains(string(b), "pipe_write") {
			return true, true, true
		}
	}
	return false, true, named
}

// pipeFill is how many bytes wait in the pipe at path (a /proc/PID/fd
// link). It opens the pipe's writing side without blocking and closes it
// at once, so that it holds off no reader's end of file.
func pipeFill(t *testing.T, path string) int {
	t.Helper()
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("opening the pipe %s: %v", path, err)
	}
	defer unix.Close(fd)
	n, err := unix.IoctlGetInt(fd, unix.TIOCINQ) // FIONREAD
	if err != nil {
		t.Fatalf("FIONREAD on %s: %v", path, err)
	}
	return n
}

// childOf finds the host pid of ppid's only child.
func childOf(t *testing.T, ppid int, d time.Duration) int {
	t.Helper()
	var child string
	waitFor(t, d, fmt.Sprintf("a child of process %d", ppid), func() bool {
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
			if err != nil {
				continue
			}
			s := string(b)
			f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
			if len(f) > 1 && f[1] == strconv.Itoa(ppid) {
				child = e.Name()
				return true
			}
		}
		return false
	})
	return atoi(t, child)
}

func TestCaptureTailBlocksChildWhileVigilsStderrIsFull(t *testing.T) {
	needRoot(t)
	const total = 4 << 20
	progress := filepath.Join(t.TempDir(), "progress")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	if _, err := unix.FcntlInt(pw.Fd(), unix.F_SETPIPE_SZ, 64<<10); err != nil {
		t.Fatal(err)
	}
	// start() captures stderr in a buffer that is always read; this test
	// needs a stderr that nobody reads, so it starts the shim itself.
	cmd := exec.Command(self, append([]string{"pid1-shim", vigilBin, "--capture-tail", "100", "--"},
		helper("spew-progress", progress, strconv.Itoa(total))...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWPID | unix.CLONE_NEWNS}
	cmd.Env = append(os.Environ(), "E2E_HELPER=1")
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			cmd.Process.Kill()
			<-done
		}
	})
	vigilPid := cmd.Process.Pid
	child := childOf(t, vigilPid, 10*time.Second)

	// Both vigil and the child must come to sleep in a pipe write: vigil
	// on its full stderr, the child on the pipe vigil no longer reads.
	var named, vb, cb bool
	if !poll(10*time.Second, func() bool {
		var vn, cn, alive bool
		vb, _, vn = inPipeWrite(vigilPid)
		cb, alive, cn = inPipeWrite(child)
		named = named || vn || cn
		if !alive && !(vb && cb) {
			t.Fatalf("the child wrote all %d bytes while nobody read vigil's stderr: vigil buffered them", total)
		}
		return vb && cb
	}) {
		if !named {
			t.Skip("/proc/PID/wchan names no kernel function here (no kallsyms); cannot see a blocked write")
		}
		t.Fatalf("vigil (blocked=%v) and the child (blocked=%v) did not both block on a full pipe", vb, cb)
	}
	b, _ := os.ReadFile(progress)
	t.Logf("both blocked after the child wrote %s of %d bytes", b, total)
	// What the child can have written: vigil's stderr pipe (64 KiB), one
	// read of vigil's (32 KiB), the child's pipe (64 KiB by default, at
	// most 1 MiB), with room to spare; far below what it meant to write.
	if n, _ := strconv.Atoi(string(b)); n > 1<<20+256<<10 {
		t.Errorf("the child wrote %d bytes while vigil's stderr was full, want at most about the pipes' size", n)
	}
	// Both may also block for a moment when vigil merely lags behind, so
	// account for every byte the child wrote: in the child's pipe, in
	// vigil's stderr pipe, or held by vigil. With both blocked nothing
	// moves, and a vigil that does not buffer holds at most the one read
	// it is writing out (32 KiB). A vigil that reads on would have let the
	// child go on meanwhile.
	inChildPipe, inStderrPipe := pipeFill(t, fmt.Sprintf("/proc/%d/fd/2", child)), pipeFill(t, fmt.Sprintf("/proc/self/fd/%d", pr.Fd()))
	if now, _ := os.ReadFile(progress); !bytes.Equal(now, b) {
		t.Fatalf("the child went on from %s to %s bytes while nobody read vigil's stderr: vigil buffers", b, now)
	}
	n, _ := strconv.Atoi(string(b))
	if held := n - inChildPipe - inStderrPipe; held > 32<<10 {
		t.Fatalf("of the %d bytes the child wrote, %d are in its pipe and %d in vigil's stderr: vigil holds %d, more than one read: it buffers",
			n, inChildPipe, inStderrPipe, held)
	}
	t.Logf("%d bytes in the child's pipe, %d in vigil's stderr pipe, vigil holds at most %d", inChildPipe, inStderrPipe, n-inChildPipe-inStderrPipe)

	// Read in the background so that a writer that never closes the pipe
	// fails the test with the holders named instead of hanging the suite.
	var out []byte
	read := make(chan error, 1)
	go func() {
		var err error
		out, err = io.ReadAll(pr)
		read <- err
	}()
	select {
	case err := <-read:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("vigil's stderr never reached end of file; processes holding pipes: %s", pipeHolders())
	}
	select {
	case <-done:
		if waitErr != nil {
			t.Fatalf("vigil: %v\nstderr:\n%s", waitErr, clipLog(string(out)))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("vigil did not exit after its stderr was read")
	}
	if want := spewStream(total); !bytes.HasPrefix(out, want) {
		t.Errorf("after the stall vigil's stderr does not hold the child's %d bytes exactly (%d bytes)", len(want), len(out))
	}
}

// pipeHolders lists the processes on the machine with a pipe open, for the
// message of a test that waits for a pipe to close.
func pipeHolders() string {
	var out []string
	d, _ := os.ReadDir("/proc")
	for _, e := range d {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		fds, _ := os.ReadDir("/proc/" + e.Name() + "/fd")
		for _, fd := range fds {
			if l, _ := os.Readlink("/proc/" + e.Name() + "/fd/" + fd.Name()); strings.HasPrefix(l, "pipe:") {
				comm, _ := os.ReadFile("/proc/" + e.Name() + "/comm")
				out = append(out, fmt.Sprintf("%s(%s) fd %s %s", e.Name(), strings.TrimSpace(string(comm)), fd.Name(), l))
			}
		}
	}
	return strings.Join(out, "; ")
}
