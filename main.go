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

	"vigil/internal/logsink"
	"vigil/pid1"
	"vigil/signals"
)

// version is set at build time with -ldflags "-X main.version=...", and
// commit with "-X main.commit=$(git rev-parse HEAD)" where the build has no
// VCS information of its own (a docker build without .git).
var version, commit = "dev", ""

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
	return runWith(args, stdout, stderr, backend{run: pid1.Run, probe: pid1.Probe})
}

// runWith is run with the supervisor as a parameter, so that the tests of
// the command line can check a configuration without starting anything.
func runWith(args []string, stdout, stderr io.Writer, start backend) int {
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
	if len(args) == 0 {
		args = []string{"vigil"}
	}
	err := func() error {
		rest, err := getopt(args[1:], valueTable(app.Flags))
		if err != nil {
			return err
		}
		return app.Run(append([]string{args[0]}, rest...))
	}()
	if err != nil {
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

// backend is what the command line hands its work to: pid1.Run and
// pid1.Probe, or in the tests of the command line fakes that start and
// dial nothing.
type backend struct {
	run   func(context.Context, pid1.Config) (int, error)
	probe func(target string, out io.Writer) int
}

func newApp(stdout, stderr io.Writer, sink *logsink.Sink, status *int, start backend) *cli.App {
	verbose := new(counter)
	str := func(name, env, usage, value string, aliases ...string) cli.Flag {
		return &stringFlag{&cli.StringFlag{Name: name, Aliases: aliases, EnvVars: []string{env}, Usage: usage, Value: value}, names(name, aliases)}
	}
	list := func(name, env, usage string, aliases ...string) cli.Flag {
		return &listFlag{&cli.StringSliceFlag{Name: name, Aliases: aliases, EnvVars: []string{env}, Usage: usage}, names(name, aliases)}
	}
	boolean := func(name, env, usage string, aliases ...string) cli.Flag {
		f := &cli.BoolFlag{Name: name, Aliases: aliases, Usage: usage}
		if env != "" {
			f.EnvVars = []string{env}
		}
		return &boolFlag{f, names(name, aliases)}
	}
	dur := func(name, env, usage string, value time.Duration) cli.Flag {
		return &durationFlag{&cli.DurationFlag{Name: name, EnvVars: []string{env}, Usage: usage, Value: value}, names(name, nil)}
	}
	flags := []cli.Flag{
		boolean("subreaper", "VIGIL_SUBREAPER", "register as a child subreaper even as PID 1 (the default when not PID 1; TINI_SUBREAPER too)", "s"),
		boolean("no-subreaper", "VIGIL_NO_SUBREAPER", "do not register as a child subreaper"),
		boolean("group", "VIGIL_GROUP", "forward signals to the child's whole process group (TINI_KILL_PROCESS_GROUP too)", "g"),
		boolean("single-child", "", "forward signals to the child only: the default (dumb-init's -c)", "c"),
		str("pdeathsig", "VIGIL_PDEATHSIG", "`SIGNAL` vigil receives when its parent dies", "", "p"),
		list("remap-exit", "VIGIL_REMAP_EXIT", "exit 0 when the child's status is `CODE` (repeatable)", "e"),
		list("rewrite", "VIGIL_REWRITE", "rewrite signal `FROM:TO` before forwarding; TO may be none (repeatable; -r as in dumb-init)", "r"),
		&countFlag{&cli.GenericFlag{Name: "verbose", Aliases: []string{"v"}, EnvVars: []string{"VIGIL_VERBOSE"}, Value: verbose,
			Usage: "log more: each -v lowers the log level by one step (-vv; VIGIL_VERBOSE=N; TINI_VERBOSITY=N as in tini)"}, names("verbose", []string{"v"})},
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
		boolean("exit-zero-on-stop", "VIGIL_EXIT_ZERO_ON_STOP", "exit 0 (class stopped) when the child dies of a stop signal vigil forwarded, or exits 128+N for it"),

		str("restart", "VIGIL_RESTART", "`POLICY`: no, on-failure (any class but success and stopped) or always; never after a stop from outside", "no"),
		&intFlag{&cli.IntFlag{Name: "restart-max", EnvVars: []string{"VIGIL_RESTART_MAX"}, Usage: "stop restarting after `N` restarts and exit with the last status (0: no limit)"}, names("restart-max", nil)},
		dur("restart-delay", "VIGIL_RESTART_DELAY", "wait `DURATION` before a restart, doubled after each consecutive short run", time.Second),
		dur("restart-delay-max", "VIGIL_RESTART_DELAY_MAX", "the most a restart waits; a run longer than this resets the delay", 30*time.Second),
		boolean("wait-all", "VIGIL_WAIT_ALL", "when the child ends, wait for all its descendants instead of ending them, then exit with the child's status"),

		dur("hook-timeout", "VIGIL_HOOK_TIMEOUT", "kill a hook's process group after `DURATION`", 10*time.Second),
		str("hooks-dir", "VIGIL_HOOKS_DIR", "run `DIR`/on-<class>.d/* and DIR/on-exit.d/* as hooks", ""),
		&intFlag{&cli.IntFlag{Name: "capture-tail", EnvVars: []string{"VIGIL_CAPTURE_TAIL"}, Usage: "pass the child's stderr through vigil, keeping the last `BYTES` for hooks"}, names("capture-tail", nil)},

		str("name", "VIGIL_NAME", "`NAME` in the tombstone (default: the command's base name)", ""),
		str("tombstone", "VIGIL_TOMBSTONE", "write a JSON termination record to `PATH`", ""),
		str("termination-log", "VIGIL_TERMINATION_LOG", "write a summary of how the child ended to `PATH` (e.g. /dev/termination-log)", ""),
		list("wait-for", "VIGIL_WAIT_FOR", "before starting, wait for `TARGET`: file:PATH, tombstone:PATH (running or ready), ready:PATH (a tombstone saying ready) or tcp:HOST:PORT (repeatable)"),
		dur("wait-timeout", "VIGIL_WAIT_TIMEOUT", "give up waiting after `DURATION` (0: forever) and exit 124", 0),
		list("stop-on", "VIGIL_STOP_ON", "stop the child gracefully when `TARGET` fires: file:PATH appears or tombstone:PATH says exited (repeatable)"),

		boolean("notify", "VIGIL_NOTIFY", "give the child an sd_notify socket (NOTIFY_SOCKET) for READY=1, STATUS=, STOPPING=1, WATCHDOG=1; relayed to vigil's own NOTIFY_SOCKET"),
		list("ready-on", "VIGIL_READY_ON", "mark the child ready once `TARGET` holds: tcp:HOST:PORT accepts or file:PATH exists (repeatable; all must hold)"),
		dur("watchdog", "VIGIL_WATCHDOG", "with --notify: end the child as hung (class watchdog) when no WATCHDOG=1 arrives within `DURATION`", 0),
		str("watchdog-signal", "VIGIL_WATCHDOG_SIGNAL", "`SIGNAL` that ends a hung child, before the grace and SIGKILL", "ABRT"),
		// No VIGIL_PROBE: an exec probe runs with the container's
		// environment, so such a variable would turn the container's own
		// vigil into a probe too.
		&stringFlag{&cli.StringFlag{Name: "probe", Usage: "evaluate `TARGET` once and exit 0 if it holds, 1 if not (ready:PATH, tombstone:PATH, file:PATH, tcp:HOST:PORT); runs no command"}, names("probe", nil)},

		str("user", "VIGIL_USER", "run the child as `USER[:GROUP]` (names or numbers)", "", "u"),
		boolean("no-new-privs", "VIGIL_NO_NEW_PRIVS", "set no_new_privs so the child cannot gain privileges through exec"),
		boolean("version", "", "print one line, NAME version X - git.COMMIT, as docker reads it (with -v: build details too)", "V"),
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
		HideHelpCommand: true,
		HideVersion:     true,
		// Short options are split by getopt before urfave/cli sees them.
		UseShortOptionHandling: false,
		SliceFlagSeparator:     envSeparator,
		// urfave/cli would otherwise print usage or call os.Exit itself.
		ExitErrHandler: func(*cli.Context, error) {},
		// Any non-zero time: urfave/cli would otherwise stat argv[0] at
		// every start to fill in a build time that vigil never shows.
		Compiled: time.Unix(1, 0),
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError{err}
		},
		Action: func(c *cli.Context) error {
			if c.Bool("version") {
				printVersion(stdout, int(*verbose) > 0)
				*status = 0
				return nil
			}
			if c.IsSet("probe") {
				if c.NArg() > 0 {
					return usagef("--probe runs no command; got %q", c.Args().First())
				}
				*status = start.probe(c.String("probe"), stdout)
				return nil
			}
			cfg, err := config(c, int(*verbose), sink)
			if err != nil {
				return err
			}
			code, err := start.run(context.Background(), cfg)
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
		ExitZeroOnStop: c.Bool("exit-zero-on-stop"),
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
	case !c.IsSet("subreaper") && !c.IsSet("no-subreaper") && tiniSet("TINI_SUBREAPER"):
		// tini's variables, for docker run --init, which passes no
		// flags. vigil's own flags and variables win.
		cfg.Subreaper = pid1.SubreaperOn
	}
	switch {
	case c.Bool("group") && c.Bool("single-child"):
		return cfg, usagef("--group and --single-child contradict each other")
	case !c.IsSet("group") && !c.IsSet("single-child") && tiniSet("TINI_KILL_PROCESS_GROUP"):
		cfg.Group = true
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
	cfg.Notify, cfg.Watchdog = c.Bool("notify"), c.Duration("watchdog")
	if cfg.Watchdog < 0 || cfg.Watchdog > 0 && !cfg.Notify {
		return cfg, usagef("--watchdog %s: needs --notify, and a duration above 0", cfg.Watchdog)
	}
	if cfg.WatchdogSignal, err = parseSignal("--watchdog-signal", c.String("watchdog-signal")); err != nil {
		return cfg, err
	}
	switch v := c.String("restart"); v {
	case "no":
	case "on-failure":
		cfg.Restart = pid1.RestartOnFailure
	case "always":
		cfg.Restart = pid1.RestartAlways
	default:
		return cfg, usagef("--restart %q: want no, on-failure or always", v)
	}
	if cfg.RestartMax = c.Int("restart-max"); cfg.RestartMax < 0 {
		return cfg, usagef("--restart-max %d: want 0 (no limit) or more", cfg.RestartMax)
	}
	cfg.RestartDelay, cfg.RestartDelayMax = c.Duration("restart-delay"), c.Duration("restart-delay-max")
	if cfg.RestartDelay < 0 || cfg.RestartDelayMax < cfg.RestartDelay {
		return cfg, usagef("--restart-delay %s, --restart-delay-max %s: want 0 <= delay <= max", cfg.RestartDelay, cfg.RestartDelayMax)
	}
	cfg.WaitAll = c.Bool("wait-all")
	if cfg.WaitAll && cfg.NoCleanup {
		return cfg, usagef("--wait-all and --no-cleanup contradict each other")
	}
	if n := c.Int("capture-tail"); n < 0 || n > 64<<20 {
		return cfg, usagef("--capture-tail %d: want 0 to %d bytes", n, 64<<20)
	} else {
		cfg.CaptureTail = n
	}
	// The captured stderr is a pipe only vigil reads: a descendant left
	// alone would die of SIGPIPE at its first write after vigil exits.
	if cfg.CaptureTail > 0 && cfg.NoCleanup {
		return cfg, usagef("--capture-tail and --no-cleanup contradict each other: what --no-cleanup leaves running would die of SIGPIPE at its first write to stderr once vigil exits")
	}
	for _, class := range append(pid1.Classes(), pid1.OnExit) {
		for _, line := range nonEmpty(c.StringSlice("on-" + string(class))) {
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
	}{{"wait-for", &cfg.WaitFor}, {"stop-on", &cfg.StopOn}, {"ready-on", &cfg.ReadyOn}} {
		for _, v := range nonEmpty(c.StringSlice(f.name)) {
			t, err := pid1.ParseTarget(v)
			if err != nil {
				return cfg, usagef("--%s: %w", f.name, err)
			}
			if f.name == "stop-on" && (t.Kind == "tcp" || t.Kind == "ready") {
				return cfg, usagef("--stop-on %q: only file: and tombstone: targets", v)
			}
			if f.name == "ready-on" && t.Kind != "tcp" && t.Kind != "file" {
				return cfg, usagef("--ready-on %q: only tcp: and file: targets", v)
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

// nonEmpty drops the empty entries of a list: a variable set from a YAML
// block scalar (value: |) ends with a newline, and may hold empty lines.
// A list of nothing but empty entries is returned as it is, so that the
// parser names the empty value given to a flag.
func nonEmpty(vals []string) []string {
	var out []string
	for _, v := range vals {
		if strings.TrimSpace(v) != "" {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		return vals
	}
	return out
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
	if v, ok := os.LookupEnv("TINI_VERBOSITY"); ok && !c.IsSet("log-level") && !c.IsSet("verbose") {
		level = tiniLevel(v)
	}
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

// versionLine is the one line --version prints, in tini's form
// ("tini version 0.19.0 - git.de40ad0"), which dockerd parses for docker
// info and docker version: NAME version X - git.COMMIT. dockerd splits at
// " - ", takes what follows "git." as the commit and compares it with a
// prefix of the commit it was built to expect, as long as the one given;
// Debian's dockerd expects "library-import", 14 characters. So COMMIT is
// the revision's first 7 hex digits, or "unknown" (7 too) when the binary
// was built without VCS information, and never has a suffix such as
// -dirty: anything else on the line breaks the parse.
func versionLine(bi *debug.BuildInfo) string {
	rev := commit
	if bi != nil && rev == "" {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = s.Value
			}
		}
	}
	if len(rev) < 7 || strings.ContainsAny(rev, ". \n") {
		rev = "unknown"
	}
	return fmt.Sprintf("vigil version %s - git.%s", version, rev[:7])
}

// printVersion prints the version line and, with -v, the build details
// on the lines after it.
func printVersion(w io.Writer, detail bool) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	fmt.Fprintln(w, versionLine(bi))
	if !detail || bi == nil {
		return
	}
	fmt.Fprintf(w, "go: %s\n", bi.GoVersion)
	for _, s := range bi.Settings {
		if strings.HasPrefix(s.Key, "vcs.") || s.Key == "CGO_ENABLED" || s.Key == "-tags" || s.Key == "GOARCH" || s.Key == "GOOS" {
			fmt.Fprintf(w, "%s: %s\n", s.Key, s.Value)
		}
	}
}
