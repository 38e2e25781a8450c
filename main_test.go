package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vigil/pid1"
	"vigil/signals"
)

// TestMalformedInputStartsNothing runs the real command line and the real
// supervisor: each bad flag or VIGIL_* value must give one line naming the
// input, exit 2, and leave the command (which would create a file) unrun.
func TestMalformedInputStartsNothing(t *testing.T) {
	tests := []struct {
		name    string
		args    []string // before the command
		env     []string // KEY=VALUE
		noCmd   bool     // give no command at all
		mention string   // the error names this
	}{
		{name: "unknown flag", args: []string{"--no-such-flag"}, mention: "no-such-flag"},
		{name: "negative grace", args: []string{"--grace", "-1s"}, mention: "-1s"},
		{name: "grace not a duration", args: []string{"--grace", "soon"}, mention: "soon"},
		{name: "hook timeout zero", args: []string{"--hook-timeout", "0s"}, mention: "--hook-timeout"},
		{name: "rewrite without TO", args: []string{"--rewrite", "TERM:"}, mention: "TERM:"},
		{name: "rewrite of KILL", args: []string{"--rewrite", "KILL:TERM"}, mention: "KILL:TERM"},
		{name: "remap above 255", args: []string{"-e", "300"}, mention: "300"},
		{name: "remap negative", args: []string{"-e", "-1"}, mention: "-1"},
		{name: "remap not a number", args: []string{"--remap-exit", "ten"}, mention: "ten"},
		{name: "empty command after --", args: []string{"--"}, noCmd: true, mention: "no command"},
		{name: "VIGIL_TIMEOUT=abc", env: []string{"VIGIL_TIMEOUT=abc"}, mention: "abc"},
		{name: "VIGIL_GRACE=-5s", env: []string{"VIGIL_GRACE=-5s"}, mention: "-5s"},
		{name: "VIGIL_REMAP_EXIT=x", env: []string{"VIGIL_REMAP_EXIT=x"}, mention: `"x"`},
		{name: "VIGIL_CAPTURE_TAIL=lots", env: []string{"VIGIL_CAPTURE_TAIL=lots"}, mention: "lots"},
		{name: "bad timeout signal", args: []string{"--timeout-signal", "SIGNOPE"}, mention: "SIGNOPE"},
		{name: "bad stop signal", args: []string{"--stop-signal", "99"}, mention: "99"},
		{name: "bad pdeathsig", args: []string{"--pdeathsig", "BOGUS"}, mention: "BOGUS"},
		{name: "stop signal that never arrives", args: []string{"--stop-signal", "KILL"}, mention: "KILL"},
		{name: "VIGIL_VERBOSE=abc", env: []string{"VIGIL_VERBOSE=abc"}, mention: "abc"},
		{name: "VIGIL_VERBOSE=-8", env: []string{"VIGIL_VERBOSE=-8"}, mention: "-8"},
		{name: "unknown wait-for kind", args: []string{"--wait-for", "https://x"}, mention: "https://x"},
		{name: "stop-on http", args: []string{"--stop-on", "http:localhost:80/"}, mention: "http:localhost:80/"},
		{name: "http path with a space", args: []string{"--ready-on", "http:localhost:80/a b"}, mention: "/a b"},
		{name: "wait-for port out of range", args: []string{"--wait-for", "tcp:localhost:70000"}, mention: "70000"},
		{name: "stop-on tcp", args: []string{"--stop-on", "tcp:localhost:80"}, mention: "tcp:localhost:80"},
		{name: "missing hooks dir", args: []string{"--hooks-dir", "/no/such/hooks"}, mention: "/no/such/hooks"},
		{name: "unterminated hook quote", args: []string{"--on-exit", "echo 'x"}, mention: "echo 'x"},
		{name: "bad log level", args: []string{"--log-level", "loud"}, mention: "loud"},
		{name: "bad log format", args: []string{"--log-format", "xml"}, mention: "xml"},
		{name: "negative capture tail", args: []string{"--capture-tail", "-1"}, mention: "-1"},
		{name: "contradicting subreaper flags", args: []string{"-s", "--no-subreaper"}, mention: "--no-subreaper"},
		{name: "capture tail without cleanup", args: []string{"--capture-tail", "4096", "--no-cleanup"}, mention: "SIGPIPE"},
		{name: "capture tail without cleanup, from variables", env: []string{"VIGIL_CAPTURE_TAIL=1", "VIGIL_NO_CLEANUP=1"},
			mention: "--no-cleanup"},
		{name: "user syntax: empty group", args: []string{"--user", "nobody:"}, mention: "nobody:"},
		{name: "user syntax: empty user", args: []string{"--user", ":0"}, mention: ":0"},
		{name: "unknown user", args: []string{"--user", "vigil-no-such-user"}, mention: "vigil-no-such-user"},
		{name: "unknown group", args: []string{"--user", "0:vigil-no-such-group"}, mention: "vigil-no-such-group"},
		{name: "pause with a command", args: []string{"--pause"}, mention: "--pause runs no command"},
		{name: "pause with restart", args: []string{"-P", "--restart", "always"}, noCmd: true, mention: "--restart"},
		{name: "VIGIL_PAUSE with a hook", args: []string{"--on-exit", "true"}, env: []string{"VIGIL_PAUSE=1"}, noCmd: true, mention: "--on-exit"},
		{name: "ready-fd on stdout", args: []string{"--ready-fd", "1"}, mention: "--ready-fd 1"},
		{name: "VIGIL_READY_FD=x", env: []string{"VIGIL_READY_FD=x"}, mention: `"x"`},
		{name: "listen without a port", args: []string{"--listen", "tcp:localhost"}, mention: "tcp:localhost"},
		{name: "listen of another kind", args: []string{"--listen", "udp::53"}, mention: "udp::53"},
		{name: "VIGIL_LISTEN name with a space", env: []string{"VIGIL_LISTEN=a b=unix:/x"}, mention: "a b=unix:/x"},
		{name: "newline in a flag name", args: []string{"--x\ny"}, mention: `x\ny`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			marker := filepath.Join(t.TempDir(), "started")
			for _, kv := range tt.env {
				k, v, _ := strings.Cut(kv, "=")
				t.Setenv(k, v)
			}
			args := append([]string{"vigil"}, tt.args...)
			if !tt.noCmd {
				args = append(args, "/bin/sh", "-c", "echo started > "+marker)
			}
			var stdout, stderr bytes.Buffer
			status := run(args, &stdout, &stderr)
			msg := stderr.String()
			if status != pid1.ExitUsage {
				t.Errorf("exit status %d, want %d; stderr: %q", status, pid1.ExitUsage, msg)
			}
			if !strings.HasPrefix(msg, "vigil: ") || strings.Count(msg, "\n") != 1 || !strings.HasSuffix(msg, "\n") {
				t.Errorf("want one line starting \"vigil: \" on stderr, got %q", msg)
			}
			if !strings.Contains(msg, tt.mention) {
				t.Errorf("stderr %q does not name the input %q", msg, tt.mention)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Errorf("the command ran")
			}
		})
	}
}

// TestHelpIsASuccess: --help prints usage and exits 0.
func TestHelpIsASuccess(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if status := run([]string{"vigil", "--help"}, &stdout, &stderr); status != 0 {
		t.Errorf("--help exited %d; stderr: %q", status, stderr.String())
	}
	if !strings.Contains(stdout.String(), "--grace") {
		t.Errorf("--help printed no usage: %q", stdout.String())
	}
}

// TestHelpTakesNoTopic: -h before a command is refused as urfave/cli
// refused it, with its words.
func TestHelpTakesNoTopic(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if status := run([]string{"vigil", "-h", "true"}, &stdout, &stderr); status != pid1.ExitUsage ||
		stderr.String() != "vigil: No help topic for 'true'\n" || stdout.Len() != 0 {
		t.Errorf("-h true: status %d, stdout %q, stderr %q; want %d and No help topic", status, stdout.String(), stderr.String(), pid1.ExitUsage)
	}
}

// parse runs the command line without starting anything and returns the
// configuration the supervisor would get (nil when none), vigil's status
// and stderr.
func parse(args []string) (*pid1.Config, int, string) {
	var got *pid1.Config
	fake := func(_ context.Context, cfg pid1.Config) (int, error) {
		got = &cfg
		return 0, nil
	}
	var stdout, stderr bytes.Buffer
	status := runWith(append([]string{"vigil"}, args...), &stdout, &stderr, backend{run: fake, probe: fakeProbe})
	return got, status, stderr.String()
}

// checkConfig fails t when a command line was accepted but its
// configuration breaks a promise of the flags' documentation, or when it
// was refused without a one-line usage error.
func checkConfig(t *testing.T, args []string) {
	t.Helper()
	cfg, status, stderr := parse(args)
	if cfg == nil {
		if status == 0 && stderr == "" {
			return // --help or --version
		}
		if status != pid1.ExitUsage || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "vigil: ") {
			t.Fatalf("%q: status %d, stderr %q; want 2 and one line", args, status, stderr)
		}
		return
	}
	if status != 0 {
		t.Fatalf("%q: status %d with a configuration", args, status)
	}
	if len(cfg.Command) == 0 {
		t.Fatalf("%q: accepted without a command", args)
	}
	for name, d := range map[string]time.Duration{"timeout": cfg.Timeout, "grace": cfg.Grace,
		"drain": cfg.Drain, "wait-timeout": cfg.WaitTimeout} {
		if d < 0 {
			t.Fatalf("%q: --%s %s accepted", args, name, d)
		}
	}
	if cfg.HookTimeout < time.Millisecond {
		t.Fatalf("%q: --hook-timeout %s accepted", args, cfg.HookTimeout)
	}
	for code := range cfg.RemapExit {
		if code < 0 || code > 255 {
			t.Fatalf("%q: --remap-exit %d accepted", args, code)
		}
	}
	sigs := append([]unix.Signal{cfg.TimeoutSignal}, cfg.StopSignals...)
	if cfg.PdeathSig != 0 {
		sigs = append(sigs, cfg.PdeathSig)
	}
	for _, s := range sigs {
		if s < 1 || s > 64 {
			t.Fatalf("%q: signal %d accepted", args, s)
		}
	}
	for from, to := range cfg.Rewrite {
		if !signals.Forwardable(from) || to < 0 || to > 64 {
			t.Fatalf("%q: rewrite %d:%d accepted", args, from, to)
		}
	}
	if cfg.CaptureTail < 0 {
		t.Fatalf("%q: --capture-tail %d accepted", args, cfg.CaptureTail)
	}
	for _, hooks := range cfg.Hooks {
		for _, argv := range hooks {
			if len(argv) == 0 {
				t.Fatalf("%q: empty hook accepted", args)
			}
		}
	}
	for _, tg := range cfg.StopOn {
		if tg.Kind == "tcp" || tg.Kind == "ready" {
			t.Fatalf("%q: --stop-on %s accepted", args, tg)
		}
	}
}

// FuzzConfig feeds whole command lines, arguments separated by NUL bytes,
// to the command line parser; it must accept them with a sound
// configuration or refuse them with one line and exit 2, never panic.
func FuzzConfig(f *testing.F) {
	for _, s := range []string{
		"true",
		"--\x00true",
		"-g\x00-s\x00-v\x00-vv\x00sleep\x001",
		"-e\x00143\x00-e\x003,4\x00--rewrite\x00TERM:QUIT,HUP:none\x00cmd\x00--x",
		"--grace\x00-1s\x00true",
		"--timeout\x001h\x00--timeout-signal\x00KILL\x00--drain\x00100ms\x00true",
		"--wait-for\x00tcp:db:5432\x00--wait-for\x00file:/x\x00--stop-on\x00tombstone:/t\x00true",
		"--on-exit\x00echo 'a b' \"c\\\"d\"\x00--on-crash\x00x\x00true",
		"--user\x00nobody:nogroup\x00--no-new-privs\x00id",
		"--capture-tail\x0099999999999\x00true",
		"--log-format\x00json\x00--log-level\x00debug\x00true",
		"--stop-signal\x00INT,QUIT\x00--pdeathsig\x00KILL\x00true",
		"--version",
		"-h",
		"-ge\x00143\x00true",
		"-ge143\x00-pSIGKILL\x00-sgvw\x00true",
		"-r15:0\x00-c\x00cmd\x00-sg",
		"-sx\x00true",
		"--version\x00-v",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkConfig(t, strings.Split(s, "\x00"))
	})
}

// FuzzDurations feeds one value to every duration flag.
func FuzzDurations(f *testing.F) {
	for _, s := range []string{"0", "1s", "-1s", "1h2m3.5s", "9223372036854775807ns", "1e3s", ".5s", "abc", "", "1d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, flag := range []string{"--timeout", "--grace", "--drain", "--hook-timeout", "--wait-timeout"} {
			checkConfig(t, []string{flag, s, "true"})
		}
	})
}

// FuzzRemapExit feeds one value to -e, alone and as a list.
func FuzzRemapExit(f *testing.F) {
	for _, s := range []string{"0", "143", "255", "256", "-1", "1,2,3", ",", " 7 ", "0x10", "+3", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkConfig(t, []string{"-e", s, "true"})
		checkConfig(t, []string{"--remap-exit", s, "-e", s + ",1", "true"})
	})
}

// FuzzEnv sets one VIGIL_* variable, chosen by n, to v.
func FuzzEnv(f *testing.F) {
	vars := []string{"VIGIL_TIMEOUT", "VIGIL_GRACE", "VIGIL_REMAP_EXIT", "VIGIL_REWRITE", "VIGIL_STOP_SIGNAL",
		"VIGIL_WAIT_FOR", "VIGIL_STOP_ON", "VIGIL_ON_EXIT", "VIGIL_CAPTURE_TAIL", "VIGIL_USER",
		"VIGIL_LOG_LEVEL", "VIGIL_GROUP", "VIGIL_TIMEOUT_SIGNAL", "VIGIL_HOOK_TIMEOUT",
		"TINI_VERBOSITY", "TINI_SUBREAPER", "TINI_KILL_PROCESS_GROUP", "VIGIL_LOG_FORMAT"}
	seeds := []struct {
		n uint8
		v string
	}{{0, "abc"}, {1, "-5s"}, {2, "3,143"}, {3, "TERM:QUIT\nHUP:none"}, {4, "INT"},
		{5, "file:/a\ntcp:x:1"}, {6, "tcp:x:1"}, {7, "echo a\necho 'b"}, {8, "12"}, {9, "0:0"},
		{10, "warn"}, {11, "yes"}, {12, "RTMIN+3"}, {13, "0"},
		{14, "3"}, {15, "1"}, {16, "x"}, {17, "\n"}}
	for _, s := range seeds {
		f.Add(s.n, s.v)
	}
	f.Fuzz(func(t *testing.T, n uint8, v string) {
		if strings.IndexByte(v, 0) >= 0 {
			return // an environment cannot hold NUL
		}
		t.Setenv(vars[int(n)%len(vars)], v)
		checkConfig(t, []string{"true"})
	})
}

// BenchmarkRunWith measures the command line's share of vigil's start: a
// typical command line parsed into a configuration, with nothing started.
func BenchmarkRunWith(b *testing.B) {
	args := []string{"vigil", "-g", "-e", "143", "--grace", "5s", "--tombstone", "/tmp/tomb.json",
		"--on-exit", "echo done", "--", "/bin/true"}
	fake := func(context.Context, pid1.Config) (int, error) { return 0, nil }
	var out bytes.Buffer
	for b.Loop() {
		if st := runWith(args, &out, &out, backend{run: fake, probe: fakeProbe}); st != 0 {
			b.Fatalf("status %d: %s", st, out.String())
		}
	}
}

// fakeProbe stands in for pid1.Probe, which dials and reads files for
// real: the command-line tests check only that --probe gets there.
func fakeProbe(target string, out io.Writer) int {
	fmt.Fprintf(out, "probed %s\n", target)
	return 0
}

func TestProbeRunsNoCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	ran := false
	b := backend{
		run:   func(context.Context, pid1.Config) (int, error) { ran = true; return 0, nil },
		probe: fakeProbe,
	}
	if st := runWith([]string{"vigil", "--probe", "ready:/run/x.json"}, &stdout, &stderr, b); st != 0 || ran {
		t.Errorf("--probe: status %d, supervisor started %v", st, ran)
	}
	if stdout.String() != "probed ready:/run/x.json\n" {
		t.Errorf("--probe printed %q", stdout.String())
	}
	stdout.Reset()
	if st := runWith([]string{"vigil", "--probe", "file:/x", "sleep", "1"}, &stdout, &stderr, b); st != pid1.ExitUsage || ran {
		t.Errorf("--probe with a command: status %d, want 2", st)
	}
	// No VIGIL_PROBE: an exec probe shares the container's environment.
	t.Setenv("VIGIL_PROBE", "file:/x")
	if st := runWith([]string{"vigil", "true"}, &stdout, &stderr, b); st != 0 || !ran || stdout.Len() != 0 {
		t.Errorf("VIGIL_PROBE turned vigil into a probe: status %d, ran %v, %q", st, ran, stdout.String())
	}
}

// TestRunGivesTheCommandLinesMessages: a Config that breaks a rule between
// options is refused by pid1.Run with the very line the command line
// prints for the same options.
func TestRunGivesTheCommandLinesMessages(t *testing.T) {
	tests := []struct {
		args []string
		edit func(*pid1.Config)
	}{
		{[]string{"--watchdog", "2s"}, func(c *pid1.Config) { c.Watchdog = 2 * time.Second }},
		{[]string{"--wait-all", "--no-cleanup"}, func(c *pid1.Config) { c.WaitAll, c.NoCleanup = true, true }},
		{[]string{"--capture-tail", "10", "--no-cleanup"}, func(c *pid1.Config) { c.CaptureTail, c.NoCleanup = 10, true }},
		{[]string{"--restart-delay", "5s", "--restart-delay-max", "1s"}, func(c *pid1.Config) { c.RestartDelay, c.RestartDelayMax = 5*time.Second, time.Second }},
		{[]string{"--ready-fd", "2"}, func(c *pid1.Config) { c.ReadyFd = 2 }},
		{[]string{"--grace", "-3s"}, func(c *pid1.Config) { c.Grace = -3 * time.Second }},
		{[]string{"--capture-tail", "-1"}, func(c *pid1.Config) { c.CaptureTail = -1 }},
		{[]string{"--restart-max", "-2"}, func(c *pid1.Config) { c.RestartMax = -2 }},
		{[]string{"--hooks-dir", "/no/such/hooks"}, func(c *pid1.Config) { c.HooksDir = "/no/such/hooks" }},
		{[]string{"--stop-on", "tcp:127.0.0.1:80"}, func(c *pid1.Config) { c.StopOn = []pid1.Target{{Kind: "tcp", Addr: "127.0.0.1:80"}} }},
		{[]string{"--ready-on", "ready:/t"}, func(c *pid1.Config) { c.ReadyOn = []pid1.Target{{Kind: "ready", Path: "/t"}} }},
		{[]string{"--stop-signal", "SIGKILL"}, func(c *pid1.Config) { c.StopSignals = []unix.Signal{unix.SIGKILL} }},
		{[]string{"--pdeathsig", "SIGSTOP"}, func(c *pid1.Config) { c.PdeathSig = unix.SIGSTOP }},
		{[]string{"-e", "256"}, func(c *pid1.Config) { c.RemapExit = map[int]bool{256: true} }},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, status, stderr := parse(append(tt.args, "/bin/true"))
			if status != pid1.ExitUsage {
				t.Fatalf("the command line: status %d, stderr %q; want %d", status, stderr, pid1.ExitUsage)
			}
			cfg := pid1.DefaultConfig()
			cfg.Command = []string{"/bin/true"}
			tt.edit(&cfg)
			code, err := pid1.Run(context.Background(), cfg)
			if code != pid1.ExitUsage || err == nil {
				t.Fatalf("pid1.Run: %d, %v; want %d", code, err, pid1.ExitUsage)
			}
			if want := strings.TrimSuffix(strings.TrimPrefix(stderr, "vigil: "), "\n"); err.Error() != want {
				t.Errorf("pid1.Run said %q, the command line %q", err.Error(), want)
			}
		})
	}
}

// TestOptionsAreNamedAfterTheirFields: a flag bound straight to a field of
// pid1.Config is named after it (pid1.OptionName), so that what
// Config.Validate says of a field names the flag that set it.
func TestOptionsAreNamedAfterTheirFields(t *testing.T) {
	cl := newCommandLine()
	cfg := reflect.ValueOf(&cl.cfg).Elem()
	fields := map[uintptr]string{}
	for i := range cfg.NumField() {
		fields[cfg.Field(i).Addr().Pointer()] = cfg.Type().Field(i).Name
	}
	bound := 0
	for _, o := range cl.opts {
		var dst any
		switch f := o.Flag.(type) {
		case *boolFlag:
			dst = f.Destination
		case *stringFlag:
			dst = f.Destination
		case *durationFlag:
			dst = f.Destination
		case *intFlag:
			dst = f.Destination
		default:
			continue
		}
		field, ok := fields[reflect.ValueOf(dst).Pointer()]
		if !ok {
			continue // the command line's own, parsed into the Config
		}
		bound++
		if want := pid1.OptionName(field); o.Names()[0] != want {
			t.Errorf("--%s sets Config.%s; name it --%s, or the field after it", o.Names()[0], field, want)
		}
	}
	durations := 0
	for i := range cfg.NumField() {
		if cfg.Field(i).Type() == reflect.TypeFor[time.Duration]() {
			durations++
		}
	}
	if bound < durations {
		t.Errorf("%d options bound to Config fields, fewer than its %d durations", bound, durations)
	}
}
