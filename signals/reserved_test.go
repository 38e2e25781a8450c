package signals

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The signals a Go program cannot catch, each with the reason vigil gives.
func TestNotForwardedSaysWhy(t *testing.T) {
	tests := []struct {
		sig  unix.Signal
		want string // a part of the reason; "" for a forwarded signal
	}{
		{unix.SIGKILL, "cannot be caught"},
		{unix.SIGSTOP, "cannot be caught"},
		{unix.SIGCHLD, "reaping"},
		{unix.SIGURG, "preemption"},
		{unix.SIGPROF, "profiler"},
		{32, "reserves it for the C library"},
		{33, "reserves it for the C library"},
		{34, "reserves it for the C library"},
		{0, "not a signal"},
		{65, "not a signal"},
		{31, ""},
		{35, ""},
		{64, ""},
		{unix.SIGTERM, ""},
		{unix.SIGTTOU, ""},
	}
	for _, tt := range tests {
		got := NotForwarded(tt.sig)
		if (got == "") != (tt.want == "") || !strings.Contains(got, tt.want) {
			t.Errorf("NotForwarded(%d) = %q, want %q", tt.sig, got, tt.want)
		}
		if Forwardable(tt.sig) != (tt.want == "") {
			t.Errorf("Forwardable(%d) = %v", tt.sig, Forwardable(tt.sig))
		}
	}
	for _, s := range forwarded() {
		if s == 32 || s == 33 || s == 34 || s == unix.SIGPROF {
			t.Errorf("forwarded() holds %d", s)
		}
	}
}

func TestRewriteRefusesWhatGoReserves(t *testing.T) {
	tests := []struct {
		spec string
		why  string // "" when accepted
	}{
		{"32:TERM", "SIG32 is never forwarded: the Go runtime reserves it for the C library"},
		{"SIG33:TERM", "SIG33 is never forwarded: the Go runtime reserves it"},
		{"34:TERM", "is never forwarded: the Go runtime reserves it"},
		{"RTMIN:none", "is never forwarded: the Go runtime reserves it"},
		{"rtmin+0:HUP", "is never forwarded: the Go runtime reserves it"},
		{"PROF:TERM", "SIGPROF is never forwarded: the Go runtime keeps it for its profiler"},
		{"SIGPROF:0", "SIGPROF is never forwarded"},
		// What vigil sends may be anything: the child catches it, not vigil.
		{"TERM:34", ""},
		{"TERM:PROF", ""},
		{"35:TERM", ""},
		{"RTMIN+1:TERM", ""},
	}
	for _, tt := range tests {
		_, _, err := ParseRewrite(tt.spec)
		switch {
		case tt.why == "" && err != nil:
			t.Errorf("ParseRewrite(%q): %v, want it accepted", tt.spec, err)
		case tt.why != "" && (err == nil || !strings.Contains(err.Error(), tt.why) || !strings.Contains(err.Error(), tt.spec)):
			t.Errorf("ParseRewrite(%q) = %v, want an error naming %q and saying %q", tt.spec, err, tt.spec, tt.why)
		}
	}
}
