package notify

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Issue 19: the notify socket used against the child.

// lingering returns a TCP socket whose close blocks for linger: it has
// SO_LINGER set and unsent data its peer never reads. The peer is
// closed when the test ends.
func lingering(t *testing.T, linger time.Duration) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	// A small window that nobody empties: the data stays unsent.
	peer.(*net.TCPConn).SetReadBuffer(4096)
	tc := c.(*net.TCPConn)
	tc.SetWriteBuffer(4096)
	f, err := tc.File() // a blocking duplicate
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	unix.SetNonblock(fd, true)
	// Fill the peer's window and our send buffer: the data stays unsent.
	chunk := make([]byte, 65536)
	for {
		if _, err := unix.Write(fd, chunk); err != nil {
			if errors.Is(err, unix.EAGAIN) {
				break
			}
			t.Fatal(err)
		}
	}
	if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: int32(linger / time.Second)}); err != nil {
		t.Fatal(err)
	}
	unix.SetNonblock(fd, false)
	return fd
}

// TestLingeringDescriptorsNeverBlockTheReader: a TCP socket that takes
// 12 s to close, sent with a datagram by a stranger or by the tree, does
// not hold up the messages after it.
func TestLingeringDescriptorsNeverBlockTheReader(t *testing.T) {
	for _, who := range []string{"stranger", "tree"} {
		t.Run(who, func(t *testing.T) {
			var stranger atomic.Bool
			stranger.Store(who == "stranger")
			l, err := Listen(Config{Accept: func(Sender) bool { return !stranger.Load() }, Dirs: []string{t.TempDir()}})
			if err != nil {
				t.Fatal(err)
			}
			// Queued before the listener reads, and the sender's own
			// copy closed: the listener's close is the last, the one
			// that lingers.
			fd := lingering(t, 12*time.Second)
			send(t, l.Socket(), []byte("FDSTORE=1"), fd)
			unix.Close(fd)
			errc := make(chan error, 1)
			go func() { errc <- l.Serve() }()
			defer func() { l.Close(); <-errc }()
			began := time.Now()
			stranger.Store(false)
			send(t, l.Socket(), []byte("READY=1"))
			barrier(t, l.Socket())
			if took := time.Since(began); took > 5*time.Second {
				t.Errorf("the message after a lingering socket was handled after %s, want at once", took)
			}
			if u := l.Take(); !u.Ready {
				t.Errorf("Take() = %+v, want ready", u)
			}
		})
	}
}

// TestCloseNeverWaitsForQueuedDescriptors: a lingering socket still in
// the queue when the listener closes does not hold up Close (the
// process's exit).
func TestCloseNeverWaitsForQueuedDescriptors(t *testing.T) {
	l, err := Listen(Config{Accept: self, Dirs: []string{t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	fd := lingering(t, 12*time.Second)
	send(t, l.Socket(), []byte("FDSTORE=1"), fd)
	unix.Close(fd)
	began := time.Now()
	l.Close() // never served: the datagram is still queued
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("Close took %s with a lingering socket queued, want at once", took)
	}
}

// TestStrangersSpendNoTokens: a flood from outside the tree is refused
// before the rate bound, so the tree's own burst still counts whole.
func TestStrangersSpendNoTokens(t *testing.T) {
	now := func() time.Time { return time.Unix(0, 0) }
	var stranger atomic.Bool
	stranger.Store(true)
	// The clock stands still: the burst of 4 is all the tree gets.
	l := listen(t, Config{Accept: func(Sender) bool { return !stranger.Load() }, Burst: 4, Rate: 1, Now: now})
	for range 50 {
		send(t, l.Socket(), []byte("WATCHDOG=1"))
	}
	// A stranger's barrier: handled (its descriptor closed) and refused.
	barrier(t, l.Socket())
	if u := l.Take(); u.Refused != 51 || u.Dropped != 0 || u.Changed() {
		t.Fatalf("after a stranger's flood: Take() = %+v, want 51 refused, none dropped", u)
	}
	stranger.Store(false)
	for range 3 {
		send(t, l.Socket(), []byte("WATCHDOG=1"))
	}
	barrier(t, l.Socket())
	if u := l.Take(); u.Pings != 3 || u.Dropped != 0 {
		t.Errorf("the tree's burst after a stranger's flood: Take() = %+v, want 3 pings and the barrier, none dropped", u)
	}
}

// TestReadBound: however fast datagrams come, the listener reads no
// more than its burst and rate allow; the rest wait in the kernel.
func TestReadBound(t *testing.T) {
	l := listen(t, Config{Accept: func(Sender) bool { return false }, ReadBurst: 20, ReadRate: 100})
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &unix.Timeval{Sec: 0, Usec: 100000})
	began := time.Now()
	var sent int
	for time.Since(began) < 500*time.Millisecond {
		if unix.Sendto(fd, []byte("WATCHDOG=1"), 0, &unix.SockaddrUnix{Name: l.Socket()}) == nil {
			sent++
		}
	}
	elapsed := time.Since(began)
	u := l.Take()
	// Upper bound only: a loaded machine reads fewer, never more.
	if most := 20 + int(100*elapsed.Seconds()) + 16; u.Refused > most {
		t.Errorf("read %d datagrams in %s (of %d sent), want at most %d (burst 20, 100 a second)", u.Refused, elapsed, sent, most)
	}
	if u.Refused == 0 {
		t.Errorf("read nothing of %d datagrams in %s", sent, elapsed)
	}
}

// TestExitedSenderIsRecognised: a sender of the tree that has exited
// and been reaped before its datagram is read still counts: the kernel's
// pidfd says it was in vigil's PID namespace and cgroup. With the real
// systemd-notify --no-block where it is installed, and a small program.
func TestExitedSenderIsRecognised(t *testing.T) {
	senders := [][]string{{"helper"}}
	if sn, err := exec.LookPath("systemd-notify"); err == nil {
		senders = append(senders, []string{sn, "--ready", "--no-block"})
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, argv := range senders {
		t.Run(argv[0], func(t *testing.T) {
			l, err := Listen(Config{Accept: Tree(os.Getpid()), Dirs: []string{t.TempDir()}})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			cmd := exec.Command(argv[0], argv[1:]...)
			if argv[0] == "helper" {
				cmd = exec.Command(exe)
			}
			cmd.Env = append(os.Environ(), "NOTIFY_TEST_HELPER=send", "NOTIFY_SOCKET="+l.Socket())
			if out, err := cmd.CombinedOutput(); err != nil { // sent, exited, reaped
				t.Fatalf("%v: %v\n%s", argv, err, out)
			}
			errc := make(chan error, 1)
			go func() { errc <- l.Serve() }()
			barrier(t, l.Socket())
			if u := l.Take(); !u.Ready || u.Refused != 0 {
				t.Errorf("READY=1 from %v, reaped before it was read: Take() = %+v, want ready", argv, u)
			}
			l.Close()
			<-errc
		})
	}
}

// TestGoneSenders: what is known of a sender that is gone decides.
func TestGoneSenders(t *testing.T) {
	tr := &tree{root: 1, cgroup: 7}
	for _, tc := range []struct {
		name string
		s    Sender
		cg   uint64
		want bool
	}{
		{"in the namespace and the cgroup", Sender{Pid: 40, pidfd: -1}, 7, true},
		{"in the namespace, the kernel kept no cgroup", Sender{Pid: 40, pidfd: -1}, 0, true},
		{"in the namespace, another cgroup (a pod neighbour sharing the PID namespace)", Sender{Pid: 40, pidfd: -1}, 8, false},
		{"another PID namespace", Sender{Pid: 0, pidfd: -1}, 7, false},
	} {
		if got := tr.accept(tc.s, gone, tc.cg); got != tc.want {
			t.Errorf("%s: accept = %v, want %v", tc.name, got, tc.want)
		}
	}
	if (&tree{root: 1}).accept(Sender{Pid: 40}, unknown, 0) || (&tree{root: 1}).accept(Sender{Pid: 40}, outside, 0) {
		t.Error("a sender outside the tree, or that cannot be placed, was accepted")
	}
}

// TestTreeByPidfd: the walk by pidfds places the test itself, a
// grandchild, the test's parent, and a child that is gone.
func TestTreeByPidfd(t *testing.T) {
	me := os.Getpid()
	open := func(pid int) int {
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			t.Fatalf("pidfd_open(%d): %v", pid, err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		return fd
	}
	_, grandchild := startGrandchild(t)
	dead := exec.Command("true")
	if err := dead.Start(); err != nil {
		t.Fatal(err)
	}
	deadFd := open(dead.Process.Pid)
	dead.Wait()
	for _, tc := range []struct {
		name  string
		pidfd int
		want  placement
	}{
		{"itself", open(me), inside},
		{"a grandchild", open(grandchild), inside},
		{"its parent", open(os.Getppid()), outside},
		{"a reaped child", deadFd, gone},
	} {
		got, ok := placePidfd(tc.pidfd, me, MaxTreeDepth)
		if !ok {
			t.Skip("no PIDFD_GET_INFO (Linux 6.13)")
		}
		if got != tc.want {
			t.Errorf("%s: placePidfd = %d, want %d", tc.name, got, tc.want)
		}
	}
}

// TestGoneStrangerStaysAStranger: a stranger placed outside the tree
// while it lived is refused when a later datagram of its own is read
// after it has been reaped; one that was never seen alive would pass as
// gone (TestGoneSenders).
func TestGoneStrangerStaysAStranger(t *testing.T) {
	// The tree is a sleep's: the test and its other children are outside.
	root := exec.Command("sleep", "60")
	if err := root.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Process.Kill(); root.Wait() })
	judge := Tree(root.Process.Pid)
	a := listen(t, Config{Accept: judge, Dirs: []string{t.TempDir()}})
	b, err := Listen(Config{Accept: judge, Dirs: []string{t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "NOTIFY_TEST_HELPER=send-twice", "NOTIFY_SOCKET="+a.Socket(), "NOTIFY_SOCKET2="+b.Socket())
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Its first datagram, read while it lives: outside.
	deadline := time.Now().Add(bound)
	var refused int
	for refused == 0 && time.Now().Before(deadline) {
		refused += a.Take().Refused
		time.Sleep(time.Millisecond)
	}
	if refused != 1 {
		t.Fatalf("the stranger's first datagram: %d refused, want 1", refused)
	}
	in.Write([]byte("go\n"))
	in.Close()
	cmd.Wait() // sent to b, exited, reaped
	if !strings.Contains(out.String(), "sent\nsent") {
		t.Fatalf("the stranger said %q", out.String())
	}
	go b.Serve()
	barrier(t, b.Socket())
	if u := b.Take(); u.Ready || u.Refused != 2 {
		t.Errorf("the stranger's datagram read after it was reaped: Take() = %+v, want refused (and the barrier's)", u)
	}
}
