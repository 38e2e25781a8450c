package pid1

import (
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

func TestPauseStep(t *testing.T) {
	stops := []unix.Signal{unix.SIGTERM, unix.SIGINT}
	tests := []struct {
		name    string
		signals []unix.Signal
		cancel  bool
		want    pauseAction
		sig     unix.Signal
	}{
		{name: "nothing", want: pauseWait},
		{name: "a child ended", signals: []unix.Signal{unix.SIGCHLD}, want: pauseReap},
		{name: "SIGTERM", signals: []unix.Signal{unix.SIGTERM}, want: pauseExit, sig: unix.SIGTERM},
		{name: "SIGINT with SIGCHLD", signals: []unix.Signal{unix.SIGCHLD, unix.SIGINT}, want: pauseExit, sig: unix.SIGINT},
		{name: "SIGHUP is no stop signal", signals: []unix.Signal{unix.SIGHUP}, want: pauseWait},
		{name: "SIGHUP and a child", signals: []unix.Signal{unix.SIGHUP, unix.SIGCHLD}, want: pauseReap},
		{name: "cancel", cancel: true, want: pauseExit},
	}
	for _, tt := range tests {
		var sigs []unix.Signal
		child := false
		for _, s := range tt.signals {
			if s == unix.SIGCHLD {
				child = true // the intake reports SIGCHLD apart
			} else {
				sigs = append(sigs, s)
			}
		}
		if got, sig := pauseStep(slices.Values(sigs), child, tt.cancel, stops); got != tt.want || sig != tt.sig {
			t.Errorf("%s: pauseStep = %d, %v; want %d, %v", tt.name, got, sig, tt.want, tt.sig)
		}
	}
	if got, _ := pauseStep(slices.Values([]unix.Signal{unix.SIGHUP}), false, false, []unix.Signal{unix.SIGHUP}); got != pauseExit {
		t.Errorf("--stop-signal HUP: SIGHUP gives %d, want an exit", got)
	}
}
