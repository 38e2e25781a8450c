package main

import (
	"strings"
	"testing"

	"vigil/pid1"
)

// TestSignalsGoReservesAreRefused: a stop signal, a rewrite or a parent-death
// signal vigil could never receive is a usage error that says why, not a
// setting that silently does nothing.
func TestSignalsGoReservesAreRefused(t *testing.T) {
	tests := []struct {
		args []string
		env  string // KEY=VALUE, or ""
		want string // in the one line; "" when accepted
	}{
		{args: []string{"--stop-signal", "32"}, want: `--stop-signal "32": SIG32 never reaches vigil: the Go runtime reserves it for the C library`},
		{args: []string{"--stop-signal", "33"}, want: `--stop-signal "33": SIG33 never reaches vigil: the Go runtime reserves it`},
		{args: []string{"--stop-signal", "34"}, want: `--stop-signal "34": SIGRTMIN+0 never reaches vigil: the Go runtime reserves it`},
		{args: []string{"--stop-signal", "RTMIN"}, want: `--stop-signal "RTMIN": SIGRTMIN+0 never reaches vigil`},
		{args: []string{"--stop-signal", "TERM,PROF"}, want: `--stop-signal "PROF": SIGPROF never reaches vigil: the Go runtime keeps it for its profiler`},
		{env: "VIGIL_STOP_SIGNAL=SIG34", want: `--stop-signal "SIG34": SIGRTMIN+0 never reaches vigil`},
		{args: []string{"--rewrite", "34:TERM"}, want: `--rewrite: rewrite "34:TERM": SIGRTMIN+0 is never forwarded: the Go runtime reserves it`},
		{args: []string{"-r", "32:none"}, want: `rewrite "32:none": SIG32 is never forwarded`},
		{args: []string{"-r", "PROF:TERM"}, want: `rewrite "PROF:TERM": SIGPROF is never forwarded: the Go runtime keeps it for its profiler`},
		{env: "VIGIL_REWRITE=SIG33:HUP", want: `rewrite "SIG33:HUP": SIG33 is never forwarded`},
		{args: []string{"--pdeathsig", "34"}, want: `--pdeathsig "34": SIGRTMIN+0 would never reach vigil: the Go runtime reserves it`},
		{args: []string{"--pdeathsig", "PROF"}, want: `--pdeathsig "PROF": SIGPROF would never reach vigil`},
		{args: []string{"--pdeathsig", "CHLD"}, want: `--pdeathsig "CHLD": SIGCHLD would never reach vigil`},
		// Accepted: the first real-time signal a program can use, a
		// rewrite TO a reserved signal (the child receives it), and KILL
		// as the parent-death signal (it ends vigil, as asked).
		{args: []string{"--stop-signal", "35"}},
		{args: []string{"--stop-signal", "RTMIN+1"}},
		{args: []string{"--rewrite", "TERM:34"}},
		{args: []string{"--pdeathsig", "KILL"}},
		{args: []string{"--pdeathsig", "TERM"}},
	}
	for _, tt := range tests {
		name := strings.Join(tt.args, " ") + tt.env
		t.Run(name, func(t *testing.T) {
			if tt.env != "" {
				k, v, _ := strings.Cut(tt.env, "=")
				t.Setenv(k, v)
			}
			cfg, status, stderr := parse(append(tt.args, "true"))
			if tt.want == "" {
				if cfg == nil || status != 0 {
					t.Fatalf("refused (status %d): %q", status, stderr)
				}
				return
			}
			if cfg != nil || status != pid1.ExitUsage {
				t.Fatalf("status %d, configuration %v; want %d and nothing started", status, cfg != nil, pid1.ExitUsage)
			}
			if !strings.HasPrefix(stderr, "vigil: ") || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr %q, want one line saying %q", stderr, tt.want)
			}
		})
	}
}
