package pid1

import (
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"vigil/signals"
)

// SubreaperMode says whether vigil registers as a child subreaper.
type SubreaperMode int

// The subreaper modes.
const (
	SubreaperAuto SubreaperMode = iota // when vigil is not PID 1
	SubreaperOn                        // always (-s)
	SubreaperOff                       // never
)

// Config is everything Run needs; main builds it from flags and VIGIL_*
// variables, starting from DefaultConfig.
//
// The zero value is safe: where zero is no meaningful setting it means the
// default (TimeoutSignal, WatchdogSignal, HookTimeout, StopSignals), and
// every other zero is documented as "none" (no timeout, no grace, no
// restart). DefaultConfig holds the documented defaults of the command
// line, and is the only place they are written. Run checks a Config with
// Validate before it starts anything.
type Config struct {
	Command []string
	Env     []string // the child's environment; nil means vigil's own
	// Pause runs no command: vigil only reaps, until a stop signal, and
	// exits 0 (the PID 1 of a pod with a shared PID namespace). Command
	// must be empty; of the rest only Subreaper, PdeathSig, StopSignals,
	// WarnOnReap and Log apply.
	Pause bool

	Group      bool // forward to the child's process group
	Subreaper  SubreaperMode
	PdeathSig  unix.Signal     // asked of the kernel for vigil itself; 0 for none
	RemapExit  map[int]bool    // child statuses that make vigil exit 0
	Rewrite    signals.Rewrite // applied to every forwarded signal
	WarnOnReap bool            // warn for each reaped process that is not the main child
	Log        *slog.Logger

	Timeout       time.Duration // 0: none
	TimeoutSignal unix.Signal   // 0: DefaultConfig's (TERM)
	// Grace is the time between a stop signal and vigil's SIGKILL. It
	// applies to the stops vigil starts itself (--timeout, --stop-on) and,
	// only when GraceSet, to stop signals from outside: the runtime that
	// sent one owns the deadline of that stop.
	Grace        time.Duration
	GraceSet     bool
	CleanupGrace time.Duration // leftovers between SIGTERM and SIGKILL
	Drain        time.Duration // between a stop signal and forwarding it
	StopSignals  []unix.Signal // received signals that begin a graceful stop; none: DefaultStopSignals
	NoCleanup    bool          // do not kill descendants left when the main child ends
	// ExitZeroOnStop makes a child that honoured a stop signal from
	// outside (it died of the signal forwarded, or exited 128+N for it)
	// class stopped, exit 0.
	ExitZeroOnStop bool

	Restart         RestartPolicy
	RestartMax      int           // restarts before vigil gives up; 0: no limit
	RestartDelay    time.Duration // before the first restart; doubled after each short run
	RestartDelayMax time.Duration
	WaitAll         bool // after the child, wait for every descendant

	Hooks       map[Class][][]string // argv per class; the key "exit" runs after any class
	HooksDir    string
	HookTimeout time.Duration // 0: DefaultConfig's; otherwise at least MinHookTimeout
	CaptureTail int           // bytes of the child's stderr kept for hooks; 0: stderr is inherited

	Name           string // for the tombstone; default: base name of the command
	Tombstone      string
	TerminationLog string

	// Readiness: --notify opens an sd_notify socket for the child;
	// --ready-on targets mark it ready for programs that do not speak it;
	// --watchdog ends it as hung when no WATCHDOG=1 comes in time.
	Notify  bool
	ReadyOn []Target
	// ReadyFd, when above 0, is the descriptor on which the child writes
	// a line when it is ready (s6's notification-fd); 3 to 1023.
	ReadyFd int
	// ReadyTimeout stops a run that is not ready this long after it
	// started, as Timeout does (class timeout); 0: no limit.
	ReadyTimeout   time.Duration
	Watchdog       time.Duration
	WatchdogSignal unix.Signal // 0: DefaultConfig's (ABRT)

	// Listen sockets are opened before the first run and passed to every
	// run after those of socket activation, as systemd passes them.
	Listen []Listen

	WaitFor     []Target
	StopOn      []Target
	WaitTimeout time.Duration // 0: wait forever

	User       string // USER[:GROUP] for the child; "" keeps vigil's
	NoNewPrivs bool

	// OOMProtect sets vigil's own oom_score_adj to -1000 (it needs
	// CAP_SYS_RESOURCE), so that vigil outlives an OOM kill of the whole
	// cgroup (memory.oom.group) and records it; the child and the hooks
	// keep the score vigil started with.
	OOMProtect bool
}

// OnExit is the Hooks key for hooks that run whatever the class.
const OnExit Class = "exit"

// MinHookTimeout is the shortest HookTimeout: a hook needs time to start.
const MinHookTimeout = time.Millisecond

// MaxCaptureTail bounds CaptureTail: the tail is held in vigil's memory.
const MaxCaptureTail = 64 << 20

// DefaultConfig is the configuration of a command line with no flags: the
// documented defaults, written here once. The command line starts from it
// and its --help shows these values.
func DefaultConfig() Config {
	return Config{
		TimeoutSignal:   unix.SIGTERM,
		Grace:           10 * time.Second,
		CleanupGrace:    2 * time.Second,
		RestartDelay:    time.Second,
		RestartDelayMax: 30 * time.Second,
		HookTimeout:     10 * time.Second,
		WatchdogSignal:  unix.SIGABRT,
	}
}

// DefaultStopSignals are the stop signals of a Config that names none.
func DefaultStopSignals() []unix.Signal { return []unix.Signal{unix.SIGTERM, unix.SIGINT} }

// withDefaults fills in the settings whose zero means DefaultConfig's.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.TimeoutSignal == 0 {
		c.TimeoutSignal = d.TimeoutSignal
	}
	if c.WatchdogSignal == 0 {
		c.WatchdogSignal = d.WatchdogSignal
	}
	if c.HookTimeout == 0 {
		c.HookTimeout = d.HookTimeout
	}
	if len(c.StopSignals) == 0 {
		c.StopSignals = DefaultStopSignals()
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate checks every value and every rule between options; Run refuses
// a Config that fails it. Its messages name the options as the command
// line spells them, so that the command line reports the same ones.
func (c Config) Validate() error {
	switch {
	case c.Pause && len(c.Command) > 0:
		return fail(ExitUsage, "--pause runs no command; got %q", c.Command[0])
	case !c.Pause && len(c.Command) == 0:
		return fail(ExitUsage, "no command given (usage: vigil [flags] [--] COMMAND [ARGS...])")
	}
	switch c.Subreaper {
	case SubreaperAuto, SubreaperOn, SubreaperOff:
	default:
		return fail(ExitUsage, "subreaper mode %d: want auto, on or off", c.Subreaper)
	}
	if c.PdeathSig != 0 {
		if err := CheckPdeathSig(signals.Name(c.PdeathSig), c.PdeathSig); err != nil {
			return err
		}
	}
	for _, sig := range c.StopSignals {
		if err := CheckStopSignal(signals.Name(sig), sig); err != nil {
			return err
		}
	}
	for from, to := range c.Rewrite {
		if why := signals.NotForwarded(from); why != "" {
			return fail(ExitUsage, "--rewrite: rewrite \"%s:%s\": %s is never forwarded: %s", signals.Name(from), signals.Name(to), signals.Name(from), why)
		}
		if to < 0 || to > 64 {
			return fail(ExitUsage, "--rewrite: rewrite \"%s:%d\": %d is not a signal", signals.Name(from), to, to)
		}
	}
	for code := range c.RemapExit {
		if err := CheckRemapExit(code); err != nil {
			return err
		}
	}
	for _, s := range []struct {
		flag string
		sig  unix.Signal
	}{{"--timeout-signal", c.TimeoutSignal}, {"--watchdog-signal", c.WatchdogSignal}} {
		if s.sig < 0 || s.sig > 64 {
			return fail(ExitUsage, "%s %d: not a signal", s.flag, s.sig)
		}
	}
	if c.Watchdog < 0 || c.Watchdog > 0 && !c.Notify {
		return fail(ExitUsage, "--watchdog %s: needs --notify, and a duration above 0", c.Watchdog)
	}
	if c.ReadyTimeout > 0 && !c.Notify && len(c.ReadyOn) == 0 && c.ReadyFd == 0 {
		return fail(ExitUsage, "--ready-timeout %s: needs --notify, --ready-on or --ready-fd to say the child is ready", c.ReadyTimeout)
	}
	if c.RestartDelay < 0 || c.RestartDelayMax < c.RestartDelay {
		return fail(ExitUsage, "--restart-delay %s, --restart-delay-max %s: want 0 <= delay <= max", c.RestartDelay, c.RestartDelayMax)
	}
	// Every duration is a span of time, so none is negative; a new one is
	// checked without a line here. Its option is the field's name in kebab
	// case (the command line's TestOptionsAreNamedAfterTheirFields).
	v := reflect.ValueOf(c)
	for i := range v.NumField() {
		if f := v.Type().Field(i); f.Type == reflect.TypeFor[time.Duration]() {
			if d := time.Duration(v.Field(i).Int()); d < 0 {
				return fail(ExitUsage, "--%s %s: must be at least 0s", OptionName(f.Name), d)
			}
		}
	}
	if c.HookTimeout != 0 && c.HookTimeout < MinHookTimeout {
		return fail(ExitUsage, "--hook-timeout %s: must be at least %s", c.HookTimeout, MinHookTimeout)
	}
	switch c.Restart {
	case RestartNo, RestartOnFailure, RestartAlways:
	default:
		return fail(ExitUsage, "--restart %s: want no, on-failure or always", c.Restart)
	}
	if c.RestartMax < 0 {
		return fail(ExitUsage, "--restart-max %d: want 0 (no limit) or more", c.RestartMax)
	}
	if c.ReadyFd != 0 && (c.ReadyFd < 3 || c.ReadyFd > ReadyFdMax) {
		return fail(ExitUsage, "--ready-fd %d: want a descriptor from 3 to %d (0, 1 and 2 are the child's stdio)", c.ReadyFd, ReadyFdMax)
	}
	if c.WaitAll && c.NoCleanup {
		return fail(ExitUsage, "--wait-all and --no-cleanup contradict each other")
	}
	if c.CaptureTail < 0 || c.CaptureTail > MaxCaptureTail {
		return fail(ExitUsage, "--capture-tail %d: want 0 to %d bytes", c.CaptureTail, MaxCaptureTail)
	}
	// The captured stderr is a pipe only vigil reads: a descendant left
	// alone would die of SIGPIPE at its first write after vigil exits.
	if c.CaptureTail > 0 && c.NoCleanup {
		return fail(ExitUsage, "--capture-tail and --no-cleanup contradict each other: what --no-cleanup leaves running would die of SIGPIPE at its first write to stderr once vigil exits")
	}
	for class, hooks := range c.Hooks {
		if class != OnExit && !slices.Contains(Classes(), class) {
			return fail(ExitUsage, "--on-%s: no such class", class)
		}
		for _, argv := range hooks {
			if len(argv) == 0 {
				return fail(ExitUsage, "--on-%s: an empty command", class)
			}
		}
	}
	if c.HooksDir != "" {
		if fi, err := os.Stat(c.HooksDir); err != nil || !fi.IsDir() {
			return fail(ExitUsage, "--hooks-dir %q: not a readable directory", c.HooksDir)
		}
	}
	for _, t := range c.StopOn {
		if err := CheckStopOn(t); err != nil {
			return err
		}
	}
	for _, t := range c.ReadyOn {
		if err := CheckReadyOn(t); err != nil {
			return err
		}
	}
	return nil
}

// OptionName is the command line's name for a Config field: the field's
// name in kebab case (CleanupGrace is cleanup-grace).
func OptionName(field string) string {
	var b []byte
	up := func(i int) bool { return i >= 0 && i < len(field) && 'A' <= field[i] && field[i] <= 'Z' }
	for i := range len(field) {
		c := field[i]
		if up(i) {
			// A word begins at an upper-case letter after a lower-case
			// one, or at the last of a run of them (OOMProtect).
			if i > 0 && (!up(i-1) || i+1 < len(field) && !up(i+1)) {
				b = append(b, '-')
			}
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return string(b)
}

// CheckStopSignal refuses a stop signal vigil could never receive; input
// is the signal as the user wrote it.
func CheckStopSignal(input string, sig unix.Signal) error {
	if why := signals.NotForwarded(sig); why != "" {
		return fail(ExitUsage, "--stop-signal %q: %s never reaches vigil: %s", input, signals.Name(sig), why)
	}
	return nil
}

// CheckPdeathSig refuses a parent-death signal vigil could never receive:
// vigil acts on a signal it catches; KILL ends it, which is what asking for
// it means, and any other it cannot catch would do nothing.
func CheckPdeathSig(input string, sig unix.Signal) error {
	if why := signals.NotForwarded(sig); why != "" && sig != unix.SIGKILL {
		return fail(ExitUsage, "--pdeathsig %q: %s would never reach vigil: %s", input, signals.Name(sig), why)
	}
	return nil
}

// CheckRemapExit refuses what is no exit status.
func CheckRemapExit(code int) error {
	if code < 0 || code > 255 {
		return fail(ExitUsage, "--remap-exit %q: want an exit status from 0 to 255", strconv.Itoa(code))
	}
	return nil
}

// CheckStopOn refuses a --stop-on target that cannot fire: only a file
// that appears and a tombstone that says exited end a run.
func CheckStopOn(t Target) error {
	if t.Kind != "file" && t.Kind != "tombstone" {
		return fail(ExitUsage, "--stop-on %q: only file: and tombstone: targets", t.String())
	}
	return nil
}

// CheckReadyOn refuses a --ready-on target that says nothing of the
// child's readiness.
func CheckReadyOn(t Target) error {
	if t.Kind != "tcp" && t.Kind != "http" && t.Kind != "file" {
		return fail(ExitUsage, "--ready-on %q: only tcp:, http: and file: targets", t.String())
	}
	return nil
}

// restartPolicies are the policies' names, as --restart takes them.
var restartPolicies = [...]string{RestartNo: "no", RestartOnFailure: "on-failure", RestartAlways: "always"}

// String is the policy's name, as --restart takes it.
func (p RestartPolicy) String() string {
	if int(p) < len(restartPolicies) {
		return restartPolicies[p]
	}
	return "RestartPolicy(" + strconv.Itoa(int(p)) + ")"
}

// ParseRestartPolicy reads a policy by its name.
func ParseRestartPolicy(s string) (RestartPolicy, error) {
	for p, name := range restartPolicies {
		if s == name {
			return RestartPolicy(p), nil
		}
	}
	return 0, fail(ExitUsage, "--restart %q: want no, on-failure or always", s)
}
