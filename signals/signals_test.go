package signals

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    unix.Signal
		wantErr bool
	}{
		{"TERM", unix.SIGTERM, false},
		{"SIGTERM", unix.SIGTERM, false},
		{"term", unix.SIGTERM, false},
		{"sigquit", unix.SIGQUIT, false},
		{"15", unix.SIGTERM, false},
		{"9", unix.SIGKILL, false},
		{" HUP ", unix.SIGHUP, false},
		{"WINCH", unix.SIGWINCH, false},
		{"RTMIN", 34, false},
		{"RTMIN+3", 37, false},
		{"SIGRTMAX-1", 63, false},
		{"64", 64, false},
		{"", 0, true},
		{"0", 0, true},
		{"65", 0, true},
		{"-1", 0, true},
		{"NOPE", 0, true},
		{"SIG", 0, true},
		{"RTMIN+40", 0, true},
		{"RTMAX-40", 0, true},
		{"RTMIN+-1", 0, true},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("Parse(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestNameRoundTrips(t *testing.T) {
	for s := unix.Signal(1); s <= maxSignal; s++ {
		got, err := Parse(Name(s))
		if err != nil || got != s {
			t.Errorf("Parse(Name(%d)=%q) = %v, %v", s, Name(s), got, err)
		}
	}
}

// forwarded lists every signal vigil forwards, in numeric order.
func forwarded() []unix.Signal {
	var out []unix.Signal
	for s := unix.Signal(1); s <= maxSignal; s++ {
		if Forwardable(s) {
			out = append(out, s)
		}
	}
	return out
}

func TestForwarded(t *testing.T) {
	fw := map[unix.Signal]bool{}
	for _, s := range forwarded() {
		fw[s] = true
	}
	for _, s := range []unix.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1,
		unix.SIGUSR2, unix.SIGWINCH, unix.SIGCONT, unix.SIGALRM, unix.SIGPIPE, unix.SIGSEGV, unix.SIGTSTP, 64} {
		if !fw[s] {
			t.Errorf("%s is not forwarded", Name(s))
		}
	}
	for _, s := range []unix.Signal{unix.SIGKILL, unix.SIGSTOP, unix.SIGCHLD, unix.SIGURG} {
		if fw[s] {
			t.Errorf("%s is forwarded", Name(s))
		}
	}
}

func TestRewrite(t *testing.T) {
	tests := []struct {
		spec     string
		from, to unix.Signal
		wantErr  bool
	}{
		{"TERM:QUIT", unix.SIGTERM, unix.SIGQUIT, false},
		{"SIGINT:15", unix.SIGINT, unix.SIGTERM, false},
		{"HUP:none", unix.SIGHUP, 0, false},
		{"HUP:0", unix.SIGHUP, 0, false},
		{"TERM:", 0, 0, true},
		{":TERM", 0, 0, true},
		{"TERM", 0, 0, true},
		{"KILL:TERM", 0, 0, true},
		{"CHLD:TERM", 0, 0, true},
		{"TERM:BOGUS", 0, 0, true},
	}
	for _, tt := range tests {
		from, to, err := ParseRewrite(tt.spec)
		if (err != nil) != tt.wantErr || from != tt.from || to != tt.to {
			t.Errorf("ParseRewrite(%q) = %v, %v, %v; want %v, %v, error %v", tt.spec, from, to, err, tt.from, tt.to, tt.wantErr)
		}
	}
	r := Rewrite{unix.SIGTERM: unix.SIGQUIT, unix.SIGHUP: 0}
	for _, c := range []struct {
		in   unix.Signal
		out  unix.Signal
		keep bool
	}{{unix.SIGTERM, unix.SIGQUIT, true}, {unix.SIGHUP, 0, false}, {unix.SIGUSR1, unix.SIGUSR1, true}} {
		out, keep := r.Apply(c.in)
		if out != c.out || keep != c.keep {
			t.Errorf("Apply(%s) = %v, %v; want %v, %v", Name(c.in), out, keep, c.out, c.keep)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"TERM", "SIGKILL", "15", "RTMIN+2", "rtmax-0", "", "SIG", "999999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sig, err := Parse(s)
		if err == nil && (sig < 1 || sig > maxSignal) {
			t.Fatalf("Parse(%q) = %d without error", s, sig)
		}
	})
}

func FuzzParseRewrite(f *testing.F) {
	for _, s := range []string{"TERM:QUIT", "HUP:none", "TERM:", ":", "a:b:c", "15:0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		from, to, err := ParseRewrite(s)
		if err == nil && (!Forwardable(from) || to > maxSignal) {
			t.Fatalf("ParseRewrite(%q) = %v, %v without error", s, from, to)
		}
	})
}

func TestNamingARealTimeSignalAllocatesNothing(t *testing.T) {
	if Name(34) != "SIGRTMIN+0" || Name(35) != "SIGRTMIN+1" || Name(64) != "SIGRTMIN+30" || Name(32) != "SIG32" {
		t.Errorf("names: %s %s %s %s", Name(34), Name(35), Name(64), Name(32))
	}
	if n := testing.AllocsPerRun(100, func() { _ = Name(40) }); n != 0 {
		t.Errorf("Name(40) allocates %v times", n)
	}
}
