package e2e

// Reliability under load, faults and hostile environments: vigil as PID 1
// must keep reaping, forwarding and handing back the exact status whatever
// its children, its caller or its file system do.

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func init() {
	helpers["orphan-storm"] = orphanStorm
	helpers["storm-child"] = stormChild
	helpers["sigstate"] = sigState
	helpers["with-blocked"] = withBlocked
	helpers["with-ignored"] = withIgnored
	helpers["with-nofile"] = withNofile
	helpers["with-closed"] = withClosed
	helpers["env"] = envHelper
	helpers["argv"] = argvHelper
	helpers["chroot-shim"] = chrootShim
}

// spawnOrphans forks a process that forks k children which exit at once,
// and then exits itself without waiting for them: its children become
// orphans of vigil. It returns the spawner's pid; the spawner's exit status
// is the number of forks that failed (at most 255).
//
// A raw fork with nothing but system calls after it in the child is safe in
// a Go program: the child never runs the scheduler, the allocator or a
// stack check. It is also ten times faster than fork+exec, which is what
// lets a test make 100,000 orphans in seconds.
//
//go:nosplit
//go:noinline
func spawnOrphans(k int) (int, syscall.Errno) {
	pid, _, e := syscall.RawSyscall(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0)
	if e != 0 {
		return 0, e
	}
	if pid != 0 {
		return int(pid), 0
	}
	failed := uintptr(0)
	for i := 0; i < k; i++ {
		p, _, e := syscall.RawSyscall(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0)
		if e != 0 {
			failed++
			continue
		}
		if p == 0 {
			syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
		}
	}
	syscall.RawSyscall(syscall.SYS_EXIT_GROUP, min(failed, 255), 0, 0)
	return 0, 0
}

// makeOrphans makes n orphans from workers goroutines in batches of k,
// and returns how many forks failed (EAGAIN at a pid limit).
func makeOrphans(n, k, workers int) (failed int64) {
	var made, fails atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The spawner starts with every signal blocked, as a child of
			// syscall.ForkExec does, so that no Go signal handler ever runs
			// in it. The thread stays locked and dies with the goroutine.
			runtime.LockOSThread()
			all := unix.Sigset_t{Val: [16]uint64{^uint64(0)}}
			if err := unix.PthreadSigmask(unix.SIG_BLOCK, &all, nil); err != nil {
				panic(err)
			}
			for made.Add(int64(k)) <= int64(n) {
				pid, e := spawnOrphans(k)
				if e != 0 {
					fails.Add(int64(k))
					time.Sleep(time.Millisecond)
					continue
				}
				var ws unix.WaitStatus
				for {
					_, err := unix.Wait4(pid, &ws, 0, nil)
					if err != unix.EINTR {
						break
					}
				}
				fails.Add(int64(ws.ExitStatus()))
			}
		}()
	}
	wg.Wait()
	return fails.Load()
}

// orphanStorm makes N orphans, in batches of K, as fast as it can while
// taking every SIGUSR1 vigil forwards, waits until vigil has reaped them
// all, writes "failed=F zombies=Z others=O usr1=U" to REPORT, then exits
// CODE once the file GO exists. REPORT.ready says it takes SIGUSR1.
func orphanStorm(args []string) int {
	n, k, report, goFile, code := mustAtoi(args[0]), mustAtoi(args[1]), args[2], args[3], mustAtoi(args[4])
	var usr1 atomic.Int64
	c := make(chan os.Signal, 64)
	signal.Notify(c, unix.SIGUSR1)
	go func() {
		for range c {
			usr1.Add(1)
		}
	}()
	writeFile(report+".ready", "ready")
	failed := makeOrphans(n, k, runtime.NumCPU())
	zombies, others := awaitEmptyNamespace(60 * time.Second)
	writeFile(report, fmt.Sprintf("failed=%d zombies=%d others=%d usr1=%d", failed, zombies, others, usr1.Load()))
	if !poll(time.Minute, func() bool { _, err := os.Stat(goFile); return err == nil }) {
		fmt.Fprintln(os.Stderr, "orphan-storm:", goFile, "did not appear within a minute")
		return 97
	}
	return code
}

// awaitEmptyNamespace waits until no process but PID 1 and the caller is
// left, in any state, and returns the last census.
func awaitEmptyNamespace(d time.Duration) (zombies, others int) {
	poll(d, func() bool { zombies, others = census(); return zombies == 0 && others == 0 })
	return
}

// vmHWM returns the peak resident set of process pid, in KiB.
func vmHWM(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("reading vigil's status: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			return atoi(t, strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// keepSignalling sends sig to vigil every gap until stop is closed, and
// returns how many it sent.
func keepSignalling(r *run, sig syscall.Signal, gap time.Duration, stop <-chan struct{}) <-chan int {
	sent := make(chan int, 1)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				sent <- n
				return
			default:
			}
			if r.cmd.Process.Signal(sig) == nil {
				n++
			}
			if gap > 0 {
				time.Sleep(gap)
			}
		}
	}()
	return sent
}

func TestHundredThousandOrphansWhileForwarding(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	const orphans = 100_000
	dir := t.TempDir()
	report, goFile := filepath.Join(dir, "report"), filepath.Join(dir, "go")
	began := time.Now()
	r := start(t, opts{pid1: true}, helper("orphan-storm", strconv.Itoa(orphans), "500", report, goFile, "42")...)
	waitReport(t, r, report+".ready", "ready", 10*time.Second)
	stop := make(chan struct{})
	sent := keepSignalling(r, unix.SIGUSR1, 200*time.Microsecond, stop)
	got := waitReport(t, r, report, "others=", 90*time.Second)
	close(stop)
	n := <-sent
	hwm := vmHWM(t, r.cmd.Process.Pid)
	writeFile(goFile, "")
	r.expect(42)
	t.Logf("%d orphans in %s; %d SIGUSR1 sent; child: %s; vigil VmHWM %d KiB",
		orphans, time.Since(began).Round(time.Millisecond), n, got, hwm)
	var failed, zombies, others, usr1 int
	if _, err := fmt.Sscanf(got, "failed=%d zombies=%d others=%d usr1=%d", &failed, &zombies, &others, &usr1); err != nil {
		t.Fatalf("child reported %q", got)
	}
	if zombies != 0 || others != 0 {
		t.Errorf("left in the namespace: %d zombies, %d other processes; want none\nstderr:\n%s", zombies, others, r.stderr)
	}
	if failed > orphans/100 {
		t.Errorf("%d of %d forks failed", failed, orphans)
	}
	if usr1 == 0 {
		t.Errorf("none of %d SIGUSR1 reached the child", n)
	}
	// vigil holds nothing per reaped process: its peak must not grow with
	// the number of orphans. An idle vigil peaks near 8 MiB.
	if hwm > 32<<10 {
		t.Errorf("vigil's peak resident set is %d KiB, want at most 32 MiB", hwm)
	}
}

// stormChild takes USR1, USR2, HUP and WINCH, says "ready" in FILE and
// exits 77 on the first TERM.
func stormChild(args []string) int {
	c := make(chan os.Signal, 1024)
	signal.Notify(c, unix.SIGUSR1, unix.SIGUSR2, unix.SIGHUP, unix.SIGWINCH, unix.SIGTERM)
	writeFile(args[0], "ready")
	for sig := range c {
		if sig == unix.SIGTERM {
			return 77
		}
	}
	return 0
}

// sigState prints the signal masks of /proc/self/status.
func sigState([]string) int {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "Sig") {
			fmt.Println(line)
		}
	}
	return 0
}

// signalList reads "HUP,PIPE".
func signalList(s string) []os.Signal {
	var out []os.Signal
	for _, n := range strings.Split(s, ",") {
		out = append(out, unix.SignalNum("SIG"+n))
	}
	return out
}

// withBlocked blocks SIGS on the thread that then execs ARGV: the signal
// mask survives execve, so vigil starts with them blocked.
func withBlocked(args []string) int {
	runtime.LockOSThread()
	var set unix.Sigset_t
	for _, s := range signalList(args[0]) {
		n := uint(s.(unix.Signal)) - 1
		set.Val[n/64] |= 1 << (n % 64)
	}
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, nil); err != nil {
		fmt.Fprintln(os.Stderr, "with-blocked:", err)
		return 98
	}
	return execArgv(args[1:])
}

// withIgnored execs ARGV with SIGS ignored, as nohup does for SIGHUP.
func withIgnored(args []string) int {
	signal.Ignore(signalList(args[0])...)
	return execArgv(args[1:])
}

// withNofile execs ARGV with RLIMIT_NOFILE at N and descriptors open (on
// /dev/null, inherited) up to USED-1.
func withNofile(args []string) int {
	n, used := mustAtoi(args[0]), mustAtoi(args[1])
	for {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY, 0) // no O_CLOEXEC: vigil inherits it
		if err != nil {
			fmt.Fprintln(os.Stderr, "with-nofile:", err)
			return 98
		}
		if fd >= used-1 {
			break
		}
	}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: uint64(n), Max: uint64(n)}); err != nil {
		fmt.Fprintln(os.Stderr, "with-nofile:", err)
		return 98
	}
	return execArgv(args[2:])
}

// withClosed execs ARGV with the descriptors FDS ("1,2") closed.
func withClosed(args []string) int {
	for _, fd := range strings.Split(args[0], ",") {
		unix.Close(mustAtoi(fd))
	}
	return execArgv(args[1:])
}

func execArgv(argv []string) int {
	err := unix.Exec(argv[0], argv, os.Environ())
	fmt.Fprintln(os.Stderr, "exec:", err)
	return 98
}

// envHelper writes its environment to FILE, one variable per line.
func envHelper(args []string) int {
	writeFile(args[0], strings.Join(os.Environ(), "\n")+"\n")
	return 0
}

// argvHelper writes its arguments to FILE, one per line.
func argvHelper(args []string) int {
	writeFile(args[0], strings.Join(args[1:], "\n")+"\n")
	return 0
}

// chrootShim runs as PID 1 of new PID and mount namespaces: it makes ROOT
// the root file system, read-only when RO is "ro", with nothing mounted in
// it (no /proc), and execs ARGV there.
func chrootShim(args []string) int {
	root, ro, argv := args[0], args[1] == "ro", args[2:]
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		fmt.Fprintln(os.Stderr, "chroot-shim:", err)
		return 98
	}
	if err := unix.Mount(root, root, "", unix.MS_BIND, ""); err != nil {
		fmt.Fprintln(os.Stderr, "chroot-shim: bind:", err)
		return 98
	}
	if ro {
		if err := unix.Mount("", root, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			fmt.Fprintln(os.Stderr, "chroot-shim: read-only:", err)
			return 98
		}
	}
	if err := unix.Chroot(root); err != nil {
		fmt.Fprintln(os.Stderr, "chroot-shim:", err)
		return 98
	}
	if err := unix.Chdir("/"); err != nil {
		fmt.Fprintln(os.Stderr, "chroot-shim:", err)
		return 98
	}
	return execArgv(argv)
}

// via says how startVia runs vigil.
type via struct {
	argv           []string // run this instead of vigil; it must exec vigil, keeping its pid
	pid1           bool     // in new PID and mount namespaces
	stdout, stderr *os.File // nil: buffers, as start uses
	env            []string
	extra          []*os.File // vigil's descriptors 3.. (exec.Cmd.ExtraFiles)
}

// startVia is start for tests that put something between the test and
// vigil: a wrapper that changes what vigil inherits, or a chroot.
func startVia(t *testing.T, v via) *run {
	t.Helper()
	if v.pid1 {
		needRoot(t)
	}
	r := &run{t: t, stderr: &bytes.Buffer{}, stdout: &bytes.Buffer{}, done: make(chan struct{})}
	r.cmd = exec.Command(v.argv[0], v.argv[1:]...)
	if v.pid1 {
		r.cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWPID | unix.CLONE_NEWNS}
	}
	r.cmd.Env = append(os.Environ(), "E2E_HELPER=1", "GODEBUG=containermaxprocs=0,updatemaxprocs=0")
	r.cmd.Env = append(r.cmd.Env, v.env...)
	r.cmd.ExtraFiles = v.extra
	r.cmd.Stdout, r.cmd.Stderr = r.stdout, r.stderr
	if v.stdout != nil {
		r.cmd.Stdout = v.stdout
	}
	if v.stderr != nil {
		r.cmd.Stderr = v.stderr
	}
	r.launch()
	return r
}

// shimmed is the argv that runs vigil as PID 1 through wrapper.
func shimmed(wrapper []string, args ...string) []string {
	argv := append([]string{self, "pid1-shim"}, wrapper...)
	return append(append(argv, vigilBin), args...)
}

func TestSignalStormWhileTheChildExits(t *testing.T) {
	ready := filepath.Join(t.TempDir(), "ready")
	r := start(t, opts{pid1: true}, helper("storm-child", ready)...)
	waitFile(t, ready, "ready", 10*time.Second)
	kinds := []syscall.Signal{unix.SIGUSR1, unix.SIGUSR2, unix.SIGHUP, unix.SIGWINCH}
	pid := r.cmd.Process.Pid
	// Two senders, so that the storm goes on after the TERM, while the
	// child is exiting.
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5000 {
				if err := unix.Kill(pid, kinds[(i+w)%len(kinds)]); err != nil {
					return // vigil has exited
				}
				if w == 0 && i == 4999 {
					unix.Kill(pid, unix.SIGTERM)
				}
			}
		}()
	}
	wg.Wait()
	// The TERM sent last by one sender must still reach the child, whose
	// exit status for it is 77.
	r.expect(77)
	if strings.Contains(r.stderr.String(), "panic") {
		t.Errorf("vigil panicked:\n%s", r.stderr)
	}
}

func TestThousandRunsExactStatus(t *testing.T) {
	sigs := []syscall.Signal{unix.SIGTERM, unix.SIGKILL, unix.SIGINT, unix.SIGHUP, unix.SIGUSR1,
		unix.SIGUSR2, unix.SIGQUIT, unix.SIGABRT, unix.SIGSEGV, unix.SIGALRM, unix.SIGPIPE}
	const runs, workers = 1000, 4
	var next atomic.Int64
	var mu sync.Mutex
	var failures []string
	began := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= runs {
				// An orphan exiting 9 races the main child each time, and
				// pids recycle: its status must never be taken for the
				// child's.
				var script string
				var want int
				if rand.IntN(2) == 0 {
					n := rand.IntN(256)
					script, want = fmt.Sprintf("(exit 9) & exit %d", n), n
				} else {
					sig := sigs[rand.IntN(len(sigs))]
					script, want = fmt.Sprintf("ulimit -c 0; (exit 9) & kill -%s $$", unix.SignalName(sig)[3:]), 128+int(sig)
				}
				cmd := exec.Command(vigilBin, "/bin/sh", "-c", script)
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				err := cmd.Run()
				got := cmd.ProcessState.ExitCode()
				if got != want {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("sh -c %q: vigil exited %d (%v), want %d; stderr: %s", script, got, err, want, stderr.String()))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d runs in %s", runs, time.Since(began).Round(time.Millisecond))
	for _, f := range failures {
		t.Error(f)
	}
}

// waitReport is waitFile that gives up, showing vigil's stderr, as soon as
// vigil has exited.
func waitReport(t *testing.T, r *run, path, want string, d time.Duration) string {
	t.Helper()
	var (
		b      []byte
		err    error
		exited bool
	)
	poll(d, func() bool {
		if b, err = os.ReadFile(path); err == nil && strings.Contains(string(b), want) {
			return true
		}
		select {
		case <-r.done:
			exited = true
		default:
		}
		return exited
	})
	switch {
	case err == nil && strings.Contains(string(b), want):
		return string(b)
	case exited:
		t.Fatalf("vigil exited (%v) before %s held %q\nstderr:\n%s", r.err, path, want, r.stderr)
	}
	t.Fatalf("%s did not come to hold %q within %s\nstderr:\n%s", path, want, d, r.stderr)
	return ""
}

// pipeScript is a child that records every SIGPIPE it receives in $F,
// leaves 1,000 orphans for vigil to reap (with -v, a log line each: far
// more than a pipe holds), says "ready" in $F.ready and exits 42 on
// SIGUSR1.
const pipeScript = `trap 'echo PIPE >> "$F"' PIPE; trap 'exit 42' USR1
i=0; while [ $i -lt 1000 ]; do ( true & ); i=$((i+1)); done
echo ready > "$F.ready"; while :; do sleep 1 & wait $!; done`

func TestBrokenStdoutAndStderr(t *testing.T) {
	full := func(t *testing.T) *os.File { // a pipe nobody reads
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pr.Close(); pw.Close() })
		return pw
	}
	broken := func(t *testing.T) *os.File { // writes fail with EPIPE
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		pr.Close()
		t.Cleanup(func() { pw.Close() })
		return pw
	}
	tests := []struct {
		name    string
		wrapper []string
		out     func(*testing.T) *os.File
	}{
		{"closed", []string{self, "with-closed", "1,2"}, nil},
		{"full pipe", nil, full},
		{"EPIPE", nil, broken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "pipes")
			v := via{argv: shimmed(tt.wrapper, "-v", "/bin/sh", "-c", pipeScript), pid1: true, env: []string{"F=" + f}}
			if tt.out != nil {
				w := tt.out(t)
				v.stdout, v.stderr = w, w
			}
			r := startVia(t, v)
			waitReport(t, r, f+".ready", "ready", 10*time.Second)
			for range 2000 {
				r.signal(unix.SIGWINCH)
			}
			r.signal(unix.SIGUSR1)
			if got := r.wait(30 * time.Second); got != 42 {
				t.Errorf("vigil exited %d, want the child's 42", got)
			}
			if b, err := os.ReadFile(f); err == nil {
				t.Errorf("the child received SIGPIPEs vigil raised on itself: %q", b)
			}
		})
	}
}

func TestCrashSignalsSentWithKillAreForwarded(t *testing.T) {
	for _, sig := range []syscall.Signal{unix.SIGSEGV, unix.SIGBUS, unix.SIGFPE, unix.SIGILL} {
		name := unix.SignalName(sig)
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "got")
			r := start(t, opts{pid1: true}, helper("record", file)...)
			waitReport(t, r, file, "ready", 10*time.Second)
			r.signal(sig)
			r.expect(0)
			if got := waitFile(t, file, "ready\n", time.Second); got != "ready\n"+name+"\n" {
				t.Errorf("child received %q, want %s", got, name)
			}
		})
	}
}

func TestSIGURGIsNeverForwarded(t *testing.T) {
	// The child is a shell: a Go child would see its own runtime's SIGURG.
	f := filepath.Join(t.TempDir(), "got")
	script := `trap 'echo URG >> "$F"' URG; trap 'echo TERM >> "$F"; exit 0' TERM; echo ready > "$F.ready"; while :; do sleep 1 & wait $!; done`
	r := start(t, opts{pid1: true, env: []string{"F=" + f}}, "/bin/sh", "-c", script)
	waitReport(t, r, f+".ready", "ready", 10*time.Second)
	for range 100 {
		r.signal(unix.SIGURG)
	}
	r.signal(unix.SIGTERM)
	r.expect(0)
	if got := waitFile(t, f, "TERM", time.Second); got != "TERM\n" {
		t.Errorf("child received %q, want only TERM", got)
	}
}

func TestSignalsIgnoredAtStartStayIgnored(t *testing.T) {
	// nohup ignores SIGHUP; a shell ignores SIGINT for a background job.
	r := startVia(t, via{argv: shimmed([]string{self, "with-ignored", "HUP,INT"}, "--", "/bin/cat", "/proc/self/status"), pid1: true})
	r.expect(0)
	ign := sigField(t, r.stdout.String(), "SigIgn")
	for _, sig := range []syscall.Signal{unix.SIGHUP, unix.SIGINT} {
		if ign&(1<<(sig-1)) == 0 {
			t.Errorf("%s is not ignored in the child (SigIgn %x)\nstderr:\n%s", unix.SignalName(sig), ign, r.stderr)
		}
	}
	// And vigil does not forward them: a child that takes the default
	// action on SIGHUP survives it and ends on TERM.
	f := filepath.Join(t.TempDir(), "ready")
	r = startVia(t, via{argv: shimmed([]string{self, "with-ignored", "HUP"}, "/bin/sh", "-c",
		`echo ready > "$F"; while :; do sleep 1 & wait $!; done`), pid1: true, env: []string{"F=" + f}})
	waitReport(t, r, f, "ready", 10*time.Second)
	r.signal(unix.SIGHUP)
	r.signal(unix.SIGTERM)
	r.expect(128 + int(unix.SIGTERM))
}

// runtimeUnblocks are the signals the Go runtime unblocks on every thread
// it runs, for its own use (crashes, preemption, the profiler, reaping, the
// C library's 32 to 34), whatever mask the process started with. A child
// gets the mask of the thread that forked it, so these arrive unblocked in
// the child even when they were blocked when vigil started. Measured with
// Go 1.26 (runtime/sigtab_linux_generic.go: the signals marked _SigKill,
// _SigThrow or _SigUnblock, and SIGURG for preemption).
var runtimeUnblocks = []syscall.Signal{unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGILL, unix.SIGTRAP,
	unix.SIGABRT, unix.SIGBUS, unix.SIGFPE, unix.SIGSEGV, unix.SIGTERM, unix.SIGSTKFLT, unix.SIGCHLD,
	unix.SIGURG, unix.SIGPROF, unix.SIGSYS, 32, 33, 34}

func TestSignalsBlockedAtStartStayBlockedInTheChild(t *testing.T) {
	// Every signal blocked at start stays blocked in the child, except
	// exactly the ones the runtime unblocks (KILL and STOP cannot be
	// blocked at all).
	want := ^uint64(0) &^ (1<<(unix.SIGKILL-1) | 1<<(unix.SIGSTOP-1))
	for _, sig := range runtimeUnblocks {
		want &^= 1 << (sig - 1)
	}
	for _, pid1 := range []bool{false, true} {
		t.Run(fmt.Sprintf("pid1=%v", pid1), func(t *testing.T) {
			argv := []string{self, "with-all-blocked", vigilBin, "--", "/bin/cat", "/proc/self/status"}
			if pid1 {
				argv = shimmed([]string{self, "with-all-blocked"}, "--", "/bin/cat", "/proc/self/status")
			}
			r := startVia(t, via{argv: argv, pid1: pid1})
			r.expect(0)
			if blk := sigField(t, r.stdout.String(), "SigBlk"); blk != want {
				t.Errorf("child's blocked set is %x, want %x: unblocked %v, still blocked %v",
					blk, want, signalNames(want&^blk), signalNames(blk&^want))
			}
		})
	}
	// One blockable signal stays exactly that.
	r := startVia(t, via{argv: shimmed([]string{self, "with-blocked", "USR2"}, "--", "/bin/cat", "/proc/self/status"), pid1: true})
	r.expect(0)
	if blk := sigField(t, r.stdout.String(), "SigBlk"); blk != 1<<(unix.SIGUSR2-1) {
		t.Errorf("child's blocked set is %x, want only SIGUSR2 (%x)", blk, 1<<(unix.SIGUSR2-1))
	}
	r = start(t, opts{pid1: true}, "/bin/cat", "/proc/self/status")
	r.expect(0)
	if blk := sigField(t, r.stdout.String(), "SigBlk"); blk != 0 {
		t.Errorf("child of an unblocked vigil has blocked set %x, want none", blk)
	}
}

// signalNames lists the signals in a set, by name.
func signalNames(set uint64) []string {
	var out []string
	for n := 1; n <= 64; n++ {
		if set&(1<<(n-1)) != 0 {
			name := unix.SignalName(unix.Signal(n))
			if name == "" {
				name = fmt.Sprintf("SIG%d", n)
			}
			out = append(out, name)
		}
	}
	return out
}

// sigField reads a hexadecimal signal set such as SigIgn from a
// /proc/PID/status text.
func sigField(t *testing.T, status, name string) uint64 {
	t.Helper()
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return n
		}
	}
	t.Fatalf("no %s in %q", name, status)
	return 0
}

func TestLowDescriptorLimit(t *testing.T) {
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	writeFile(ready, "")
	features := []string{"--wait-for", "file:" + ready, "--capture-tail", "100", "--tombstone", filepath.Join(dir, "tomb")}
	t.Run("room for vigil", func(t *testing.T) {
		report := filepath.Join(dir, "fds")
		// 3 to 19 are taken (inherited); vigil has a handful left.
		args := append(append([]string{}, features...), append([]string{"--"}, helper("fds", report)...)...)
		r := startVia(t, via{argv: shimmed([]string{self, "with-nofile", "32", "20"}, args...), pid1: true})
		r.expect(0)
		got := waitFile(t, report, "0 ", time.Second)
		for _, line := range strings.Split(strings.TrimSpace(got), "\n") {
			f := strings.Fields(line)
			if n := atoi(t, f[0]); n > 2 && (n >= 20 || len(f) < 2 || f[1] != "/dev/null") {
				t.Errorf("child has vigil's descriptor %s", line)
			}
		}
	})
	t.Run("no room", func(t *testing.T) {
		args := append(append([]string{}, features...), "--", "/bin/true")
		r := startVia(t, via{argv: shimmed([]string{self, "with-nofile", "22", "20"}, args...), pid1: true})
		status := r.wait(30 * time.Second)
		msg := r.stderr.String()
		if status != 125 || strings.Count(strings.TrimSpace(msg), "\n") != 0 || !strings.Contains(msg, "RLIMIT_NOFILE") {
			t.Errorf("vigil exited %d; want 125 with one clear line, got:\n%s", status, msg)
		}
	})
}

func TestVIGILVariablesReachTheChild(t *testing.T) {
	// Documented: the child's environment is vigil's own, VIGIL_* included.
	report := filepath.Join(t.TempDir(), "env")
	start(t, opts{pid1: true, env: []string{"VIGIL_GRACE=3s"}}, helper("env", report)...).expect(0)
	if got := waitFile(t, report, "\n", time.Second); !strings.Contains(got, "\nVIGIL_GRACE=3s\n") {
		t.Errorf("child's environment lacks VIGIL_GRACE=3s:\n%s", got)
	}
}

func TestHooksNeverRunThroughAShell(t *testing.T) {
	report := filepath.Join(t.TempDir(), "argv")
	line := self + ` argv ` + report + ` $HOME 'a;b' "c|d" $(id) ` + "`id` >x"
	start(t, opts{pid1: true}, "--on-exit", line, "--", "/bin/true").expect(0)
	got := waitFile(t, report, "\n", 5*time.Second)
	want := "$HOME\na;b\nc|d\n$(id)\n`id`\n>x\n"
	if got != want {
		t.Errorf("hook got arguments %q, want %q (no expansion, no redirection)", got, want)
	}
}

func TestForkingToThePidsLimit(t *testing.T) {
	needRoot(t)
	cg := filepath.Join("/sys/fs/cgroup/pids", fmt.Sprintf("vigil-e2e-%d", os.Getpid()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Skipf("no pids cgroup to limit: %v", err)
	}
	t.Cleanup(func() { os.Remove(cg) })
	if err := os.WriteFile(filepath.Join(cg, "pids.max"), []byte("64"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	report, goFile := filepath.Join(dir, "report"), filepath.Join(dir, "go")
	// Batches of 200 orphans against a limit of 64: most forks fail.
	r := start(t, opts{pid1: true, env: []string{"E2E_CGROUP_PROCS=" + filepath.Join(cg, "cgroup.procs")}},
		helper("orphan-storm", "20000", "200", report, goFile, "33")...)
	waitReport(t, r, report+".ready", "ready", 10*time.Second)
	got := waitReport(t, r, report, "others=", 60*time.Second)
	writeFile(goFile, "")
	r.expect(33)
	var failed, zombies, others, usr1 int
	if _, err := fmt.Sscanf(got, "failed=%d zombies=%d others=%d usr1=%d", &failed, &zombies, &others, &usr1); err != nil {
		t.Fatalf("child reported %q", got)
	}
	if failed == 0 {
		t.Errorf("no fork failed: the pids limit was never reached (%s)", got)
	}
	if zombies != 0 || others != 0 {
		t.Errorf("left: %d zombies, %d others\nstderr:\n%s", zombies, others, r.stderr)
	}
	t.Logf("child: %s", got)
}

// scratchRoot is a root holding nothing but busybox (/bin/busybox) and
// the vigil under test (/vigil), as a scratch image would.
func scratchRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for src, dst := range map[string]string{"/usr/bin/busybox": "bin/busybox", vigilBin: "vigil"} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Skipf("no %s: %v", src, err)
		}
		os.MkdirAll(filepath.Join(root, filepath.Dir(dst)), 0o755)
		if err := os.WriteFile(filepath.Join(root, dst), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestScratchReadOnlyRoot(t *testing.T) {
	needRoot(t)
	// A root with nothing but busybox and vigil: no /proc mounted, no
	// /etc/passwd, no /tmp, and read-only.
	root := scratchRoot(t)
	sh := func(script string) []string { return []string{"/bin/busybox", "sh", "-c", script} }
	tests := []struct {
		name    string
		args    []string
		status  int
		message string // "" : stderr must be empty
	}{
		{"runs the child", sh("exit 3"), 3, ""},
		{"reaps orphans without /proc", sh("( /bin/busybox true & ); exit 4"), 4, ""},
		{"numeric --user without /etc/passwd", append([]string{"--user", "1000:1000", "--"},
			sh(`[ "$(/bin/busybox id -u):$(/bin/busybox id -g)" = 1000:1000 ] && exit 5`)...), 5, ""},
		{"named --user without /etc/passwd", append([]string{"--user", "app", "--"}, sh("exit 0")...), 2, `no user "app" in /etc/passwd`},
		{"tombstone on a read-only root is refused at start", append([]string{"--tombstone", "/state.json", "--"}, sh("exit 6")...), 2, `--tombstone "/state.json"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			argv := append([]string{self, "chroot-shim", root, "ro", "/vigil", "--log-level", "warn"}, tt.args...)
			r := startVia(t, via{argv: argv, pid1: true})
			got := r.wait(30 * time.Second)
			if got != tt.status {
				t.Errorf("vigil exited %d, want %d\nstderr:\n%s", got, tt.status, r.stderr)
			}
			// vigil's own lines, not busybox's.
			var said []string
			for _, l := range strings.Split(r.stderr.String(), "\n") {
				if strings.HasPrefix(l, "vigil: ") || strings.Contains(l, "logger=vigil") {
					said = append(said, l)
				}
			}
			if tt.message == "" && len(said) > 0 {
				t.Errorf("want no message from vigil, got:\n%s", r.stderr)
			}
			for _, l := range said {
				if !strings.Contains(l, tt.message) {
					t.Errorf("want only messages saying %q, got:\n%s", tt.message, r.stderr)
				}
			}
			if tt.message != "" && len(said) == 0 {
				t.Errorf("want a message saying %q, got none", tt.message)
			}
		})
	}
}
