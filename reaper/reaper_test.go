package reaper

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestDecode(t *testing.T) {
	// Wait statuses as the kernel encodes them (see wait(2)).
	tests := []struct {
		name   string
		ws     unix.WaitStatus
		want   Exit
		status int
	}{
		{"exit 0", 0x0000, Exit{Pid: 7}, 0},
		{"exit 3", 0x0300, Exit{Pid: 7, Code: 3}, 3},
		{"exit 255", 0xff00, Exit{Pid: 7, Code: 255}, 255},
		{"killed by TERM", 0x000f, Exit{Pid: 7, Signal: unix.SIGTERM}, 143},
		{"killed by KILL", 0x0009, Exit{Pid: 7, Signal: unix.SIGKILL}, 137},
		{"SEGV with core", 0x008b, Exit{Pid: 7, Signal: unix.SIGSEGV, CoreDumped: true}, 139},
		{"ABRT no core", 0x0006, Exit{Pid: 7, Signal: unix.SIGABRT}, 134},
		{"stopped by TSTP", 0x147f, Exit{Pid: 7, Signal: unix.SIGTSTP, Stopped: true}, 148},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Decode(7, tt.ws)
			if got != tt.want {
				t.Errorf("Decode(%#x) = %+v, want %+v", uint32(tt.ws), got, tt.want)
			}
			if got.Status() != tt.status {
				t.Errorf("Status() = %d, want %d", got.Status(), tt.status)
			}
		})
	}
}

func TestDrainReapsEveryChildWithItsStatus(t *testing.T) {
	want := map[int]int{}
	for i := 0; i < 50; i++ {
		pid, err := syscall.ForkExec("/bin/sh", []string{"sh", "-c", fmt.Sprintf("exit %d", i)},
			&syscall.ProcAttr{Files: []uintptr{0, 1, 2}})
		if err != nil {
			t.Fatal(err)
		}
		want[pid] = i
	}
	var got []Exit
	deadline := time.Now().Add(10 * time.Second)
	for {
		var alive bool
		var err error
		got, alive, err = Drain(got, false, false)
		if err != nil {
			t.Fatal(err)
		}
		if !alive {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("children still alive after 10s; reaped %d", len(got))
		}
		time.Sleep(time.Millisecond)
	}
	if len(got) != len(want) {
		t.Fatalf("reaped %d, want %d", len(got), len(want))
	}
	for _, e := range got {
		if code, ok := want[e.Pid]; !ok || e.Code != code || e.Signal != 0 {
			t.Errorf("pid %d: %+v, want exit %d", e.Pid, e, code)
		}
	}
}

// TestDrainNamesProcessesKilledBySIGKILL: with names, a child killed by
// SIGKILL comes with its name, read before it was reaped; one that exited
// comes without, and both are reaped.
func TestDrainNamesProcessesKilledBySIGKILL(t *testing.T) {
	start := func(argv ...string) int {
		t.Helper()
		pid, err := syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{Files: []uintptr{0, 1, 2}})
		if err != nil {
			t.Fatal(err)
		}
		return pid
	}
	killed := start("/bin/sleep", "60")
	exited := start("/bin/sh", "-c", "exit 3")
	if err := syscall.Kill(killed, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	got := map[int]Exit{}
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < 2 {
		exits, _, err := Drain(nil, false, true)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range exits {
			got[e.Pid] = e
		}
		if time.Now().After(deadline) {
			t.Fatalf("reaped %v within 10s, want pids %d and %d", got, killed, exited)
		}
		time.Sleep(time.Millisecond)
	}
	if e := got[killed]; e.Signal != syscall.SIGKILL || e.Comm != "sleep" {
		t.Errorf("the SIGKILLed sleep reaped as %+v, want Signal SIGKILL and Comm \"sleep\"", e)
	}
	if e := got[exited]; e.Code != 3 || e.Comm != "" {
		t.Errorf("the exited sh reaped as %+v, want Code 3 and no Comm", e)
	}
}
