package notify

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestNewUpstream(t *testing.T) {
	if u, err := NewUpstream(""); u != nil || err != nil {
		t.Errorf(`NewUpstream("") = %v, %v; want nil, nil (no upstream)`, u, err)
	}
	for _, ok := range []string{"/run/systemd/notify", "@vigil-notify-0123", "/run/notify/notify.sock"} {
		if u, err := NewUpstream(ok); err != nil || u.addr.Name != ok {
			t.Errorf("NewUpstream(%q) = %v, %v; want it accepted", ok, u, err)
		}
	}
	for _, bad := range []string{"relative/sock", "@", "vsock:2:1234", "/a\x00b", "/" + strings.Repeat("x", 108)} {
		if u, err := NewUpstream(bad); err == nil {
			t.Errorf("NewUpstream(%q) = %v, nil; want an error", bad, u)
		} else if !strings.Contains(err.Error(), "NOTIFY_SOCKET") {
			t.Errorf("NewUpstream(%q): error %q does not name NOTIFY_SOCKET", bad, err)
		}
	}
}

// TestRelayToAbstract: vigil's relay reaches a listener on an abstract
// socket, the way a child's message reaches vigil.
func TestRelayToAbstract(t *testing.T) {
	l := listen(t, Config{Accept: self, Dirs: []string{}})
	if l.dir != "" { // abstract: no directory
		t.Fatalf("Socket() = %q, want an abstract socket", l.Socket())
	}
	up, err := NewUpstream(l.Socket())
	if err != nil {
		t.Fatal(err)
	}
	msg := Update{Ready: true, Phase: PhaseReady, Status: ptr("serving"), Pings: 3}.Relay().Encode()
	if err := up.Send(msg, SendTimeout); err != nil {
		t.Fatalf("Send(%q): %v", msg, err)
	}
	barrier(t, l.Socket())
	if u := l.Take(); !u.Ready || u.Status == nil || *u.Status != "serving" || u.Pings != 1 {
		t.Errorf("upstream received %+v, want ready, status serving, one ping", u)
	}
}

// pathSocket binds a datagram socket at a path, as systemd's
// /run/systemd/notify and podman's are.
func pathSocket(t *testing.T) (int, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	return fd, path
}

func TestRelayToPath(t *testing.T) {
	fd, path := pathSocket(t)
	up, err := NewUpstream(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := up.Send("STOPPING=1", SendTimeout); err != nil {
		t.Fatalf("Send: %v", err)
	}
	buf := make([]byte, 64)
	n, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
	if err != nil || string(buf[:n]) != "STOPPING=1" {
		t.Errorf("the path socket received %q, %v; want STOPPING=1", buf[:n], err)
	}
}

// TestSendIsBounded: a receiver that does not read makes Send give up
// after the timeout instead of hanging; a socket that is gone is an
// error at once.
func TestSendIsBounded(t *testing.T) {
	_, path := pathSocket(t)
	up, _ := NewUpstream(path)
	// Fill the receiver's queue (net.unix.max_dgram_qlen datagrams).
	sent := 0
	for ; sent < 10000; sent++ {
		if err := up.Send("WATCHDOG=1", 0); err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("filling the queue: datagram %d: %v, want a timeout", sent+1, err)
			}
			break
		}
	}
	if sent == 10000 {
		t.Fatal("10000 datagrams went into a socket nobody reads")
	}
	start := time.Now()
	err := up.Send("WATCHDOG=1", 50*time.Millisecond)
	took := time.Since(start)
	if !errors.Is(err, os.ErrDeadlineExceeded) || took < 50*time.Millisecond || took > bound {
		t.Errorf("Send to a full queue: %v after %s, want a timeout after 50ms", err, took)
	}

	gone, _ := NewUpstream(filepath.Join(t.TempDir(), "nothing-here"))
	if err := gone.Send("READY=1", SendTimeout); !errors.Is(err, unix.ENOENT) {
		t.Errorf("Send to a missing socket: %v, want ENOENT", err)
	}
	if err := up.Send(strings.Repeat("x", MaxMessage+1), SendTimeout); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Send of %d bytes: %v, want ErrTooLarge", MaxMessage+1, err)
	}
}

func TestRelay(t *testing.T) {
	for _, tc := range []struct {
		name string
		u    Update
		want string
	}{
		{"nothing", Update{}, ""},
		{"refusals are not relayed", Update{Refused: 3, Dropped: 2}, ""},
		{"ready, status, pings as one", Update{Ready: true, Phase: PhaseReady, Status: ptr("serving"), Pings: 5},
			"READY=1\nSTATUS=serving\nWATCHDOG=1"},
		{"stopping after ready", Update{Ready: true, Stopping: true, Phase: PhaseStopping}, "READY=1\nSTOPPING=1"},
		{"ready after stopping", Update{Ready: true, Stopping: true, Phase: PhaseReady}, "STOPPING=1\nREADY=1"},
		{"reloading is not relayed", Update{Reloading: true, Phase: PhaseReloading}, ""},
		{"reload last: stopping wins", Update{Ready: true, Stopping: true, Reloading: true, Phase: PhaseReloading},
			"READY=1\nSTOPPING=1"},
		{"watchdog settings are not relayed", Update{WatchdogInterval: ptr(time.Second), WatchdogTrigger: true, ExtendTimeout: ptr(time.Second)}, ""},
	} {
		if got := tc.u.Relay().Encode(); got != tc.want {
			t.Errorf("%s: Relay().Encode() = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestRelayNeverRefusesWhatItMerged: READY=1 from one message and a
// STATUS= of 4096 bytes from the next merge into more than one datagram
// can hold; the relay passes all of it on, in datagrams a manager reads
// (systemd's reads 4096 bytes), never refusing its own merge.
func TestRelayNeverRefusesWhatItMerged(t *testing.T) {
	long := strings.Repeat("s", MaxMessage-len("STATUS="))
	for _, u := range []Update{
		{Ready: true, Phase: PhaseReady, Status: &long},
		{Ready: true, Stopping: true, Phase: PhaseStopping, Status: &long, Pings: 9},
		{Status: ptr(strings.Repeat("é", MaxMessage))}, // longer than any sender's: cut, still sent
	} {
		l := listen(t, Config{Accept: self})
		up, err := NewUpstream(l.Socket())
		if err != nil {
			t.Fatal(err)
		}
		dgrams := u.Relay().Datagrams()
		for _, d := range dgrams {
			if len(d) > MaxMessage {
				t.Errorf("a datagram of %d bytes, more than %d", len(d), MaxMessage)
			}
			if err := up.Send(d, SendTimeout); err != nil {
				t.Errorf("Send of the relay's own datagram: %v", err)
			}
		}
		barrier(t, l.Socket())
		got := l.Take()
		want := u.Relay()
		if got.Ready != want.Ready || got.Stopping != want.Stopping || got.Phase != want.Phase || got.Refused != 0 ||
			got.Status == nil || !strings.HasPrefix(*u.Status, *got.Status) || len(*got.Status) < MaxMessage-len("STATUS=")-1 {
			t.Errorf("upstream got %+v from %d datagrams, want %+v with the status", got, len(dgrams), want)
		}
	}
	if d := (Update{}).Relay().Datagrams(); d != nil {
		t.Errorf("nothing to relay gives %q, want no datagram", d)
	}
}
