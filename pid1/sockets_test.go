package pid1

import (
	"slices"
	"strings"
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

func TestParseListen(t *testing.T) {
	tests := []struct {
		in   string
		want Listen
	}{
		{"tcp::8080", Listen{Name: "listen", Network: "tcp", Addr: ":8080"}},
		{"tcp:127.0.0.1:80", Listen{Name: "listen", Network: "tcp", Addr: "127.0.0.1:80"}},
		{"web=tcp:[::1]:443", Listen{Name: "web", Network: "tcp", Addr: "[::1]:443"}},
		{"unix:/run/app.sock", Listen{Name: "listen", Network: "unix", Addr: "/run/app.sock"}},
		{"api=unix:@app", Listen{Name: "api", Network: "unix", Addr: "@app"}},
		{"unix:/a=b", Listen{Name: "listen", Network: "unix", Addr: "/a=b"}},
	}
	for _, tt := range tests {
		got, err := ParseListen(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseListen(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
		if again, err := ParseListen(got.String()); err != nil || again != got {
			t.Errorf("ParseListen(%q).String() = %q reads %+v, %v", tt.in, got.String(), again, err)
		}
	}
	for _, bad := range []string{"", "tcp:", "tcp:x", "tcp:x:0", "tcp:x:65536", "udp::53", "unix:", "unix:@", "=tcp::80",
		"a b=tcp::80", "unix:/" + strings.Repeat("x", 200), "unix:/a\x00b"} {
		if got, err := ParseListen(bad); err == nil {
			t.Errorf("ParseListen(%q) = %+v, want an error", bad, got)
		}
	}
}

func TestListenNames(t *testing.T) {
	ls := []Listen{{Name: "web"}, {Name: "listen"}}
	for _, tt := range []struct {
		given string
		n     int
		want  string
	}{
		{"", 0, "web:listen"},
		{"", 2, "unknown:unknown:web:listen"},
		{"a:b", 2, "a:b:web:listen"},
		{"a", 2, "a:unknown:web:listen"},
		{"a:b:c", 1, "a:web:listen"},
	} {
		if got := listenNames(tt.given, tt.n, ls); got != tt.want {
			t.Errorf("listenNames(%q, %d) = %q, want %q", tt.given, tt.n, got, tt.want)
		}
	}
}
