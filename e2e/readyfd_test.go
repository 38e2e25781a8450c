package e2e

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// --ready-fd (issue 21): s6's readiness convention, a line written to a
// descriptor, feeding the same state as READY=1.

func init() {
	helpers["s6-ready"] = s6Ready
}

// s6Ready writes "started RUN fds=LIST" to FILE (RUN counts the runs in
// FILE.runs; LIST the descriptors above 2 it holds), waits for GATE to
// exist, writes a newline to descriptor FD as an s6 service does, marks
// "said" and, on its first run when "exit1" follows, exits 1; else waits
// for SIGTERM. With "write-more" it goes on writing to FD until that
// fails with EPIPE (marked "epipe") or 10 s pass.
func s6Ready(args []string) int {
	fd, file, gate := mustAtoi(args[0]), args[1], args[2]
	// Before anything opens a file: the runtime's poller takes
	// descriptors of its own.
	var held []string
	for n := 3; n < 64; n++ {
		if _, err := unix.FcntlInt(uintptr(n), unix.F_GETFD, 0); err == nil {
			held = append(held, strconv.Itoa(n))
		}
	}
	c := make(chan os.Signal, 1)
	signal.Notify(c, unix.SIGTERM)
	runs, _ := os.ReadFile(file + ".runs")
	run := len(runs) + 1
	os.WriteFile(file+".runs", append(runs, 'x'), 0o644)
	log := fmt.Sprintf("started %d fds=%s\n", run, strings.Join(held, ","))
	writeFile(file, log)
	for {
		if _, err := os.Stat(gate); err == nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := unix.Write(fd, []byte("\n")); err != nil {
		log += "error " + err.Error() + "\n"
	}
	if len(args) > 3 && args[3] == "write-more" {
		// Until vigil's end is closed, the pipe takes them.
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if _, err := unix.Write(fd, []byte("more\n")); err == unix.EPIPE {
				log += "epipe\n"
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	unix.Close(fd)
	writeFile(file, log+"said\n")
	if len(args) > 3 && args[3] == "exit1" && run == 1 {
		return 1
	}
	<-c
	return 0
}

// TestReadyFdMarksTheChildReady: the child gets descriptor 5 (and no
// other above stdio); the tombstone says running until it writes a line
// there, then ready, which --probe ready: and another vigil's --wait-for
// ready: see and which is relayed to vigil's NOTIFY_SOCKET. As PID 1 and
// not.
func TestReadyFdMarksTheChildReady(t *testing.T) {
	for _, pid1 := range []bool{true, false} {
		t.Run(fmt.Sprintf("pid1=%v", pid1), func(t *testing.T) {
			if pid1 {
				needRoot(t)
			}
			dir := t.TempDir()
			tomb, file, gate := filepath.Join(dir, "tomb.json"), filepath.Join(dir, "s6"), filepath.Join(dir, "gate")
			name := fmt.Sprintf("@vigil-e2e-readyfd-%d-%v", os.Getpid(), pid1)
			up, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			defer up.Close()
			r := start(t, opts{pid1: pid1, env: []string{"NOTIFY_SOCKET=" + name}}, "--ready-fd", "5", "--tombstone", tomb,
				"--", self, "s6-ready", "5", file, gate)
			if got := waitFile(t, file, "started", 10*time.Second); !strings.Contains(got, "fds=5\n") {
				t.Errorf("the child holds %q, want descriptor 5 alone above stdio", got)
			}
			waitFile(t, tomb, `"state":"running"`, 10*time.Second)
			if status, _ := probe(t, "ready:"+tomb); status != 1 {
				t.Errorf("--probe ready: before the line = %d, want 1", status)
			}
			waiter := start(t, opts{}, "--wait-for", "ready:"+tomb, "--", self, "exit", "0")
			writeFile(gate, "go")
			if got := waitFile(t, file, "said", 10*time.Second); strings.Contains(got, "error") {
				t.Fatalf("the child could not write to descriptor 5: %q", got)
			}
			waitFile(t, tomb, `"state":"ready"`, 10*time.Second)
			if status, line := probe(t, "ready:"+tomb); status != 0 {
				t.Errorf("--probe ready: after the line = %d %q, want 0", status, line)
			}
			waiter.expect(0)
			up.SetReadDeadline(time.Now().Add(10 * time.Second))
			buf := make([]byte, 4096)
			n, err := up.Read(buf)
			if err != nil || !strings.Contains(string(buf[:n]), "READY=1") {
				t.Errorf("relayed %q (%v), want READY=1\nstderr:\n%s", buf[:n], err, r.stderr)
			}
			r.signal(unix.SIGTERM)
			r.expect(0)
		})
	}
}

// TestReadyFdIsFreshOnEveryRun: under --restart each run gets its own
// pipe at the descriptor and is ready only once it writes there itself.
func TestReadyFdIsFreshOnEveryRun(t *testing.T) {
	dir := t.TempDir()
	tomb, file, gate := filepath.Join(dir, "tomb.json"), filepath.Join(dir, "s6"), filepath.Join(dir, "gate")
	r := start(t, opts{pid1: os.Geteuid() == 0}, "--ready-fd", "3", "--tombstone", tomb, "--restart", "on-failure",
		"--restart-delay", "10ms", "--", self, "s6-ready", "3", file, gate, "exit1")
	waitFile(t, file, "started 1", 10*time.Second)
	writeFile(gate, "go") // the first run says ready, then fails
	waitFile(t, tomb, `"restarts":1`, 10*time.Second)
	got := waitFile(t, file, "started 2", 10*time.Second)
	if !strings.Contains(got, "fds=3\n") {
		t.Errorf("the second run holds %q, want descriptor 3", got)
	}
	// The gate is still there: the second run says ready at once.
	waitFile(t, file, "said", 10*time.Second)
	waitFile(t, tomb, `"state":"ready"`, 10*time.Second)
	readTombstone(t, tomb).check(t, map[string]any{"state": "ready", "restarts": 1})
	r.signal(unix.SIGTERM)
	r.expect(0)
}

// TestReadyFdIsClosedAfterTheLine: as under s6, vigil closes its end once
// the line came, so that a child writing more gets EPIPE instead of
// filling a pipe that nobody reads.
func TestReadyFdIsClosedAfterTheLine(t *testing.T) {
	dir := t.TempDir()
	tomb, file, gate := filepath.Join(dir, "tomb.json"), filepath.Join(dir, "s6"), filepath.Join(dir, "gate")
	writeFile(gate, "go")
	r := start(t, opts{pid1: os.Geteuid() == 0}, "--ready-fd", "4", "--tombstone", tomb,
		"--", self, "s6-ready", "4", file, gate, "write-more")
	if got := waitFile(t, file, "said", 20*time.Second); !strings.Contains(got, "epipe") {
		t.Errorf("writes after the line never failed: %q", got)
	}
	waitFile(t, tomb, `"state":"ready"`, 10*time.Second)
	r.signal(unix.SIGTERM)
	r.expect(0)
}
