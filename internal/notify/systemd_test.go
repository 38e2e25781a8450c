package notify

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// TestSystemdNotify runs the real client, Debian's systemd-notify, from a
// shell child, as vigil's child would: its messages reach the listener,
// and the sender check allows them whichever pid they carry. As root,
// systemd-notify signs its message with its parent's pid (the shell);
// as another user it cannot, and signs with its own; both are in the
// tree. It waits for its BARRIER=1 descriptor to be closed before it
// exits, so when the shell has exited the message has been handled.
func TestSystemdNotify(t *testing.T) {
	bin, err := exec.LookPath("systemd-notify")
	if err != nil {
		t.Skip("systemd-notify not installed (Debian package systemd)")
	}
	type variant struct {
		name   string
		script string
		cred   *syscall.Credential
		check  func(Update) bool
		want   string
		shell  int // 1: the shell's pid must sign a message; -1: it must not; 0: either
	}
	variants := []variant{
		{"ready and status", `"$NOTIFY" --ready --status=hello`, nil,
			func(u Update) bool { return u.Ready && u.Status != nil && *u.Status == "hello" }, "ready, status hello", 1},
		{"assignments", `"$NOTIFY" WATCHDOG=1 STOPPING=1 "STATUS=shutting down"`, nil,
			func(u Update) bool {
				return u.Stopping && u.Pings == 1 && u.Status != nil && *u.Status == "shutting down"
			}, "stopping, one ping, status shutting down", 1},
		{"from a grandchild of the shell", `sh -c '"$NOTIFY" --ready'`, nil,
			func(u Update) bool { return u.Ready }, "ready", 0},
	}
	if os.Geteuid() == 0 {
		variants = append(variants, variant{"as nobody, signed with its own pid", `"$NOTIFY" --ready --status=unprivileged`,
			&syscall.Credential{Uid: 65534, Gid: 65534},
			func(u Update) bool { return u.Ready && u.Status != nil && *u.Status == "unprivileged" }, "ready, status unprivileged", -1})
	}
	if os.Geteuid() != 0 {
		// Unprivileged, systemd-notify cannot sign with its parent's pid.
		for i := range variants {
			variants[i].shell = min(variants[i].shell, 0)
		}
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			var mu sync.Mutex
			var senders []int
			tree := Tree(os.Getpid())
			l := listen(t, Config{Accept: func(s Sender) bool {
				mu.Lock()
				senders = append(senders, s.Pid)
				mu.Unlock()
				return tree(s)
			}, Owner: v.cred})
			cmd := exec.Command("sh", "-c", v.script)
			cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+l.Socket(), "NOTIFY="+bin)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: v.cred}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s: %v; stderr:\n%s", v.script, err, stderr.String())
			}
			u := l.Take()
			mu.Lock()
			defer mu.Unlock()
			if shell := slices.Contains(senders, cmd.Process.Pid); v.shell == 1 && !shell || v.shell == -1 && shell {
				t.Errorf("messages signed by %v; the shell is %d, want it among them: %v", senders, cmd.Process.Pid, v.shell == 1)
			}
			if !v.check(u) || u.Refused != 0 || u.Dropped != 0 {
				t.Errorf("%s sent %+v (senders %v), want %s and nothing refused; stderr:\n%s",
					v.script, u, senders, v.want, stderr.String())
			}
		})
	}
}
