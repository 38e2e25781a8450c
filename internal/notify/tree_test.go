package notify

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
)

func TestInTreeWalk(t *testing.T) {
	// 1 ─ 10 (vigil) ─ 20 ─ 30 ─ 40;  1 ─ 50;  0 ─ 60 (entered from outside the namespace)
	parents := map[int]int{10: 1, 20: 10, 30: 20, 40: 30, 50: 1, 60: 0, 70: 71, 71: 70}
	lookup := func(pid int) (int, error) {
		p, ok := parents[pid]
		if !ok {
			return 0, errors.New("no such process")
		}
		return p, nil
	}
	for _, tc := range []struct {
		name      string
		pid, root int
		depth     int
		want      placement
	}{
		{"the root itself", 10, 10, 64, inside},
		{"a child", 20, 10, 64, inside},
		{"a great-grandchild", 40, 10, 64, inside},
		{"a sibling branch", 50, 10, 64, outside},
		{"the root's parent", 1, 10, 64, outside},
		{"entered from outside the namespace", 60, 10, 64, outside},
		{"a process that is gone", 99, 10, 64, gone},
		{"a loop from reused pids ends", 70, 10, 64, outside},
		{"no pid in this namespace", 0, 10, 64, outside},
		{"everything is under pid 1", 40, 1, 64, inside},
		{"depth bound reached", 40, 10, 2, outside},
		{"depth bound just enough", 40, 10, 3, inside},
	} {
		if got := inTree(tc.pid, tc.root, tc.depth, lookup); got != tc.want {
			t.Errorf("%s: inTree(%d, %d, depth %d) = %v, want %v", tc.name, tc.pid, tc.root, tc.depth, got, tc.want)
		}
	}
}

func TestParseStatPPid(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		ok   bool
	}{
		{"42 (sh) S 7 42 42 0 -1", 7, true},
		{"42 (a) b) c) R 9 1 1", 9, true}, // a command name with ") " in it
		{"42 (we ird (x)) Z 0 0", 0, true},
		{"42 (sh) S", 0, false},
		{"42 sh S 7", 0, false},
		{"42 (sh) S x 1", 0, false},
		{"", 0, false},
	} {
		got, err := parseStatPPid([]byte(tc.in))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseStatPPid(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// inTreeByProc reports whether pid is root or one of root's descendants by the
// walk through /proc that Tree's judge falls back on.
func inTreeByProc(pid, root int) bool {
	return inTree(pid, root, MaxTreeDepth, procPPid) == inside
}

// startGrandchild starts a shell that starts a sleep: the sleep's parent
// is the shell (child), whose parent is this test. Both are killed when
// the test ends.
func startGrandchild(t *testing.T) (child *exec.Cmd, grandchild int) {
	t.Helper()
	cmd := exec.Command("sh", "-c", `sleep 30 & echo $!; wait`)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if _, err := fmt.Fscan(out, &grandchild); err != nil {
		t.Fatalf("reading the grandchild's pid: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Kill(grandchild, syscall.SIGKILL) })
	return cmd, grandchild
}

// TestInTreeProc checks the /proc walk on real processes: this test, its
// parent, and a grandchild started through a shell.
func TestInTreeProc(t *testing.T) {
	me := os.Getpid()
	if !inTreeByProc(me, me) {
		t.Errorf("inTreeByProc(self=%d, self) = false, want true", me)
	}
	if inTreeByProc(os.Getppid(), me) {
		t.Errorf("inTreeByProc(parent=%d, self=%d) = true, want false", os.Getppid(), me)
	}
	if me != 1 && inTreeByProc(1, me) {
		t.Errorf("inTreeByProc(1, self=%d) = true, want false", me)
	}
	cmd, grandchild := startGrandchild(t)
	if !inTreeByProc(grandchild, me) {
		t.Errorf("inTreeByProc(grandchild=%d, self=%d) = false, want true", grandchild, me)
	}
	if !inTreeByProc(grandchild, cmd.Process.Pid) {
		t.Errorf("inTreeByProc(grandchild=%d, child=%d) = false, want true", grandchild, cmd.Process.Pid)
	}
	if inTreeByProc(cmd.Process.Pid, grandchild) {
		t.Errorf("inTreeByProc(child=%d, grandchild=%d) = true, want false", cmd.Process.Pid, grandchild)
	}
}
