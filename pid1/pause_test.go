package pid1

import (
	"testing"

	"golang.org/x/sys/unix"

	"vigil/internal/intake"
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
		var p intake.Pending
		for _, s := range tt.signals {
			p.Signals[s]++
		}
		if tt.cancel {
			p.Sources |= intake.Cancel
		}
		if got, sig := pauseStep(&p, stops); got != tt.want || sig != tt.sig {
			t.Errorf("%s: pauseStep = %d, %v; want %d, %v", tt.name, got, sig, tt.want, tt.sig)
		}
	}
	var p intake.Pending
	p.Signals[unix.SIGHUP] = 1
	if got, _ := pauseStep(&p, []unix.Signal{unix.SIGHUP}); got != pauseExit {
		t.Errorf("--stop-signal HUP: SIGHUP gives %d, want an exit", got)
	}
}
