// The Go runtime sizes GOMAXPROCS from the cgroup's CPU limit at start and,
// by default, re-reads that limit in the background. An init runs one
// goroutine that sleeps; it needs neither the start-up reads of
// /proc/self/cgroup, mountinfo and cpu.max nor a periodic re-check, which
// would be wake-ups of an idle vigil (bench/: about 0.25 ms of start-up).

//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0

// Command vigil is a small init for containers: it runs one command as its
// child, forwards signals to it, reaps every zombie, runs hooks by how the
// command ended, and exits with the command's status.
//
// This file is the command line only: flags and VIGIL_* variables become a
// pid1.Config, and pid1.Run's result becomes the exit status.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/lmittmann/tint"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"vigil/logsink"
	"vigil/pid1"
	"vigil/signals"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	// Signals are caught already: vigil/internal/intake does it in its
	// package init, before this line runs.
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// usageError is a bad command line; vigil exits 2 and starts nothing.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

func run(args []string, stdout, stderr io.Writer) int {
	return runWith(args, stdout, stderr, pid1.Run)
}

// runWith is run with the supervisor as a parameter, so that the tests of
// the command line can check a configuration without starting anything.
func runWith(args []string, stdout, stderr io.Writer, start supervise) int {
	sink := logsink.New(stderr, 1024)
	defer func() {
		sink.Flush(time.Second)
		sink.Close()
	}()
	// What vigil prints on stdout (--help, --version) is written at the
	// end, at once, by a thread that cannot raise SIGTTOU or SIGPIPE (see
	// logsink.Quiet): vigil catches both, and a write to a terminal with
	// tostop from the background would otherwise spin on SIGTTOU for ever.
	var out bytes.Buffer
	defer func() {
		if out.Len() > 0 {
			_, _ = logsink.WriteQuietly(stdout, out.Bytes())
		}
	}()
	// The Action sets the status; only --help ends without it, and help
	// is a success.
	status := 0
	app := newApp(&out, sink, sink, &status, start)
	if err := app.Run(args); err != nil {
		code := pid1.ExitUsage
		var pe *pid1.Error
		if errors.As(err, &pe) {
			code = pe.Code
		}
		// One line, whatever the input held: log collectors split on
		// newlines, and a bad value may contain one.
		fmt.Fprintf(sink, "vigil: %s\n", strings.ReplaceAll(err.Error(), "\n", `\n`))
		return code
	}
	return status
}

// slice flags take several values in one VIGIL_* variable separated by
// newlines: hook command lines hold commas, spaces and semicolons.
const envSeparator = "\n"

// supervise runs a checked configuration: pid1.Run, or in the tests of
// the command line something that starts nothing.
type supervise func(context.Context, pid1.Config) (int, error)

func newApp(stdout, stderr io.Writer, sink *logsink.Sink, status *int, start supervise) *cli.App {
	verbose := new(counter)
	str := func(name, env, usage, value string, aliases ...string) *cli.StringFlag {
		return &cli.StringFlag{Name: name, Aliases: aliases, EnvVars: []string{env}, Usage: usage, Value: value}
	}
	list := func(name, env, usage string, aliases ...string) *cli.StringSliceFlag {
		return &cli.StringSliceFlag{Name: name, Aliases: aliases, EnvVars: []string{env}, Usage: usage}
	}
	boolean := func(name, env, usage string, aliases ...string) *cli.BoolFlag {
		return &cli.BoolFlag{Name: name, Aliases: aliases, EnvVars: []string{env}, Usage: usage}
	}
	dur := func(name, env, usage string, value time.Duration) *cli.DurationFlag {
		return &cli.DurationFlag{Name: name, EnvVars: []string{env}, Usage: usage, Value: value}
	}
	flags := []cli.Flag{
		boolean("subreaper", "VIGIL_SUBREAPER", "register as a child subreaper even as PID 1 (the default when not PID 1)", "s"),
		boolean("no-subreaper", "VIGIL_NO_SUBREAPER", "do not register as a child subreaper"),
		boolean("group", "VIGIL_GROUP", "forward signals to the child's whole process group", "g"),
		str("pdeathsig", "VIGIL_PDEATHSIG", "`SIGNAL` vigil receives when its parent dies", "", "p"),
		list("remap-exit", "VIGIL_REMAP_EXIT", "exit 0 when the child's status is `CODE` (repeatable)", "e"),
		list("rewrite", "VIGIL_REWRITE", "rewrite signal `FROM:TO` before forwarding; TO may be none (repeatable; -r as in dumb-init)", "r"),
		&cli.GenericFlag{Name: "verbose", Aliases: []string{"v"}, EnvVars: []string{"VIGIL_VERBOSE"}, Value: verbose, Usage: "log more: each -v lowers the log level by one step (-vv; VIGIL_VERBOSE=N)"},
		str("log-level", "VIGIL_LOG_LEVEL", "`LEVEL`: debug, info, warn or error", "info"),
		str("log-format", "VIGIL_LOG_FORMAT", "`FORMAT`: auto (colour on a terminal, text otherwise), text, json or color", "auto"),
		boolean("warn-on-reap", "VIGIL_WARN_ON_REAP", "warn for every reaped process that is not the main child", "w"),

		dur("timeout", "VIGIL_TIMEOUT", "stop the child after `DURATION` (class timeout)", 0),
		str("timeout-signal", "VIGIL_TIMEOUT_SIGNAL", "`SIGNAL` sent when --timeout expires", "TERM"),
		dur("grace", "VIGIL_GRACE", "SIGKILL the child `DURATION` after a stop vigil starts (--timeout, --stop-on); given explicitly, after a stop signal from outside too", 10*time.Second),
		dur("cleanup-grace", "VIGIL_CLEANUP_GRACE", "once the child has ended, give its leftovers `DURATION` between SIGTERM and SIGKILL", 2*time.Second),
		dur("drain", "VIGIL_DRAIN", "on a stop signal, wait `DURATION` before forwarding it", 0),
		list("stop-signal", "VIGIL_STOP_SIGNAL", "`SIGNAL` that begins a graceful stop (repeatable; default TERM and INT)"),
		boolean("no-cleanup", "VIGIL_NO_CLEANUP", "exit without killing descendants left when the child ends"),

		dur("hook-timeout", "VIGIL_HOOK_TIMEOUT", "kill a hook's process group after `DURATION`", 10*time.Second),
		str("hooks-dir", "VIGIL_HOOKS_DIR", "run `DIR`/on-<class>.d/* and DIR/on-exit.d/* as hooks", ""),
		&cli.IntFlag{Name: "capture-tail", EnvVars: []string{"VIGIL_CAPTURE_TAIL"}, Usage: "pass the child's stderr through vigil, keeping the last `BYTES` for hooks"},

		str("name", "VIGIL_NAME", "`NAME` in the tombstone (default: the command's base name)", ""),
		str("tombstone", "VIGIL_TOMBSTONE", "write a JSON termination record to `PATH`", ""),
		str("termination-log", "VIGIL_TERMINATION_LOG", "write a summary of how the child ended to `PATH` (e.g. /dev/termination-log)", ""),
		list("wait-for", "VIGIL_WAIT_FOR", "before starting, wait for `TARGET`: file:PATH, tombstone:PATH (running) or tcp:HOST:PORT (repeatable)"),
		dur("wait-timeout", "VIGIL_WAIT_TIMEOUT", "give up waiting after `DURATION` (0: forever) and exit 124", 0),
		list("stop-on", "VIGIL_STOP_ON", "stop the child gracefully when `TARGET` fires: file:PATH appears or tombstone:PATH says exited (repeatable)"),

		str("user", "VIGIL_USER", "run the child as `USER[:GROUP]` (names or numbers)", "", "u"),
		boolean("no-new-privs", "VIGIL_NO_NEW_PRIVS", "set no_new_privs so the child cannot gain privileges through exec"),
		&cli.BoolFlag{Name: "version", Usage: "print the version and build information"},
	}
	for _, c := range pid1.Classes() {
		flags = append(flags, list("on-"+string(c), "VIGIL_ON_"+strings.ToUpper(string(c)),
			"run `COMMAND` when the child's class is "+string(c)+" (repeatable)"))
	}
	flags = append(flags, list("on-exit", "VIGIL_ON_EXIT", "run `COMMAND` after the class hooks, whatever the class (repeatable)"))

	return &cli.App{
		Name:      "vigil",
		Usage:     "a small init for containers",
		UsageText: "vigil [flags] [--] COMMAND [ARGS...]",
		Flags:     flags,
		Writer:    stdout,
		ErrWriter: stderr,
		// Everything after the first non-flag belongs to the command, and
		// "vigil help" runs a program called help.
		HideHelpCommand:        true,
		HideVersion:            true,
		UseShortOptionHandling: true,
		SliceFlagSeparator:     envSeparator,
		// urfave/cli would otherwise print usage or call os.Exit itself.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError{err}
		},
		Action: func(c *cli.Context) error {
			if c.Bool("version") {
				printVersion(stdout)
				*status = 0
				return nil
			}
			cfg, err := config(c, int(*verbose), sink)
			if err != nil {
				return err
			}
			code, err := start(context.Background(), cfg)
			*status = code
			return err
		},
	}
}

// counter is a flag that counts how often it is given (-v -v, -vv).
// urfave/cli's BoolFlag.Count miscounts when other flags take values.
type counter int

func (c *counter) Set(s string) error {
	// The flag package passes "true" for -v; VIGIL_VERBOSE passes a number.
	if s == "true" {
		*c++
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 8 {
		return fmt.Errorf("want a number of -v from 0 to 8, got %q", s)
	}
	*c = counter(n)
	return nil
}

func (c *counter) String() string   { return strconv.Itoa(int(*c)) }
func (c *counter) IsBoolFlag() bool { return true }

// config turns the parsed command line into a pid1.Config, checking every
// value so that a bad one is reported before anything starts.
func config(c *cli.Context, verbose int, sink *logsink.Sink) (pid1.Config, error) {
	cfg := pid1.Config{
		Command:        c.Args().Slice(),
		Group:          c.Bool("group"),
		WarnOnReap:     c.Bool("warn-on-reap"),
		NoCleanup:      c.Bool("no-cleanup"),
		HooksDir:       c.String("hooks-dir"),
		Name:           c.String("name"),
		Tombstone:      c.String("tombstone"),
		TerminationLog: c.String("termination-log"),
		User:           c.String("user"),
		NoNewPrivs:     c.Bool("no-new-privs"),
		Hooks:          map[pid1.Class][][]string{},
	}
	if len(cfg.Command) == 0 {
		return cfg, usagef("no command given (usage: vigil [flags] [--] COMMAND [ARGS...])")
	}
	log, err := logger(c, verbose, sink)
	if err != nil {
		return cfg, err
	}
	cfg.Log = log

	switch {
	case c.Bool("subreaper") && c.Bool("no-subreaper"):
		return cfg, usagef("--subreaper and --no-subreaper contradict each other")
	case c.Bool("subreaper"):
		cfg.Subreaper = pid1.SubreaperOn
	case c.Bool("no-subreaper"):
		cfg.Subreaper = pid1.SubreaperOff
	}
	if s := c.String("pdeathsig"); s != "" {
		if cfg.PdeathSig, err = parseSignal("--pdeathsig", s); err != nil {
			return cfg, err
		}
		// vigil acts on a signal it catches; KILL ends it, which is what
		// asking for it means. Any other it cannot catch would do nothing.
		if why := signals.NotForwarded(cfg.PdeathSig); why != "" && cfg.PdeathSig != unix.SIGKILL {
			return cfg, usagef("--pdeathsig %q: %s would never reach vigil: %s", s, signals.Name(cfg.PdeathSig), why)
		}
	}
	cfg.RemapExit = map[int]bool{}
	for _, v := range splitCommas(c.StringSlice("remap-exit")) {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 255 {
			return cfg, usagef("--remap-exit %q: want an exit status from 0 to 255", v)
		}
		cfg.RemapExit[n] = true
	}
	cfg.Rewrite = signals.Rewrite{}
	for _, v := range splitCommas(c.StringSlice("rewrite")) {
		from, to, err := signals.ParseRewrite(v)
		if err != nil {
			return cfg, usagef("--rewrite: %w", err)
		}
		cfg.Rewrite[from] = to
	}
	for _, v := range splitCommas(c.StringSlice("stop-signal")) {
		sig, err := parseSignal("--stop-signal", v)
		if err != nil {
			return cfg, err
		}
		if why := signals.NotForwarded(sig); why != "" {
			return cfg, usagef("--stop-signal %q: %s never reaches vigil: %s", v, signals.Name(sig), why)
		}
		cfg.StopSignals = append(cfg.StopSignals, sig)
	}
	if cfg.TimeoutSignal, err = parseSignal("--timeout-signal", c.String("timeout-signal")); err != nil {
		return cfg, err
	}
	for _, d := range []struct {
		name string
		dst  *time.Duration
		min  time.Duration
	}{
		{"timeout", &cfg.Timeout, 0}, {"grace", &cfg.Grace, 0}, {"drain", &cfg.Drain, 0}, {"cleanup-grace", &cfg.CleanupGrace, 0},
		{"hook-timeout", &cfg.HookTimeout, time.Millisecond}, {"wait-timeout", &cfg.WaitTimeout, 0},
	} {
		*d.dst = c.Duration(d.name)
		if *d.dst < d.min {
			return cfg, usagef("--%s %s: must be at least %s", d.name, *d.dst, d.min)
		}
	}
	cfg.GraceSet = c.IsSet("grace")
	if n := c.Int("capture-tail"); n < 0 || n > 64<<20 {
		return cfg, usagef("--capture-tail %d: want 0 to %d bytes", n, 64<<20)
	} else {
		cfg.CaptureTail = n
	}
	for _, class := range append(pid1.Classes(), pid1.OnExit) {
		for _, line := range c.StringSlice("on-" + string(class)) {
			argv, err := pid1.SplitWords(line)
			if err != nil {
				return cfg, usagef("--on-%s: %w", class, err)
			}
			cfg.Hooks[class] = append(cfg.Hooks[class], argv)
		}
	}
	if cfg.HooksDir != "" {
		if fi, err := os.Stat(cfg.HooksDir); err != nil || !fi.IsDir() {
			return cfg, usagef("--hooks-dir %q: not a readable directory", cfg.HooksDir)
		}
	}
	for _, f := range []struct {
		name string
		dst  *[]pid1.Target
	}{{"wait-for", &cfg.WaitFor}, {"stop-on", &cfg.StopOn}} {
		for _, v := range c.StringSlice(f.name) {
			t, err := pid1.ParseTarget(v)
			if err != nil {
				return cfg, usagef("--%s: %w", f.name, err)
			}
			if f.name == "stop-on" && (t.Kind == "tcp" || t.Kind == "ready") {
				return cfg, usagef("--stop-on %q: only file: and tombstone: targets", v)
			}
			*f.dst = append(*f.dst, t)
		}
	}
	return cfg, nil
}

func parseSignal(flag, v string) (unix.Signal, error) {
	sig, err := signals.Parse(v)
	if err != nil {
		return 0, usagef("%s: %w", flag, err)
	}
	return sig, nil
}

// splitCommas lets one value or one VIGIL_* variable carry a list of
// signals or codes, none of which can hold a comma.
func splitCommas(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	if len(out) == 0 && len(vals) > 0 {
		return vals // let the parser name the empty value
	}
	return out
}

// logger builds the slog logger: colour (tint) on a terminal, plain text
// otherwise, or JSON for log shippers. It writes through sink, so logging
// never blocks the supervisor.
func logger(c *cli.Context, verbose int, sink *logsink.Sink) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", c.String("log-level"))
	}
	level -= slog.Level(4 * verbose)
	format := c.String("log-format")
	if format == "auto" {
		format = "text"
		if _, err := unix.IoctlGetTermios(2, unix.TCGETS); err == nil {
			format = "color"
		}
	}
	var h slog.Handler
	switch format {
	case "text":
		h = slog.NewTextHandler(sink, &slog.HandlerOptions{Level: level})
	case "json":
		h = slog.NewJSONHandler(sink, &slog.HandlerOptions{Level: level})
	case "color":
		h = tint.NewTextHandler(sink, &tint.Options{Level: level, TimeFormat: time.TimeOnly})
	default:
		return nil, usagef("--log-format %q: want auto, text, json or color", format)
	}
	return slog.New(h).With("logger", "vigil"), nil
}

func printVersion(w io.Writer) {
	fmt.Fprintf(w, "vigil %s\n", version)
	if bi, ok := debug.ReadBuildInfo(); ok {
		fmt.Fprintf(w, "go: %s\n", bi.GoVersion)
		for _, s := range bi.Settings {
			if strings.HasPrefix(s.Key, "vcs.") || s.Key == "CGO_ENABLED" || s.Key == "-tags" {
				fmt.Fprintf(w, "%s: %s\n", s.Key, s.Value)
			}
		}
	}
}
