package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Readiness, health and hang detection (issue 13), with vigil as PID 1.

func init() {
	helpers["notifier"] = notifier
}

// sdNotify sends one datagram to $NOTIFY_SOCKET, as sd_notify(3) does.
func sdNotify(msg string) error {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return fmt.Errorf("no NOTIFY_SOCKET")
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(msg))
	return err
}

// notifier speaks the protocol: it writes "env NOTIFY_SOCKET WATCHDOG_USEC"
// to FILE, then follows STEPS, each one of:
//
//	send:TEXT     send TEXT (\n for a newline, \0 for a NUL byte)
//	sleep:MS      sleep
//	ping:MS:N     send WATCHDOG=1 every MS ms, N times
//	mark:WORD     append WORD to FILE
//
// and then waits for a signal; SIGTERM ends it with status 0.
func notifier(args []string) int {
	file := args[0]
	c := make(chan os.Signal, 1)
	signal.Notify(c, unix.SIGTERM)
	// Die of SIGABRT as a C program would (Go's own handler would print
	// a traceback and exit 2): the watchdog's signal must show as such.
	abrt := make(chan os.Signal, 1)
	signal.Notify(abrt, unix.SIGABRT)
	go func() {
		<-abrt
		die([]string{"ABRT"})
	}()
	log := fmt.Sprintf("env %s %s\n", os.Getenv("NOTIFY_SOCKET"), os.Getenv("WATCHDOG_USEC"))
	writeFile(file, log)
	for _, step := range args[1:] {
		kind, arg, _ := strings.Cut(step, ":")
		switch kind {
		case "send":
			if err := sdNotify(strings.NewReplacer(`\n`, "\n", `\0`, "\x00").Replace(arg)); err != nil {
				log += "error " + err.Error() + "\n"
				writeFile(file, log)
			}
		case "sleep":
			time.Sleep(time.Duration(mustAtoi(arg)) * time.Millisecond)
		case "ping":
			ms, n, _ := strings.Cut(arg, ":")
			for range mustAtoi(n) {
				sdNotify("WATCHDOG=1")
				time.Sleep(time.Duration(mustAtoi(ms)) * time.Millisecond)
			}
		case "mark":
			log += arg + "\n"
			writeFile(file, log)
		}
	}
	<-c
	return 0
}

// probe runs vigil --probe TARGET and returns its status and its line.
func probe(t *testing.T, target string) (int, string) {
	t.Helper()
	out, err := exec.Command(vigilBin, "--probe", target).CombinedOutput()
	status := 0
	if ee, ok := err.(*exec.ExitError); ok {
		status = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("vigil --probe: %v", err)
	}
	return status, string(out)
}

func TestReadinessMovesTheTombstoneThroughItsStates(t *testing.T) {
	dir := t.TempDir()
	tomb, file, gate := filepath.Join(dir, "tomb.json"), filepath.Join(dir, "notifier"), filepath.Join(dir, "gate")
	r := start(t, opts{pid1: true}, "--notify", "--tombstone", tomb, "--wait-for", "file:"+gate,
		"--", self, "notifier", file, "mark:started", "sleep:300", "send:READY=1\\nSTATUS=serving 3 clients", "mark:ready")
	waitFile(t, tomb, `"state":"starting"`, 10*time.Second)
	writeFile(gate, "go")
	waitFile(t, file, "started", 10*time.Second)
	waitFile(t, tomb, `"state":"running"`, 10*time.Second)
	if status, line := probe(t, "ready:"+tomb); status != 1 || !strings.Contains(line, "does not hold") {
		t.Errorf("--probe ready: before READY=1 = %d %q, want 1", status, line)
	}
	if status, _ := probe(t, "tombstone:"+tomb); status != 0 {
		t.Errorf("--probe tombstone: of a running child = %d, want 0", status)
	}
	waitFile(t, tomb, `"state":"ready"`, 10*time.Second)
	ts := readTombstone(t, tomb)
	ts.check(t, map[string]any{"state": "ready", "status": "serving 3 clients"})
	if _, ok := ts["ready_at"].(string); !ok {
		t.Errorf("a ready tombstone has no ready_at: %v", ts)
	}
	if status, line := probe(t, "ready:"+tomb); status != 0 || !strings.Contains(line, `status "serving 3 clients"`) {
		t.Errorf("--probe ready: after READY=1 = %d %q, want 0 with the status", status, line)
	}
	if env := waitFile(t, file, "env", time.Second); !strings.Contains(env, "env /run/vigil-notify-") {
		t.Errorf("the child's NOTIFY_SOCKET is not a path in a directory of its own under /run: %q", env)
	}
	r.signal(unix.SIGTERM)
	r.expect(0)
	readTombstone(t, tomb).check(t, map[string]any{"state": "exited", "class": "success", "status": "serving 3 clients"})
}

func TestWaitForReadyHoldsTheChildBack(t *testing.T) {
	dir := t.TempDir()
	tomb, file, started := filepath.Join(dir, "side.json"), filepath.Join(dir, "notifier"), filepath.Join(dir, "started")
	side := start(t, opts{pid1: true}, "--notify", "--tombstone", tomb,
		"--", self, "notifier", file, "sleep:500", "send:READY=1", "mark:ready")
	main := start(t, opts{pid1: true}, "--wait-for", "ready:"+tomb, "--", self, "started", started)
	waitFile(t, tomb, `"state":"running"`, 10*time.Second)
	if pathExists(started) {
		t.Fatal("the main child started before the sidecar was ready")
	}
	main.expect(0)
	readyAt := readTombstone(t, tomb).time(t, "ready_at")
	if at := stampOf(t, started, "started"); at.Before(readyAt) {
		t.Errorf("the main child started %s before the sidecar was ready", readyAt.Sub(at))
	}
	side.signal(unix.SIGTERM)
	side.expect(0)
}

func TestWatchdogEndsAHungChild(t *testing.T) {
	dir := t.TempDir()
	tomb, file, hook := filepath.Join(dir, "tomb.json"), filepath.Join(dir, "notifier"), filepath.Join(dir, "hook")
	began := time.Now()
	r := start(t, opts{pid1: true}, "--notify", "--watchdog", "400ms", "--grace", "1s", "--tombstone", tomb,
		"--on-watchdog", hookLine(helper("hookdump", hook)...),
		"--", self, "notifier", file, "send:READY=1", "ping:100:10", "mark:hung")
	status := r.wait(20 * time.Second)
	// The notifier catches SIGTERM only; the default ABRT kills it.
	if status != 128+int(unix.SIGABRT) {
		t.Fatalf("vigil exited %d, want %d (the watchdog's SIGABRT)\nstderr:\n%s", status, 128+int(unix.SIGABRT), r.stderr)
	}
	got := waitFile(t, file, "hung", time.Second)
	if !strings.Contains(got, "env /") || !strings.Contains(got, " 400000\n") {
		t.Errorf("the child did not get NOTIFY_SOCKET and WATCHDOG_USEC=400000: %q", got)
	}
	// Ten pings 100 ms apart kept it alive for about a second.
	if took := time.Since(began); took < time.Second {
		t.Errorf("the watchdog fired after %s, while the child was still pinging", took)
	}
	readTombstone(t, tomb).check(t, map[string]any{"state": "exited", "class": "watchdog", "signal": "SIGABRT"})
	rep := readReport(t, hook, r.stderr.String())
	if rep.Env["VIGIL_CLASS"] != "watchdog" {
		t.Errorf("the --on-watchdog hook saw class %q", rep.Env["VIGIL_CLASS"])
	}
	if !strings.Contains(r.stderr.String(), "no WATCHDOG=1 in time") {
		t.Errorf("vigil did not warn about the hang:\n%s", r.stderr)
	}
}

func TestReadyOnTCPAndFile(t *testing.T) {
	dir := t.TempDir()
	tomb, addr, flag := filepath.Join(dir, "tomb.json"), filepath.Join(dir, "addr"), filepath.Join(dir, "flag")
	// The port is not known before the child listens: reserve one first.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	if status, _ := probe(t, fmt.Sprintf("tcp:127.0.0.1:%d", port)); status != 1 {
		t.Errorf("--probe tcp: with nothing listening = %d, want 1", status)
	}
	r := start(t, opts{}, "--ready-on", fmt.Sprintf("tcp:127.0.0.1:%d", port), "--ready-on", "file:"+flag,
		"--tombstone", tomb, "--", self, "listen-on", addr, fmt.Sprint(port))
	waitFile(t, addr, "127.0.0.1", 10*time.Second)
	if status, line := probe(t, fmt.Sprintf("tcp:127.0.0.1:%d", port)); status != 0 {
		t.Errorf("--probe tcp: while the child listens = %d %q, want 0", status, line)
	}
	// Listening alone is not enough: both targets must hold.
	waitFile(t, tomb, `"state":"running"`, 10*time.Second)
	if s := readTombstone(t, tomb)["state"]; s != "running" {
		t.Fatalf("ready before the file target held: %v", s)
	}
	writeFile(flag, "up")
	waitFile(t, tomb, `"state":"ready"`, 10*time.Second)
	r.signal(unix.SIGTERM)
	r.expect(0)
}

func init() {
	// listen-on FILE PORT accepts on 127.0.0.1:PORT, writes the address to
	// FILE and serves until SIGTERM ends it.
	helpers["listen-on"] = func(args []string) int {
		l, err := net.Listen("tcp", "127.0.0.1:"+args[1])
		if err != nil {
			return 90
		}
		writeFile(args[0], l.Addr().String())
		go acceptAll(l)
		c := make(chan os.Signal, 1)
		signal.Notify(c, unix.SIGTERM)
		<-c
		return 0
	}
}

// acceptAll accepts and closes connections until l is closed.
func acceptAll(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

// TestNotifyRefusesStrangersAndBadMessages: a process outside vigil's
// tree cannot make the child ready, and oversized or malformed datagrams
// do no harm.
func TestNotifyRefusesStrangersAndBadMessages(t *testing.T) {
	dir := t.TempDir()
	tomb, file := filepath.Join(dir, "tomb.json"), filepath.Join(dir, "notifier")
	logFile, err := os.Create(filepath.Join(dir, "vigil.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	r := startVia(t, via{stderr: logFile, argv: []string{vigilBin, "-v", "--notify", "--tombstone", tomb,
		"--", self, "notifier", file, "send:" + strings.Repeat("STATUS=x", 1000), "send:\\0\xff=garbage", "send:STATUS=still fine", "mark:sent"}})
	got := waitFile(t, file, "sent", 10*time.Second)
	socket := strings.Fields(got)[1]
	waitFile(t, tomb, `"status":"still fine"`, 10*time.Second)
	// The test process is not in vigil's tree.
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("READY=1\nSTATUS=forged"))
	c.Close()
	// Three refusals: the oversized one, the NUL, and the stranger's.
	var b []byte
	if !poll(10*time.Second, func() bool {
		b, _ = os.ReadFile(logFile.Name())
		return strings.Count(string(b), "notify message refused") >= 3
	}) {
		t.Fatalf("vigil did not refuse three messages:\n%s", b)
	}
	r.signal(unix.SIGTERM)
	r.expect(0)
	ts := readTombstone(t, tomb)
	if ts["status"] != "still fine" || ts["ready_at"] != nil {
		t.Errorf("a stranger's message counted: %v", ts)
	}
}

// TestSystemdNotifyMakesTheChildReady uses the real client: systemd-notify
// run from a shell child (it sends from its own pid, a descendant).
func TestSystemdNotifyMakesTheChildReady(t *testing.T) {
	sn := systemdNotify(t)
	dir := t.TempDir()
	tomb := filepath.Join(dir, "tomb.json")
	r := start(t, opts{pid1: true}, "--notify", "--tombstone", tomb, "--",
		"/bin/sh", "-c", sn+` --ready --status="up and running" && exec sleep 60`)
	waitFile(t, tomb, `"state":"ready"`, 10*time.Second)
	readTombstone(t, tomb).check(t, map[string]any{"state": "ready", "status": "up and running"})
	r.signal(unix.SIGTERM)
	r.expect(143)
}

// TestNotifyIsRelayedUpstream: vigil started by a service manager with
// NOTIFY_SOCKET passes its child's READY=1 and STATUS= on.
func TestNotifyIsRelayedUpstream(t *testing.T) {
	name := fmt.Sprintf("@vigil-e2e-upstream-%d", os.Getpid())
	up, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	file := filepath.Join(t.TempDir(), "notifier")
	r := start(t, opts{env: []string{"NOTIFY_SOCKET=" + name}}, "--notify",
		"--", self, "notifier", file, "send:READY=1\\nSTATUS=relayed")
	up.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	n, err := up.Read(buf)
	if err != nil {
		t.Fatalf("nothing was relayed upstream: %v\nstderr:\n%s", err, r.stderr)
	}
	if got := string(buf[:n]); !strings.Contains(got, "READY=1") || !strings.Contains(got, "STATUS=relayed") {
		t.Errorf("relayed %q, want READY=1 and STATUS=relayed", got)
	}
	if env := waitFile(t, file, "env", time.Second); strings.Contains(env, name) {
		t.Errorf("the child got vigil's upstream socket instead of vigil's own: %q", env)
	}
	r.signal(unix.SIGTERM)
	r.expect(0)
}

// TestReadyTimeoutEndsAChildThatIsNotReadyInTime: --ready-timeout stops a
// child that has not said READY=1 in time as --timeout stops one (class
// timeout); a child that said it in time runs on past the deadline.
func TestReadyTimeoutEndsAChildThatIsNotReadyInTime(t *testing.T) {
	const limit = 400 * time.Millisecond
	dir := t.TempDir()
	tomb, file := filepath.Join(dir, "late.json"), filepath.Join(dir, "late")
	began := time.Now()
	r := start(t, opts{pid1: true}, "--notify", "--ready-timeout", limit.String(), "--tombstone", tomb,
		"--", self, "notifier", file, "mark:started")
	r.expect(0) // the notifier ends on the SIGTERM, with 0
	if took := time.Since(began); took < limit {
		t.Errorf("the child was stopped %s after the start, before its --ready-timeout of %s", took, limit)
	}
	readTombstone(t, tomb).check(t, map[string]any{"state": "exited", "class": "timeout"})
	if !strings.Contains(r.stderr.String(), "not ready in time; stopping the child") {
		t.Errorf("vigil did not say why it stopped the child:\n%s", r.stderr)
	}

	tomb, file = filepath.Join(dir, "ready.json"), filepath.Join(dir, "ready")
	began = time.Now()
	r = start(t, opts{pid1: true}, "--notify", "--ready-timeout", limit.String(), "--tombstone", tomb,
		"--", self, "notifier", file, "send:READY=1", "mark:ready")
	waitFile(t, tomb, `"state":"ready"`, 10*time.Second)
	// Three times the limit past the start, it still runs, still ready.
	poll(10*time.Second, func() bool {
		if ts := readTombstone(t, tomb); ts["state"] != "ready" {
			t.Fatalf("the ready child's tombstone went on to %v", ts)
		}
		return time.Since(began) > 3*limit
	})
	r.signal(unix.SIGTERM)
	r.expect(0)
	if ts := readTombstone(t, tomb); ts["class"] == "timeout" {
		t.Errorf("a child ready in time ended as a timeout: %v", ts)
	}
}

// TestExtendTimeoutPushesTheReadyTimeoutBack: the real systemd-notify
// asks for more time (EXTEND_TIMEOUT_USEC=), and the child, ready after
// its --ready-timeout but within the extension, is not stopped.
func TestExtendTimeoutPushesTheReadyTimeoutBack(t *testing.T) {
	sn := systemdNotify(t)
	tomb := filepath.Join(t.TempDir(), "tomb.json")
	began := time.Now()
	r := start(t, opts{pid1: true}, "--notify", "--ready-timeout", "300ms", "--tombstone", tomb, "--",
		"/bin/sh", "-c", sn+` EXTEND_TIMEOUT_USEC=5000000 && sleep 1 && `+sn+` --ready && exec sleep 60`)
	waitFile(t, tomb, `"state":"ready"`, 10*time.Second)
	if took := time.Since(began); took < time.Second {
		t.Fatalf("ready after %s, before the shell's 1 s sleep", took)
	}
	r.signal(unix.SIGTERM)
	r.expect(143)
	if ts := readTombstone(t, tomb); ts["class"] == "timeout" {
		t.Errorf("the child that asked for more time was stopped as not ready: %v\nstderr:\n%s", ts, r.stderr)
	}
}

// systemdNotify is the path of the real client, systemd-notify; the test
// skips without it, and fails on CI, where .ci/install installs it.
func systemdNotify(t *testing.T) string {
	t.Helper()
	sn, err := exec.LookPath("systemd-notify")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("systemd-notify is missing (Debian package systemd); .ci/install installs it")
		}
		t.Skip("needs systemd-notify (Debian package systemd)")
	}
	return sn
}
