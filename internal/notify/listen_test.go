package notify

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestMain runs the test binary as a helper when asked to (see
// runOutsideHelper), the way os/exec's own tests do.
func TestMain(m *testing.M) {
	switch os.Getenv("NOTIFY_TEST_HELPER") {
	case "listen-in-new-pidns":
		os.Exit(listenHelper())
	case "send":
		os.Exit(sendHelper())
	case "send-twice":
		// To NOTIFY_SOCKET, then after a line on stdin to NOTIFY_SOCKET2.
		sendHelper()
		bufio.NewScanner(os.Stdin).Scan()
		os.Setenv("NOTIFY_SOCKET", os.Getenv("NOTIFY_SOCKET2"))
		os.Exit(sendHelper())
	case "send-and-wait":
		code := sendHelper()
		bufio.NewScanner(os.Stdin).Scan()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// bound is how long a test waits for something that should take
// microseconds before it calls it a failure.
const bound = 10 * time.Second

// listen starts a listener served until the test ends.
func listen(t *testing.T, cfg Config) *Listener {
	t.Helper()
	l, err := Listen(cfg)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- l.Serve() }()
	t.Cleanup(func() {
		l.Close()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Serve after Close: %v, want nil", err)
			}
		case <-time.After(bound):
			t.Errorf("Serve still running %s after Close", bound)
		}
	})
	return l
}

func self(s Sender) bool { return s.Pid == os.Getpid() }

// send sends one datagram to socket from this process, with fds attached.
func send(t *testing.T, socket string, payload []byte, fds ...int) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if err := unix.Sendmsg(fd, payload, oob, &unix.SockaddrUnix{Name: socket}, 0); err != nil {
		t.Fatalf("sendmsg %q to %s: %v", payload, socket, err)
	}
}

// pipeClosed reports whether every write end of the pipe whose read end
// is r has been closed: read returns EOF. It waits at most bound.
func pipeClosed(t *testing.T, r int) bool {
	t.Helper()
	fds := []unix.PollFd{{Fd: int32(r), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, int(bound/time.Millisecond))
	if err != nil {
		t.Fatalf("poll: %v", err)
	}
	if n == 0 {
		return false
	}
	var b [1]byte
	m, err := unix.Read(r, b[:])
	return m == 0 && err == nil
}

// pipe returns a pipe whose ends are closed when the test ends (closing
// an end twice is harmless here: the numbers are not reused in between
// by anything the test still looks at).
func pipe(t *testing.T) (r, w int) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(p[0]) })
	return p[0], p[1]
}

// barrier does what sd_notify_barrier does: it sends BARRIER=1 with the
// write end of a pipe and waits until the listener has closed it. The
// listener handles datagrams in order, so everything sent before has been
// handled by then.
func barrier(t *testing.T, socket string) {
	t.Helper()
	r, w := pipe(t)
	send(t, socket, []byte("BARRIER=1"), w)
	unix.Close(w)
	if !pipeClosed(t, r) {
		t.Fatalf("barrier: the listener did not close the descriptor within %s", bound)
	}
}

// listenWoken starts a listener as listen does, whose wake-ups
// (Config.Notify) land in a channel of capacity 1: one pending wake-up
// stands for any number of them, as in vigil's intake.
func listenWoken(t *testing.T, cfg Config) (*Listener, chan struct{}) {
	t.Helper()
	wake := make(chan struct{}, 1)
	cfg.Notify = func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	return listen(t, cfg), wake
}

// woken reports whether a wake-up is pending, without waiting.
func woken(wake chan struct{}) bool {
	select {
	case <-wake:
		return true
	default:
		return false
	}
}

// TestSocketIsPrivateAndUnique: the socket is a path in a directory of
// its own, mode 0700, which only its owner (and root) may enter.
func TestSocketIsPrivateAndUnique(t *testing.T) {
	a := listen(t, Config{Accept: self, Dirs: []string{t.TempDir()}})
	b := listen(t, Config{Accept: self, Dirs: []string{t.TempDir()}})
	for _, l := range []*Listener{a, b} {
		if l.dir == "" || !strings.HasSuffix(l.Socket(), "/notify") {
			t.Fatalf("Socket() = %q, want a path ending in /notify", l.Socket())
		}
		st, err := os.Stat(filepath.Dir(l.Socket()))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o700 || !st.IsDir() {
			t.Errorf("%s: mode %v, want a directory of mode 0700", filepath.Dir(l.Socket()), st.Mode())
		}
		if uid := int(st.Sys().(*syscall.Stat_t).Uid); uid != os.Geteuid() {
			t.Errorf("%s belongs to uid %d, want %d", filepath.Dir(l.Socket()), uid, os.Geteuid())
		}
	}
	if a.Socket() == b.Socket() {
		t.Errorf("two listeners share the socket %q", a.Socket())
	}
	send(t, a.Socket(), []byte("READY=1"))
	barrier(t, a.Socket())
	if u := a.Take(); !u.Ready {
		t.Errorf("Take() = %+v, want ready", u)
	}
	// Close removes the directory.
	dir := filepath.Dir(a.Socket())
	a.Close()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s after Close: %v, want it gone", dir, err)
	}
}

// TestSocketForAnotherUser: with an owner, the directory and the socket
// are the owner's, and another user (not root) cannot send at all.
func TestSocketForAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving the socket to another user needs root")
	}
	base, err := os.MkdirTemp("", "notify-base-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	// A directory the user cannot pass through is skipped.
	closed := t.TempDir()
	l := listen(t, Config{Accept: func(Sender) bool { return true }, Dirs: []string{closed, base},
		Owner: &syscall.Credential{Uid: 65534, Gid: 65534}})
	if !strings.HasPrefix(l.Socket(), base+"/") {
		t.Errorf("Socket() = %q, want it in %s, the first directory user 65534 can pass through", l.Socket(), base)
	}
	st, err := os.Stat(filepath.Dir(l.Socket()))
	if err != nil {
		t.Fatal(err)
	}
	if sys := st.Sys().(*syscall.Stat_t); sys.Uid != 65534 || sys.Gid != 65534 {
		t.Errorf("the directory belongs to %d:%d, want 65534:65534", sys.Uid, sys.Gid)
	}
	for _, tc := range []struct {
		uid  uint32
		want string
	}{{65534, "sent"}, {65533, "permission denied"}} {
		out, err := sendAs(t, tc.uid, l.Socket())
		if !strings.Contains(out, tc.want) {
			t.Errorf("uid %d sending: %q (%v), want %q", tc.uid, out, err, tc.want)
		}
	}
}

// sendAs runs the test binary as uid to send one datagram to socket;
// it prints "sent" or the error.
func sendAs(t *testing.T, uid uint32, socket string) (string, error) {
	t.Helper()
	// A copy of the test binary that the user can run: the build's own
	// directory is not open to it.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "notify-send-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	exe = filepath.Join(dir, "send")
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "NOTIFY_TEST_HELPER=send", "NOTIFY_SOCKET="+socket)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// sendHelper sends READY=1 to $NOTIFY_SOCKET and says how it went.
func sendHelper() int {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err == nil {
		err = unix.Sendto(fd, []byte("READY=1"), 0, &unix.SockaddrUnix{Name: os.Getenv("NOTIFY_SOCKET")})
	}
	if err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Println("sent")
	return 0
}

// TestNoWritableDirectoryFallsBackToAbstract: where no directory can be
// made, the socket is abstract, and says so.
func TestNoWritableDirectoryFallsBackToAbstract(t *testing.T) {
	logs := &records{}
	l := listen(t, Config{Accept: self, Dirs: []string{"/nonexistent", "/proc"}, Log: slog.New(logs)})
	if l.dir != "" || !strings.HasPrefix(l.Socket(), "@vigil-notify-") || len(l.Socket()) != len("@vigil-notify-")+16 {
		t.Errorf("Socket() = %q, want @vigil-notify- and 16 hex digits", l.Socket())
	}
	if logs.count("abstract") != 1 {
		t.Errorf("log lines %q, want one saying the socket is abstract", logs.msgs)
	}
	send(t, l.Socket(), []byte("READY=1"))
	barrier(t, l.Socket())
	if u := l.Take(); !u.Ready {
		t.Errorf("Take() = %+v, want ready", u)
	}
}

// TestQuickSuccessionIsNotLost: READY=1, STATUS= twice and WATCHDOG=1
// twice, sent back to back before the supervisor takes anything, come
// out as one Update holding all of it.
func TestQuickSuccessionIsNotLost(t *testing.T) {
	l, wake := listenWoken(t, Config{Accept: self})
	for _, m := range []string{"READY=1", "STATUS=starting", "STATUS=serving", "WATCHDOG=1", "WATCHDOG=1"} {
		send(t, l.Socket(), []byte(m))
	}
	barrier(t, l.Socket())
	if !woken(wake) {
		t.Fatal("no wake-up pending after five messages")
	}
	u := l.Take()
	if !u.Ready || u.Phase != PhaseReady || u.Status == nil || *u.Status != "serving" || u.Pings != 2 || u.LastPing.IsZero() {
		t.Errorf("Take() = %+v, want ready, status serving, 2 pings", u)
	}
	if woken(wake) {
		t.Error("a second wake-up is pending; want one per Take")
	}
	if u := l.Take(); u.Changed() || u.Refused != 0 || u.Dropped != 0 {
		t.Errorf("second Take() = %+v, want nothing", u)
	}
}

func TestTakeStartsAfresh(t *testing.T) {
	l, wake := listenWoken(t, Config{Accept: self})
	send(t, l.Socket(), []byte("READY=1\nWATCHDOG=1"))
	barrier(t, l.Socket())
	<-wake
	if u := l.Take(); !u.Ready || u.Pings != 1 {
		t.Fatalf("first Take() = %+v, want ready and one ping", u)
	}
	send(t, l.Socket(), []byte("WATCHDOG=1\nWATCHDOG_USEC=5000000\nEXTEND_TIMEOUT_USEC=10"))
	send(t, l.Socket(), []byte("STOPPING=1\nWATCHDOG=trigger"))
	barrier(t, l.Socket())
	if !woken(wake) {
		t.Fatal("no wake-up pending")
	}
	u := l.Take()
	if u.Ready || !u.Stopping || u.Phase != PhaseStopping || u.Pings != 1 || !u.WatchdogTrigger ||
		u.WatchdogInterval == nil || *u.WatchdogInterval != 5*time.Second || u.ExtendTimeout == nil || *u.ExtendTimeout != 10*time.Microsecond {
		t.Errorf("second Take() = %+v, want stopping, one ping, trigger, 5s watchdog, 10µs extension", u)
	}
}

// TestNothingToActOnWakesNoOne: unknown keys, MAINPID and barriers change
// nothing the supervisor acts on.
func TestNothingToActOnWakesNoOne(t *testing.T) {
	l, wake := listenWoken(t, Config{Accept: self})
	send(t, l.Socket(), []byte("FDSTORE=1\nMAINPID=1234\nERRNO=5"))
	barrier(t, l.Socket())
	if woken(wake) {
		t.Errorf("woken by a message with nothing to act on: %+v", l.Take())
	}
}

// TestRefusedWithoutHarm: a sender the predicate refuses, an oversized
// datagram, a NUL, an empty one change nothing; a good message after them
// still counts.
func TestRefusedWithoutHarm(t *testing.T) {
	var refuse atomic.Bool
	refuse.Store(true)
	var asked atomic.Int64
	l, wake := listenWoken(t, Config{Accept: func(s Sender) bool {
		asked.Store(int64(s.Pid))
		return !refuse.Load()
	}})
	send(t, l.Socket(), []byte("READY=1\nSTATUS=from a stranger"))
	barrier(t, l.Socket())
	if got := asked.Load(); got != int64(os.Getpid()) {
		t.Errorf("Accept was asked about pid %d, want the sender %d", got, os.Getpid())
	}
	if u := l.Take(); u.Changed() || u.Refused != 2 {
		t.Fatalf("Take() after a stranger's message and barrier = %+v, want nothing changed and 2 refused", u)
	}
	refuse.Store(false)
	send(t, l.Socket(), []byte("READY=1\nSTATUS="+strings.Repeat("x", MaxMessage)))
	send(t, l.Socket(), []byte("READY=1\x00"))
	send(t, l.Socket(), nil)
	barrier(t, l.Socket())
	if woken(wake) {
		t.Fatalf("woken by refused messages: %+v", l.Take())
	}
	if u := l.Take(); u.Changed() || u.Refused != 3 {
		t.Fatalf("Take() after refused messages = %+v, want nothing changed and 3 refused (oversized, NUL, empty)", u)
	}
	send(t, l.Socket(), []byte("READY=1"))
	barrier(t, l.Socket())
	if u := l.Take(); !u.Ready || u.Refused != 0 {
		t.Errorf("Take() after a good message = %+v, want ready", u)
	}
}

// TestSizeBound: a datagram of MaxMessage bytes counts; one byte more is
// refused whole, not cut to MaxMessage and applied.
func TestSizeBound(t *testing.T) {
	l := listen(t, Config{Accept: self})
	status := func(total int) []byte {
		return []byte("STATUS=" + strings.Repeat("x", total-len("STATUS=")))
	}
	send(t, l.Socket(), status(MaxMessage+1))
	barrier(t, l.Socket())
	if u := l.Take(); u.Status != nil || u.Refused != 1 {
		t.Fatalf("a %d-byte datagram: Take() = %+v, want it refused", MaxMessage+1, u)
	}
	send(t, l.Socket(), status(MaxMessage))
	barrier(t, l.Socket())
	if u := l.Take(); u.Status == nil || len(*u.Status) != MaxMessage-len("STATUS=") || u.Refused != 0 {
		t.Errorf("a %d-byte datagram: Take() = %+v, want its status", MaxMessage, u)
	}
}

// TestDescriptorsAreClosed: descriptors that come with a message are
// closed whether the message counts, is refused or is dropped.
func TestDescriptorsAreClosed(t *testing.T) {
	var clock atomic.Int64
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	var refuse atomic.Bool
	l := listen(t, Config{Accept: func(Sender) bool { return !refuse.Load() }, Burst: 1, Rate: 1, Now: now})
	socket := l.Socket()
	for _, tc := range []struct {
		name   string
		setup  func()
		fds    int
		packet string
	}{
		{"counted", func() {}, 1, "READY=1\nFDSTORE=1"},
		{"many at once", func() { clock.Add(int64(time.Second)) }, 3, "FDSTORE=1"},
		{"refused", func() { clock.Add(int64(time.Second)); refuse.Store(true) }, 2, "READY=1"},
		{"dropped", func() {
			// The refused one spent no token: this one does, and the
			// clock stands still.
			refuse.Store(false)
			send(t, socket, []byte("STATUS=spends the token"))
		}, 2, "READY=1"},
	} {
		tc.setup()
		var reads []int
		var writes []int
		for range tc.fds {
			r, w := pipe(t)
			reads, writes = append(reads, r), append(writes, w)
		}
		send(t, socket, []byte(tc.packet), writes...)
		for _, w := range writes {
			unix.Close(w)
		}
		for i, r := range reads {
			if !pipeClosed(t, r) {
				t.Errorf("%s: descriptor %d of %d still open in the listener after %s", tc.name, i+1, tc.fds, bound)
			}
		}
	}
	if u := l.Take(); !u.Ready || u.Refused != 1 || u.Dropped != 1 {
		t.Errorf("Take() = %+v, want ready, 1 refused, 1 dropped", u)
	}
}

// records counts log records whose message holds a word.
type records struct {
	mu   sync.Mutex
	msgs []string
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, rec.Message)
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }
func (r *records) count(word string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if strings.Contains(m, word) {
			n++
		}
	}
	return n
}

// TestRateBound: past the burst, datagrams are dropped until tokens come
// back, with one log line per run of drops.
func TestRateBound(t *testing.T) {
	var clock atomic.Int64
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	logs := &records{}
	l := listen(t, Config{Accept: self, Burst: 3, Rate: 2, Now: now, Log: slog.New(logs)})
	// The burst: 3 messages count. Then 4 are dropped, the barrier's own
	// datagram among them (its descriptor is still closed).
	for i := range 6 {
		send(t, l.Socket(), fmt.Appendf(nil, "STATUS=%d", i))
	}
	barrier(t, l.Socket())
	u := l.Take()
	if u.Status == nil || *u.Status != "2" || u.Dropped != 4 {
		t.Fatalf("after a burst of 7: Take() = %+v, want status 2 and 4 dropped", u)
	}
	if n := logs.count("dropping"); n != 1 {
		t.Errorf("%d log lines about dropping in one run of drops, want 1 (%q)", n, logs.msgs)
	}
	// Half a second later one token is back (2 per second).
	clock.Add(int64(time.Second / 2))
	send(t, l.Socket(), []byte("STATUS=later"))
	send(t, l.Socket(), []byte("STATUS=too soon"))
	barrier(t, l.Socket())
	if u := l.Take(); u.Status == nil || *u.Status != "later" || u.Dropped != 2 {
		t.Fatalf("after one token came back: Take() = %+v, want status later and 2 dropped", u)
	}
	if n := logs.count("dropping"); n != 2 {
		t.Errorf("%d log lines about dropping after two runs of drops, want 2 (%q)", n, logs.msgs)
	}
	// The bucket refills to the burst, not beyond.
	clock.Add(int64(time.Hour))
	for i := range 5 {
		send(t, l.Socket(), fmt.Appendf(nil, "STATUS=%d", i))
	}
	barrier(t, l.Socket())
	if u := l.Take(); u.Dropped != 3 {
		t.Errorf("after an hour: Take() = %+v, want the burst of 3 to count and 3 dropped", u)
	}
}

func TestBucket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := bucket{burst: 2, rate: 4, tokens: 2, last: t0}
	steps := []struct {
		at   time.Duration
		want bool
	}{
		{0, true}, {0, true}, {0, false}, // the burst
		{100 * time.Millisecond, false}, // 0.4 of a token
		{250 * time.Millisecond, true},  // one token after 1/4 s
		{250 * time.Millisecond, false},
		{-time.Second, false}, // a clock going back gives nothing
		{time.Hour, true}, {time.Hour, true}, {time.Hour, false},
	}
	for i, s := range steps {
		if got := b.take(t0.Add(s.at)); got != s.want {
			t.Fatalf("step %d at %s: take() = %v, want %v", i, s.at, got, s.want)
		}
	}
}

func TestCloseEndsServe(t *testing.T) {
	l, err := Listen(Config{Accept: self})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- l.Serve() }()
	send(t, l.Socket(), []byte("READY=1"))
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("Serve returned %v after Close, want nil", err)
		}
	case <-time.After(bound):
		t.Fatalf("Serve still running %s after Close", bound)
	}
}

// TestSenderOutsideThePidNamespace: a listener in a new pid namespace (a
// container's vigil) gets pid 0 for a sender outside it (another
// container of the pod, sharing the network namespace and so the
// abstract socket) and refuses it before asking its predicate.
func TestSenderOutsideThePidNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a new pid namespace needs root")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "NOTIFY_TEST_HELPER=listen-in-new-pidns")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	out := bufio.NewScanner(outPipe)
	if !out.Scan() {
		t.Fatalf("the helper printed no socket name; stderr:\n%s", stderr.String())
	}
	socket := out.Text()
	send(t, socket, []byte("READY=1\nSTATUS=from outside"))
	barrier(t, socket)
	fmt.Fprintln(in, "report")
	in.Close()
	if !out.Scan() {
		t.Fatalf("the helper printed no report; stderr:\n%s", stderr.String())
	}
	var rep helperReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("the helper's report %q: %v; stderr:\n%s", out.Text(), err, stderr.String())
	}
	if rep.Ready || rep.Refused != 2 || rep.Asked != 0 {
		t.Errorf("helper in a new pid namespace: %+v, want not ready, 2 refused (message and barrier), predicate never asked; stderr:\n%s",
			rep, stderr.String())
	}
	// The helper's /proc is this namespace's: its own child is placed
	// by pidfd all the same.
	if rep.ChildSent != "sent" || !rep.ChildReady || rep.ChildRefused != 0 {
		t.Errorf("the helper's own child, with a /proc of another namespace: %+v, want its READY=1 to count; stderr:\n%s",
			rep, stderr.String())
	}
}

type helperReport struct {
	Ready   bool
	Refused int
	Asked   int // times the predicate was asked

	ChildSent    string // what the helper's own child said of its send
	ChildReady   bool   // its READY=1 counted
	ChildRefused int
}

// listenHelper is the listener of TestSenderOutsideThePidNamespace, as
// pid 1 of a new pid namespace: it prints its socket, reports on a line
// from stdin.
func listenHelper() int {
	var asked atomic.Int64
	l, err := Listen(Config{Accept: func(s Sender) bool { asked.Add(1); return Tree(1)(s) }})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go l.Serve()
	fmt.Println(l.Socket())
	in := bufio.NewScanner(os.Stdin)
	in.Scan()
	u := l.Take()
	askedOutside := int(asked.Load())
	// Its own child, alive, sends READY=1: /proc here is the parent
	// namespace's, where the child's pid names another process.
	exe, _ := os.Executable()
	child := exec.Command(exe)
	child.Env = append(os.Environ(), "NOTIFY_TEST_HELPER=send-and-wait", "NOTIFY_SOCKET="+l.Socket())
	stdin, _ := child.StdinPipe()
	out, _ := child.StdoutPipe()
	child.Start()
	line := bufio.NewScanner(out)
	line.Scan()
	childSent := line.Text()
	var p [2]int
	unix.Pipe2(p[:], unix.O_CLOEXEC)
	fd, _ := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	unix.Sendmsg(fd, []byte("BARRIER=1"), unix.UnixRights(p[1]), &unix.SockaddrUnix{Name: l.Socket()}, 0)
	unix.Close(p[1])
	var b1 [1]byte
	unix.Read(p[0], b1[:])
	c := l.Take()
	stdin.Close()
	child.Wait()
	l.Close()
	b, _ := json.Marshal(helperReport{Ready: u.Ready, Refused: u.Refused, Asked: askedOutside,
		ChildSent: childSent, ChildReady: c.Ready, ChildRefused: c.Refused})
	fmt.Println(string(b))
	return 0
}
