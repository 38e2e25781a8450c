package main

import (
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"vigil/pid1"
	"vigil/signals"
)

// commandLine is vigil's command line: options lists every flag once, each
// bound where it is defined to the place its value goes (a field of cfg,
// or a field here when the value needs parsing), with what turns that
// value into cfg. Nothing looks a flag up by its name.
type commandLine struct {
	cfg  pid1.Config
	opts []option
	// After parse: the arguments from the command on, and the names of
	// the flags given on the command line.
	args    []string
	visited map[string]bool

	// Values that become part of cfg only once parsed, or that are the
	// command line's own.
	verbose                               counter
	subreaper, noSubreaper, singleChild   bool
	help, version                         bool
	probe                                 string
	pdeathsig, timeoutSig, watchdogSig    string
	restart, logLevel, logFormat          string
	remap, rewrite, stopSigs, listen      []string
	waitFor, stopOn, readyOn              []string
	hooks                                 map[pid1.Class]*[]string
	subreaperFlag, noSubreaperFlag        cli.Flag
	groupFlag, singleChildFlag, probeFlag cli.Flag
	graceFlag, logLevelFlag, verboseFlag  cli.Flag
}

// option is one flag and what becomes of its value.
type option struct {
	cli.Flag
	// pause: the flag means something beside --pause too; the others act
	// on a command, and --pause has none.
	pause bool
	// apply turns the value read into cfg; nil when the flag is bound to
	// cfg directly. It runs after every flag was read, in this order.
	apply func() error
}

// newCommandLine declares vigil's options, with pid1.DefaultConfig's
// values as their defaults.
func newCommandLine() *commandLine {
	cl := &commandLine{cfg: pid1.DefaultConfig(), logLevel: "info", logFormat: "auto", hooks: map[pid1.Class]*[]string{}}
	c := &cl.cfg
	cl.timeoutSig = strings.TrimPrefix(signals.Name(c.TimeoutSignal), "SIG")
	cl.watchdogSig = strings.TrimPrefix(signals.Name(c.WatchdogSignal), "SIG")
	cl.restart = c.Restart.String()
	add := func(f cli.Flag, apply func() error) cli.Flag {
		cl.opts = append(cl.opts, option{Flag: f, apply: apply})
		return f
	}
	forPause := func(f cli.Flag) cli.Flag {
		cl.opts[len(cl.opts)-1].pause = true
		return f
	}

	cl.subreaperFlag = forPause(add(boolean(&cl.subreaper, "subreaper", "VIGIL_SUBREAPER", "register as a child subreaper even as PID 1 (the default when not PID 1; TINI_SUBREAPER too)", "s"), nil))
	cl.noSubreaperFlag = forPause(add(boolean(&cl.noSubreaper, "no-subreaper", "VIGIL_NO_SUBREAPER", "do not register as a child subreaper"), nil))
	cl.groupFlag = add(boolean(&c.Group, "group", "VIGIL_GROUP", "forward signals to the child's whole process group (TINI_KILL_PROCESS_GROUP too)", "g"), nil)
	cl.singleChildFlag = add(boolean(&cl.singleChild, "single-child", "", "forward signals to the child only: the default (dumb-init's -c)", "c"), nil)
	forPause(add(str(&cl.pdeathsig, "pdeathsig", "VIGIL_PDEATHSIG", "`SIGNAL` vigil receives when its parent dies", "p"), cl.applyPdeathsig))
	add(list(&cl.remap, "remap-exit", "VIGIL_REMAP_EXIT", "exit 0 when the child's status is `CODE` (repeatable)", "e"), cl.applyRemap)
	add(list(&cl.rewrite, "rewrite", "VIGIL_REWRITE", "rewrite signal `FROM:TO` before forwarding; TO may be none (repeatable; -r as in dumb-init)", "r"), cl.applyRewrite)
	cl.verboseFlag = forPause(add(&countFlag{&cli.GenericFlag{Name: "verbose", Aliases: []string{"v"}, EnvVars: []string{"VIGIL_VERBOSE"}, Value: &cl.verbose,
		Usage: "log more: each -v lowers the log level by one step (-vv; VIGIL_VERBOSE=N; TINI_VERBOSITY=N as in tini)"}, names("verbose", []string{"v"})}, nil))
	cl.logLevelFlag = forPause(add(str(&cl.logLevel, "log-level", "VIGIL_LOG_LEVEL", "`LEVEL`: debug, info, warn or error"), nil))
	forPause(add(str(&cl.logFormat, "log-format", "VIGIL_LOG_FORMAT", "`FORMAT`: auto (colour on a terminal, text otherwise), text, json or color"), nil))
	forPause(add(boolean(&c.WarnOnReap, "warn-on-reap", "VIGIL_WARN_ON_REAP", "warn for every reaped process that is not the main child", "w"), nil))

	add(dur(&c.Timeout, "timeout", "VIGIL_TIMEOUT", "stop the child after `DURATION` (class timeout)"), nil)
	add(str(&cl.timeoutSig, "timeout-signal", "VIGIL_TIMEOUT_SIGNAL", "`SIGNAL` sent when --timeout expires"), func() (err error) {
		cl.cfg.TimeoutSignal, err = parseSignal("--timeout-signal", cl.timeoutSig)
		return err
	})
	cl.graceFlag = add(dur(&c.Grace, "grace", "VIGIL_GRACE", "SIGKILL the child `DURATION` after a stop vigil starts (--timeout, --stop-on); given explicitly, after a stop signal from outside too"), nil)
	add(dur(&c.CleanupGrace, "cleanup-grace", "VIGIL_CLEANUP_GRACE", "once the child has ended, give its leftovers `DURATION` between SIGTERM and SIGKILL"), nil)
	add(dur(&c.Drain, "drain", "VIGIL_DRAIN", "on a stop signal, wait `DURATION` before forwarding it"), nil)
	forPause(add(list(&cl.stopSigs, "stop-signal", "VIGIL_STOP_SIGNAL", "`SIGNAL` that begins a graceful stop (repeatable; default "+signalNames(pid1.DefaultStopSignals())+")"), cl.applyStopSignals))
	add(boolean(&c.NoCleanup, "no-cleanup", "VIGIL_NO_CLEANUP", "exit without killing descendants left when the child ends"), nil)
	add(boolean(&c.ExitZeroOnStop, "exit-zero-on-stop", "VIGIL_EXIT_ZERO_ON_STOP", "exit 0 (class stopped) when the child dies of a stop signal vigil forwarded, or exits 128+N for it"), nil)

	add(str(&cl.restart, "restart", "VIGIL_RESTART", "`POLICY`: no, on-failure (any class but success and stopped) or always; never after a stop from outside"), func() (err error) {
		cl.cfg.Restart, err = pid1.ParseRestartPolicy(cl.restart)
		return err
	})
	add(integer(&c.RestartMax, "restart-max", "VIGIL_RESTART_MAX", "stop restarting after `N` restarts and exit with the last status (0: no limit)"), nil)
	add(dur(&c.RestartDelay, "restart-delay", "VIGIL_RESTART_DELAY", "wait `DURATION` before a restart, doubled after each consecutive short run"), nil)
	add(dur(&c.RestartDelayMax, "restart-delay-max", "VIGIL_RESTART_DELAY_MAX", "the most a restart waits; a run longer than this resets the delay"), nil)
	add(boolean(&c.WaitAll, "wait-all", "VIGIL_WAIT_ALL", "when the child ends, wait for all its descendants instead of ending them, then exit with the child's status"), nil)

	add(list(&cl.listen, "listen", "VIGIL_LISTEN", "open the listening socket `ADDRESS`, [NAME=]tcp:HOST:PORT or [NAME=]unix:PATH, before the first run and pass it to every run as socket activation does (repeatable)"), cl.applyListen)

	add(dur(&c.HookTimeout, "hook-timeout", "VIGIL_HOOK_TIMEOUT", "kill a hook's process group after `DURATION`"), func() error {
		// 0 would be the default in a Config; here it is a value given.
		if d := cl.cfg.HookTimeout; d < pid1.MinHookTimeout {
			return usagef("--hook-timeout %s: must be at least %s", d, pid1.MinHookTimeout)
		}
		return nil
	})
	add(str(&c.HooksDir, "hooks-dir", "VIGIL_HOOKS_DIR", "run `DIR`/on-<class>.d/* and DIR/on-exit.d/* as hooks"), nil)
	add(integer(&c.CaptureTail, "capture-tail", "VIGIL_CAPTURE_TAIL", "pass the child's stderr through vigil, keeping the last `BYTES` for hooks"), nil)

	add(str(&c.Name, "name", "VIGIL_NAME", "`NAME` in the tombstone (default: the command's base name)"), nil)
	add(str(&c.Tombstone, "tombstone", "VIGIL_TOMBSTONE", "write a JSON termination record to `PATH`"), nil)
	add(str(&c.TerminationLog, "termination-log", "VIGIL_TERMINATION_LOG", "write a summary of how the child ended to `PATH` (e.g. /dev/termination-log)"), nil)
	add(list(&cl.waitFor, "wait-for", "VIGIL_WAIT_FOR", "before starting, wait for `TARGET`: file:PATH, tombstone:PATH (running or ready), ready:PATH (a tombstone saying ready), tcp:HOST:PORT or http:HOST:PORT/PATH (a GET answering 2xx or 3xx) (repeatable)"),
		targets("--wait-for", &cl.waitFor, &c.WaitFor, nil))
	add(dur(&c.WaitTimeout, "wait-timeout", "VIGIL_WAIT_TIMEOUT", "give up waiting after `DURATION` (0: forever) and exit 124"), nil)
	add(list(&cl.stopOn, "stop-on", "VIGIL_STOP_ON", "stop the child gracefully when `TARGET` fires: file:PATH appears or tombstone:PATH says exited (repeatable)"),
		targets("--stop-on", &cl.stopOn, &c.StopOn, pid1.CheckStopOn))

	add(boolean(&c.Notify, "notify", "VIGIL_NOTIFY", "give the child an sd_notify socket (NOTIFY_SOCKET) for READY=1, STATUS=, STOPPING=1, WATCHDOG=1; relayed to vigil's own NOTIFY_SOCKET"), nil)
	add(list(&cl.readyOn, "ready-on", "VIGIL_READY_ON", "mark the child ready once `TARGET` holds: tcp:HOST:PORT accepts, http:HOST:PORT/PATH answers 2xx or 3xx, or file:PATH exists (repeatable; all must hold)"),
		targets("--ready-on", &cl.readyOn, &c.ReadyOn, pid1.CheckReadyOn))
	add(integer(&c.ReadyFd, "ready-fd", "VIGIL_READY_FD", "give the child descriptor `N` (3 or more) and mark it ready when it writes a line there (s6's notification-fd)"), nil)
	add(dur(&c.ReadyTimeout, "ready-timeout", "VIGIL_READY_TIMEOUT", "stop the child as --timeout does (class timeout) when it is not ready `DURATION` after it started (each run)"), nil)
	add(dur(&c.Watchdog, "watchdog", "VIGIL_WATCHDOG", "with --notify: end the child as hung (class watchdog) when no WATCHDOG=1 arrives within `DURATION`"), nil)
	add(str(&cl.watchdogSig, "watchdog-signal", "VIGIL_WATCHDOG_SIGNAL", "`SIGNAL` that ends a hung child, before the grace and SIGKILL"), func() (err error) {
		cl.cfg.WatchdogSignal, err = parseSignal("--watchdog-signal", cl.watchdogSig)
		return err
	})
	// No VIGIL_PROBE: an exec probe runs with the container's environment,
	// so such a variable would turn the container's own vigil into a probe
	// too.
	forPause(add(boolean(&c.Pause, "pause", "VIGIL_PAUSE", "run no command: reap every process that ends, until a stop signal, then exit 0 (the PID 1 of a shared PID namespace; catatonit's -P)", "P"), nil))
	cl.probeFlag = add(str(&cl.probe, "probe", "", "evaluate `TARGET` once and exit 0 if it holds, 1 if not (ready:PATH, tombstone:PATH, file:PATH, tcp:HOST:PORT, http:HOST:PORT/PATH); runs no command"), nil)

	add(str(&c.User, "user", "VIGIL_USER", "run the child as `USER[:GROUP]` (names or numbers)", "u"), nil)
	add(boolean(&c.NoNewPrivs, "no-new-privs", "VIGIL_NO_NEW_PRIVS", "set no_new_privs so the child cannot gain privileges through exec"), nil)
	add(boolean(&c.OOMProtect, "oom-protect", "VIGIL_OOM_PROTECT", "set vigil's own oom_score_adj to -1000 (needs CAP_SYS_RESOURCE) so that it outlives an OOM kill of the whole cgroup (memory.oom.group) and records it; the child and hooks keep the score vigil started with"), nil)
	add(boolean(&cl.version, "version", "", "print one line, NAME version X - git.COMMIT, as docker reads it (with -v: build details too)", "V"), nil)
	for _, class := range append(pid1.Classes(), pid1.OnExit) {
		lines := new([]string)
		cl.hooks[class] = lines
		usage := "run `COMMAND` when the child's class is " + string(class) + " (repeatable)"
		if class == pid1.OnExit {
			usage = "run `COMMAND` after the class hooks, whatever the class (repeatable)"
		}
		add(list(lines, "on-"+string(class), "VIGIL_ON_"+strings.ToUpper(string(class)), usage), func() error {
			for _, line := range nonEmpty(*lines) {
				argv, err := pid1.SplitWords(line)
				if err != nil {
					return usagef("--on-%s: %w", class, err)
				}
				if cl.cfg.Hooks == nil {
					cl.cfg.Hooks = map[pid1.Class][][]string{}
				}
				cl.cfg.Hooks[class] = append(cl.cfg.Hooks[class], argv)
			}
			return nil
		})
	}
	add(&boolFlag{&cli.BoolFlag{Name: "help", Aliases: []string{"h"}, Usage: "show help", DisableDefaultText: true, Destination: &cl.help}, names("help", []string{"h"})}, nil)
	return cl
}

func (cl *commandLine) applyPdeathsig() (err error) {
	if cl.pdeathsig == "" {
		return nil
	}
	if cl.cfg.PdeathSig, err = parseSignal("--pdeathsig", cl.pdeathsig); err != nil {
		return err
	}
	return pid1.CheckPdeathSig(cl.pdeathsig, cl.cfg.PdeathSig)
}

func (cl *commandLine) applyRemap() error {
	for _, v := range splitCommas(cl.remap) {
		n, err := strconv.Atoi(v)
		if err != nil {
			n = -1 // named as it was given, below
		}
		if err := pid1.CheckRemapExit(n); err != nil {
			return usagef("--remap-exit %q: want an exit status from 0 to 255", v)
		}
		if cl.cfg.RemapExit == nil {
			cl.cfg.RemapExit = map[int]bool{}
		}
		cl.cfg.RemapExit[n] = true
	}
	return nil
}

func (cl *commandLine) applyRewrite() error {
	for _, v := range splitCommas(cl.rewrite) {
		from, to, err := signals.ParseRewrite(v)
		if err != nil {
			return usagef("--rewrite: %w", err)
		}
		if cl.cfg.Rewrite == nil {
			cl.cfg.Rewrite = signals.Rewrite{}
		}
		cl.cfg.Rewrite[from] = to
	}
	return nil
}

func (cl *commandLine) applyStopSignals() error {
	vals := splitCommas(cl.stopSigs)
	if len(vals) > 0 {
		cl.cfg.StopSignals = nil // given: these replace the default
	}
	for _, v := range vals {
		sig, err := parseSignal("--stop-signal", v)
		if err != nil {
			return err
		}
		if err := pid1.CheckStopSignal(v, sig); err != nil {
			return err
		}
		cl.cfg.StopSignals = append(cl.cfg.StopSignals, sig)
	}
	return nil
}

func (cl *commandLine) applyListen() error {
	for _, v := range nonEmpty(cl.listen) {
		l, err := pid1.ParseListen(v)
		if err != nil {
			return usagef("--listen %w", err)
		}
		cl.cfg.Listen = append(cl.cfg.Listen, l)
	}
	return nil
}

// targets is the apply of a list of targets: each parsed, checked by
// check when there is one, and appended to dst.
func targets(flag string, vals *[]string, dst *[]pid1.Target, check func(pid1.Target) error) func() error {
	return func() error {
		for _, v := range nonEmpty(*vals) {
			t, err := pid1.ParseTarget(v)
			if err != nil {
				return usagef("%s: %w", flag, err)
			}
			if check != nil {
				if err := check(t); err != nil {
					return err
				}
			}
			*dst = append(*dst, t)
		}
		return nil
	}
}

func parseSignal(flag, v string) (unix.Signal, error) {
	sig, err := signals.Parse(v)
	if err != nil {
		return 0, usagef("%s: %w", flag, err)
	}
	return sig, nil
}

// signalNames is a list of signals as help shows it: "TERM and INT".
func signalNames(sigs []unix.Signal) string {
	var s []string
	for _, sig := range sigs {
		s = append(s, strings.TrimPrefix(signals.Name(sig), "SIG"))
	}
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
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
