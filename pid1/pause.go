package pid1

import (
	"context"
	"iter"
	"log/slog"
	"os"
	"runtime"
	"slices"

	"golang.org/x/sys/unix"

	"vigil/internal/intake"
	"vigil/reaper"
	"vigil/signals"
)

// pause is vigil --pause: the PID 1 of a pod whose containers share one PID
// namespace (Kubernetes' shareProcessNamespace, a podman pod). It starts
// nothing; the processes that join the namespace (nsenter, a runtime's
// exec) leave their orphans to it, and it reaps them until a stop signal,
// then exits 0. What it does with an event is pauseStep's to decide.
func pause(ctx context.Context, cfg Config) (int, error) {
	log, stops := cfg.Log, cfg.StopSignals
	if cfg.PdeathSig != 0 {
		// prctl sets it on the calling thread: keep that thread, as Run
		// does.
		runtime.LockOSThread()
		if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(cfg.PdeathSig), 0, 0, 0); err != nil {
			return ExitInternal, fail(ExitInternal, "prctl(PR_SET_PDEATHSIG): %w", err)
		}
	}
	if cfg.Subreaper == SubreaperOn || (cfg.Subreaper == SubreaperAuto && os.Getpid() != 1) {
		if err := reaper.SetSubreaper(); err != nil {
			log.Warn("cannot become a child subreaper; orphans will be reparented elsewhere", "err", err)
		}
	}
	stopCancel := context.AfterFunc(ctx, func() { intake.Post(intake.Cancel) })
	defer stopCancel()
	intake.Ready()
	log.Debug("pausing: reaping until a stop signal", "stop_signals", stops)

	var pend intake.Pending
	var buf []reaper.Exit
	// A vigil exec'd by a process that had children inherits them, and
	// their SIGCHLDs may have come before the intake: reap once first.
	child := true
	for {
		switch act, sig := pauseStep(pend.Signals(), child, pend.Has(intake.Cancel), stops); act {
		case pauseReap:
			var err error
			if buf, _, err = reaper.Drain(buf[:0], false, false); err != nil {
				log.Error("reaping failed", "err", err)
			}
			level := slog.LevelDebug
			if cfg.WarnOnReap {
				level = slog.LevelWarn
			}
			for _, e := range buf {
				log.Log(ctx, level, "reaped", "pid", e.Pid, "status", e.Status())
			}
		case pauseExit:
			if sig != 0 {
				log.Debug("stop signal; exiting", "signal", signals.Name(sig))
			}
			// Whatever is still alive is the pod's: the runtime ends
			// the namespace with its PID 1, as it does for pause.
			return 0, nil
		case pauseWait:
		default:
			panic("pause: unknown step")
		}
		<-intake.Wake()
		intake.Take(&pend)
		child = pend.Child()
	}
}

// pauseAction is what pause does with one batch of events.
type pauseAction int

const (
	pauseWait pauseAction = iota // nothing to do
	pauseReap                    // drain every ended child
	pauseExit                    // a stop signal or a cancel: exit 0
)

// pauseStep decides what one batch from the intake means in pause mode: a
// stop signal (or Run's context ending) exits, whatever else came with it;
// a SIGCHLD reaps; any other signal is ignored, as the Kubernetes pause
// container and catatonit -P ignore what they are not asked to act on
// (there is no child to forward it to). It returns the stop signal, or 0.
func pauseStep(sigs iter.Seq[unix.Signal], child, cancel bool, stops []unix.Signal) (pauseAction, unix.Signal) {
	for sig := range sigs {
		if slices.Contains(stops, sig) {
			return pauseExit, sig
		}
	}
	if cancel {
		return pauseExit, 0
	}
	if child {
		return pauseReap, 0
	}
	return pauseWait, 0
}
