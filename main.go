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
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lmittmann/tint"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"vigil/internal/logsink"
	"vigil/pid1"
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
	if len(args) == 0 {
		args = []string{"vigil"}
	}
	cl := newCommandLine()
	status, err := cl.run(args[1:], &out, sink, start)
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

// backend is what the command line hands its work to: pid1.Run and
// pid1.Probe, or in the tests of the command line fakes that start and
// dial nothing.
type backend struct {
	run   func(context.Context, pid1.Config) (int, error)
	probe func(target string, out io.Writer) int
}

// run reads the command line and does what it asks: help, the version, a
// probe, or the supervisor's run.
func (cl *commandLine) run(args []string, stdout io.Writer, sink *logsink.Sink, start backend) (int, error) {
	if err := cl.parse(args); err != nil {
		return 0, err
	}
	switch {
	case cl.help && len(cl.args) > 0:
		// urfave/cli's words, as vigil has always said it: -h takes no
		// command.
		return 0, usagef("No help topic for '%s'", cl.args[0])
	case cl.help:
		cl.printHelp(stdout)
		return 0, nil
	case cl.version:
		printVersion(stdout, int(cl.verbose) > 0)
		return 0, nil
	case cl.isSet(cl.probeFlag):
		if len(cl.args) > 0 {
			return 0, usagef("--probe runs no command; got %q", cl.args[0])
		}
		return start.probe(cl.probe, stdout), nil
	}
	if cl.cfg.Pause {
		if err := cl.pauseAlone(); err != nil {
			return 0, err
		}
	}
	cfg, err := cl.config(sink)
	if err != nil {
		return 0, err
	}
	return start.run(context.Background(), cfg)
}

// parse reads the flags, VIGIL_* variables first, then the arguments
// before the command, which it leaves in cl.args.
func (cl *commandLine) parse(args []string) error {
	flags := cl.flags()
	rest, err := getopt(args, valueTable(flags))
	if err != nil {
		return err
	}
	set := flag.NewFlagSet("vigil", flag.ContinueOnError)
	set.SetOutput(io.Discard)
	for _, f := range flags {
		if err := f.Apply(set); err != nil {
			return err
		}
	}
	if err := set.Parse(rest); err != nil {
		return usageError{err}
	}
	cl.visited = map[string]bool{}
	set.Visit(func(f *flag.Flag) { cl.visited[f.Name] = true })
	for _, f := range flags {
		var seen string
		for _, n := range f.Names() {
			if !cl.visited[n] {
				continue
			}
			if seen != "" {
				// urfave/cli's words, as vigil has always said it.
				return usagef("Cannot use two forms of the same flag: %s %s", n, seen)
			}
			seen = n
		}
	}
	cl.args = set.Args()
	return nil
}

// flags lists the options' flags, in the order help shows them.
func (cl *commandLine) flags() []cli.Flag {
	out := make([]cli.Flag, len(cl.opts))
	for i, o := range cl.opts {
		out[i] = o.Flag
	}
	return out
}

// isSet reports whether f was given, on the command line or by its
// variable.
func (cl *commandLine) isSet(f cli.Flag) bool {
	if f.IsSet() {
		return true
	}
	for _, n := range f.Names() {
		if cl.visited[n] {
			return true
		}
	}
	return false
}

// printHelp writes what urfave/cli's help template writes for vigil: the
// flags one a line, their usage in a column.
func (cl *commandLine) printHelp(w io.Writer) {
	tw := tabwriter.NewWriter(w, 1, 8, 2, ' ', 0)
	fmt.Fprint(tw, "NAME:\n   vigil - a small init for containers\n\n"+
		"USAGE:\n   vigil [flags] [--] COMMAND [ARGS...]\n   vigil --pause [flags]\n\n"+
		"GLOBAL OPTIONS:")
	for _, o := range cl.opts {
		fmt.Fprintf(tw, "\n   %s", o.String())
	}
	fmt.Fprint(tw, "\n")
	_ = tw.Flush()
}

// pauseAlone refuses a command, and the flags that need one (any not
// marked for pause), beside --pause: a --restart or a hook that would
// silently do nothing is a mistake to report.
func (cl *commandLine) pauseAlone() error {
	if len(cl.args) > 0 {
		return usagef("--pause runs no command; got %q", cl.args[0])
	}
	for _, o := range cl.opts {
		if !o.pause && cl.isSet(o.Flag) {
			return usagef("--pause runs no command, so --%s has nothing to act on", o.Names()[0])
		}
	}
	return nil
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

// config turns what was read into a pid1.Config, checking every value so
// that a bad one is reported before anything starts.
func (cl *commandLine) config(sink *logsink.Sink) (pid1.Config, error) {
	cfg := &cl.cfg
	cfg.Command = cl.args
	if len(cfg.Command) == 0 && !cfg.Pause {
		return *cfg, cfg.Validate()
	}
	log, err := cl.logger(sink)
	if err != nil {
		return *cfg, err
	}
	cfg.Log = log

	switch {
	case cl.subreaper && cl.noSubreaper:
		return *cfg, usagef("--subreaper and --no-subreaper contradict each other")
	case cl.subreaper:
		cfg.Subreaper = pid1.SubreaperOn
	case cl.noSubreaper:
		cfg.Subreaper = pid1.SubreaperOff
	case !cl.isSet(cl.subreaperFlag) && !cl.isSet(cl.noSubreaperFlag) && tiniSet("TINI_SUBREAPER"):
		// tini's variables, for docker run --init, which passes no
		// flags. vigil's own flags and variables win.
		cfg.Subreaper = pid1.SubreaperOn
	}
	switch {
	case cfg.Group && cl.singleChild:
		return *cfg, usagef("--group and --single-child contradict each other")
	case !cl.isSet(cl.groupFlag) && !cl.isSet(cl.singleChildFlag) && tiniSet("TINI_KILL_PROCESS_GROUP"):
		cfg.Group = true
	}
	for _, o := range cl.opts {
		if o.apply != nil {
			if err := o.apply(); err != nil {
				return *cfg, err
			}
		}
	}
	cfg.GraceSet = cl.isSet(cl.graceFlag)
	return *cfg, cfg.Validate()
}

// logger builds the slog logger: colour (tint) on a terminal, plain text
// otherwise, or JSON for log shippers. It writes through sink, so logging
// never blocks the supervisor.
func (cl *commandLine) logger(sink *logsink.Sink) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cl.logLevel)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", cl.logLevel)
	}
	level -= slog.Level(4 * int(cl.verbose))
	if v, ok := os.LookupEnv("TINI_VERBOSITY"); ok && !cl.isSet(cl.logLevelFlag) && !cl.isSet(cl.verboseFlag) {
		level = tiniLevel(v)
	}
	format := cl.logFormat
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
