package pid1

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vigil/signals"
)

// TestTheZeroConfigIsSafe: a Config with only a command is valid, and what
// it leaves at zero where zero means nothing becomes the default.
func TestTheZeroConfigIsSafe(t *testing.T) {
	cfg := Config{Command: []string{"true"}}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	got, d := cfg.withDefaults(), DefaultConfig()
	if got.TimeoutSignal != d.TimeoutSignal || got.WatchdogSignal != d.WatchdogSignal || got.HookTimeout != d.HookTimeout {
		t.Errorf("withDefaults: timeout signal %v, watchdog signal %v, hook timeout %v; want DefaultConfig's %v, %v, %v",
			got.TimeoutSignal, got.WatchdogSignal, got.HookTimeout, d.TimeoutSignal, d.WatchdogSignal, d.HookTimeout)
	}
	if !slices.Equal(got.StopSignals, []unix.Signal{unix.SIGTERM, unix.SIGINT}) {
		t.Errorf("stop signals %v, want TERM and INT", got.StopSignals)
	}
	if got.Log == nil {
		t.Errorf("no logger")
	}
	// What is set stays as it is.
	set := Config{Command: []string{"true"}, TimeoutSignal: unix.SIGHUP, HookTimeout: time.Second, StopSignals: []unix.Signal{unix.SIGUSR1}}.withDefaults()
	if set.TimeoutSignal != unix.SIGHUP || set.HookTimeout != time.Second || !slices.Equal(set.StopSignals, []unix.Signal{unix.SIGUSR1}) {
		t.Errorf("withDefaults changed what was set: %v %v %v", set.TimeoutSignal, set.HookTimeout, set.StopSignals)
	}
}

// TestDefaultConfigIsValid: the command line's defaults pass, with a
// command or with Pause.
func TestDefaultConfigIsValid(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Command = []string{"true"}
	if err := cfg.Validate(); err != nil {
		t.Errorf("DefaultConfig with a command: %v", err)
	}
	cfg = DefaultConfig()
	cfg.Pause = true
	if err := cfg.Validate(); err != nil {
		t.Errorf("DefaultConfig with Pause: %v", err)
	}
}

// TestValidateRefusesWhatCannotWork: each rule between options, and each
// value out of its bounds, is refused with a usage error naming it.
func TestValidateRefusesWhatCannotWork(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no command", func(c *Config) { c.Command = nil }, "no command given"},
		{"pause with a command", func(c *Config) { c.Pause = true }, "--pause runs no command"},
		{"watchdog without notify", func(c *Config) { c.Watchdog = time.Second }, "--watchdog 1s: needs --notify"},
		{"negative watchdog", func(c *Config) { c.Watchdog, c.Notify = -time.Second, true }, "--watchdog -1s"},
		{"ready timeout with nothing to say ready", func(c *Config) { c.ReadyTimeout = time.Second }, "--ready-timeout 1s: needs --notify, --ready-on or --ready-fd"},
		{"negative ready timeout", func(c *Config) { c.ReadyTimeout, c.Notify = -time.Second, true }, "--ready-timeout -1s: must be at least 0s"},
		{"tcp stop-on", func(c *Config) { c.StopOn = []Target{{Kind: "tcp", Addr: "db:5432"}} }, `--stop-on "tcp:db:5432"`},
		{"ready stop-on", func(c *Config) { c.StopOn = []Target{{Kind: "ready", Path: "/t"}} }, `--stop-on "ready:/t"`},
		{"tombstone ready-on", func(c *Config) { c.ReadyOn = []Target{{Kind: "tombstone", Path: "/t"}} }, `--ready-on "tombstone:/t"`},
		{"wait-all without cleanup", func(c *Config) { c.WaitAll, c.NoCleanup = true, true }, "--wait-all and --no-cleanup"},
		{"capture tail without cleanup", func(c *Config) { c.CaptureTail, c.NoCleanup = 1, true }, "SIGPIPE"},
		{"capture tail too large", func(c *Config) { c.CaptureTail = MaxCaptureTail + 1 }, "--capture-tail"},
		{"negative grace", func(c *Config) { c.Grace = -time.Second }, "--grace -1s"},
		{"negative timeout", func(c *Config) { c.Timeout = -time.Second }, "--timeout -1s"},
		{"negative drain", func(c *Config) { c.Drain = -1 }, "--drain"},
		{"negative cleanup grace", func(c *Config) { c.CleanupGrace = -1 }, "--cleanup-grace"},
		{"negative wait timeout", func(c *Config) { c.WaitTimeout = -1 }, "--wait-timeout"},
		{"hook timeout below the least", func(c *Config) { c.HookTimeout = time.Microsecond }, "--hook-timeout 1µs"},
		{"delay above its max", func(c *Config) { c.RestartDelay, c.RestartDelayMax = 5*time.Second, time.Second }, "--restart-delay 5s"},
		{"negative restart max", func(c *Config) { c.RestartMax = -1 }, "--restart-max -1"},
		{"unknown restart policy", func(c *Config) { c.Restart = 9 }, "--restart RestartPolicy(9)"},
		{"ready fd on stdout", func(c *Config) { c.ReadyFd = 1 }, "--ready-fd 1"},
		{"ready fd too high", func(c *Config) { c.ReadyFd = ReadyFdMax + 1 }, "--ready-fd 1024"},
		{"stop signal never caught", func(c *Config) { c.StopSignals = []unix.Signal{unix.SIGKILL} }, "SIGKILL never reaches vigil"},
		{"reserved stop signal", func(c *Config) { c.StopSignals = []unix.Signal{33} }, "SIG33 never reaches vigil"},
		{"pdeathsig never caught", func(c *Config) { c.PdeathSig = unix.SIGSTOP }, "SIGSTOP would never reach vigil"},
		{"rewrite of CHLD", func(c *Config) { c.Rewrite = signals.Rewrite{unix.SIGCHLD: unix.SIGTERM} }, "SIGCHLD is never forwarded"},
		{"rewrite to no signal", func(c *Config) { c.Rewrite = signals.Rewrite{unix.SIGTERM: 99} }, "99 is not a signal"},
		{"remap above 255", func(c *Config) { c.RemapExit = map[int]bool{256: true} }, `--remap-exit "256"`},
		{"hook of no class", func(c *Config) { c.Hooks = map[Class][][]string{"crashed": {{"true"}}} }, "--on-crashed"},
		{"empty hook", func(c *Config) { c.Hooks = map[Class][][]string{OnExit: {{}}} }, "--on-exit: an empty command"},
		{"missing hooks dir", func(c *Config) { c.HooksDir = "/no/such/dir" }, `--hooks-dir "/no/such/dir"`},
		{"timeout signal out of range", func(c *Config) { c.TimeoutSignal = 65 }, "--timeout-signal 65"},
		{"subreaper mode out of range", func(c *Config) { c.Subreaper = 7 }, "subreaper mode 7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Command = []string{"true"}
			tt.edit(&cfg)
			err := cfg.Validate()
			var e *Error
			if !errors.As(err, &e) || e.Code != ExitUsage {
				t.Fatalf("Validate: %v; want a usage error (exit %d)", err, ExitUsage)
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("Validate: %q; want one line saying %q", err, tt.want)
			}
		})
	}
}

// TestRunRefusesAnInvalidConfig: a caller of Run that skips the command
// line gets the refusal, with nothing started.
func TestRunRefusesAnInvalidConfig(t *testing.T) {
	cfg := Config{Command: []string{"/bin/sh", "-c", "exit 0"}, StopOn: []Target{{Kind: "tcp", Addr: "127.0.0.1:1"}}}
	code, err := Run(context.Background(), cfg)
	if code != ExitUsage || err == nil || !strings.Contains(err.Error(), "--stop-on") {
		t.Errorf("Run: %d, %v; want %d and the --stop-on refusal", code, err, ExitUsage)
	}
	cfg = Config{Pause: true, Command: []string{"true"}}
	if code, err := Run(context.Background(), cfg); code != ExitUsage || err == nil {
		t.Errorf("Run with Pause and a command: %d, %v; want %d", code, err, ExitUsage)
	}
}

// TestRestartPolicyNames: each policy reads back from its name.
func TestRestartPolicyNames(t *testing.T) {
	for _, p := range []RestartPolicy{RestartNo, RestartOnFailure, RestartAlways} {
		got, err := ParseRestartPolicy(p.String())
		if err != nil || got != p {
			t.Errorf("ParseRestartPolicy(%q) = %v, %v; want %v", p.String(), got, err, p)
		}
	}
	if _, err := ParseRestartPolicy("sometimes"); err == nil || !strings.Contains(err.Error(), `"sometimes"`) {
		t.Errorf("ParseRestartPolicy(sometimes): %v; want an error naming it", err)
	}
}

func TestOptionName(t *testing.T) {
	for field, want := range map[string]string{"Grace": "grace", "CleanupGrace": "cleanup-grace", "RestartDelayMax": "restart-delay-max",
		"OOMProtect": "oom-protect", "ReadyFd": "ready-fd", "NoNewPrivs": "no-new-privs", "TTY": "tty", "WaitForHTTP": "wait-for-http"} {
		if got := OptionName(field); got != want {
			t.Errorf("OptionName(%q) = %q, want %q", field, got, want)
		}
	}
}
