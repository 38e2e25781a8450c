package pid1

import (
	"slices"
	"testing"

	"vigil/internal/setpid"
)

func TestListenFds(t *testing.T) {
	const pid = 1
	tests := []struct {
		env   []string
		n     int
		why   bool // a reason is given
		other bool
	}{
		{env: nil},
		{env: []string{"LISTEN_FDS=2", "LISTEN_PID=1"}, n: 2},
		{env: []string{"LISTEN_FDS=1"}, n: 1}, // podman may leave LISTEN_PID out
		{env: []string{"LISTEN_FDS=1", "LISTEN_PID=42"}, why: true, other: true},
		{env: []string{"LISTEN_FDS=0", "LISTEN_PID=1"}},
		{env: []string{"LISTEN_FDS=x", "LISTEN_PID=1"}, why: true},
		{env: []string{"LISTEN_FDS=-1"}, why: true},
		{env: []string{"LISTEN_FDS=100000"}, why: true},
		{env: []string{"LISTEN_FDS=3", "LISTEN_FDS=1", "LISTEN_PID=1"}, n: 3},
		{env: []string{"LISTEN_PID=1"}},
	}
	for _, tt := range tests {
		n, why, other := listenFds(tt.env, pid)
		if n != tt.n || (why != "") != tt.why || other != tt.other {
			t.Errorf("listenFds(%q) = %d, %q, %v; want %d, a reason %v, other %v", tt.env, n, why, other, tt.n, tt.why, tt.other)
		}
	}
}

func TestSetpidEnv(t *testing.T) {
	got := setpid.Env([]string{"A=1", setpid.Var + "=7", "LISTEN_PID=7", "LISTEN_FDS=2", "LISTEN_FDNAMES=a:b"}, 12)
	want := []string{"A=1", "LISTEN_FDS=2", "LISTEN_FDNAMES=a:b", "LISTEN_PID=12"}
	if !slices.Equal(got, want) {
		t.Errorf("setpid.Env = %q, want %q", got, want)
	}
}
