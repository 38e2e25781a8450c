package pid1

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// hook is one command to run after the child ended.
type hook struct {
	argv   []string
	source string // the flag or file it came from, for logs
}

// hooksFor lists the hooks for class, in order: the --on-<class> flags,
// DIR/on-<class>.d/*, then the same for "exit".
func (s *supervisor) hooksFor(class Class) []hook {
	var out []hook
	for _, c := range []Class{class, OnExit} {
		for _, line := range s.cfg.Hooks[c] {
			argv, err := SplitWords(line)
			if err != nil {
				// Checked at start-up; this cannot happen for flags.
				s.log.Error("hook", "on", c, "err", err)
				continue
			}
			out = append(out, hook{argv: argv, source: "--on-" + string(c)})
		}
		if s.cfg.HooksDir == "" {
			continue
		}
		dir := filepath.Join(s.cfg.HooksDir, "on-"+string(c)+".d")
		entries, err := os.ReadDir(dir)
		if err != nil {
			if !os.IsNotExist(err) {
				s.log.Error("cannot read hooks directory", "dir", dir, "err", err)
			}
			continue
		}
		// os.ReadDir returns the entries sorted by name: lexical order.
		for _, e := range entries {
			if e.IsDir() {
				continue
			}
			p := filepath.Join(dir, e.Name())
			if unix.Access(p, unix.X_OK) != nil {
				s.log.Debug("skipping hook file that is not executable", "path", p)
				continue
			}
			out = append(out, hook{argv: []string{p}, source: dir})
		}
	}
	return out
}

// runHooks runs the hooks for r's class, one after another, each bounded by
// --hook-timeout. Nothing a hook does changes vigil's exit status.
func (s *supervisor) runHooks(r *record) {
	hooks := s.hooksFor(r.class)
	if len(hooks) == 0 {
		return
	}
	facts := r.facts()
	if s.tail != nil {
		// Present whenever the tail is captured, even empty, as
		// VIGIL_STDERR_TAIL is.
		facts.StderrTail = &r.tail
	}
	payload, _ := json.Marshal(facts)
	env := append(withoutHookVars(os.Environ()), r.env()...)
	if s.tail != nil {
		if f, err := os.CreateTemp("", "vigil-stderr-tail-*"); err != nil {
			s.log.Warn("cannot write the stderr tail for hooks", "err", err)
		} else {
			_, err := f.WriteString(r.tail)
			f.Close()
			defer os.Remove(f.Name())
			if err == nil {
				env = append(env, "VIGIL_STDERR_TAIL="+f.Name())
			}
		}
	}
	for _, h := range hooks {
		s.runHook(h, env, payload)
	}
}

// withoutHookVars drops the variables vigil sets for hooks from env: a
// program reads the first of two values, so a stale VIGIL_CLASS that vigil
// inherited would hide the real one.
func withoutHookVars(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "VIGIL_CLASS", "VIGIL_EXIT_STATUS", "VIGIL_EXIT_CODE", "VIGIL_SIGNAL", "VIGIL_CORE_DUMPED",
			"VIGIL_PID", "VIGIL_COMMAND", "VIGIL_STARTED_AT", "VIGIL_ENDED_AT", "VIGIL_DURATION_MS",
			"VIGIL_STDERR_TAIL":
			continue
		}
		out = append(out, kv)
	}
	return out
}

func (s *supervisor) runHook(h hook, env []string, payload []byte) {
	log := s.log.With("hook", h.argv[0], "from", h.source)
	pr, pw, err := os.Pipe()
	if err != nil {
		log.Error("hook not run", "err", err)
		return
	}
	p := &proc{argv: h.argv, env: env, files: []uintptr{pr.Fd(), 1, 2}}
	p.attr.Setpgid = true
	pid, err := spawn(p)
	pr.Close()
	if err != nil {
		pw.Close()
		log.Error("hook not run", "err", err)
		return
	}
	// A hook that never reads its stdin must not block vigil, so the
	// write has a goroutine of its own; it ends when the hook does.
	go func() {
		_, _ = pw.Write(payload)
		pw.Close()
	}()
	s.hookPid, s.hookExit = pid, nil
	defer func() { s.hookPid = 0 }()
	started := time.Now()
	done := func() bool { return s.hookExit != nil }
	if !s.waitFor(done, s.cfg.HookTimeout) {
		log.Warn("hook timed out; killing its process group", "pid", pid, "timeout", s.cfg.HookTimeout)
		s.kill(-pid, unix.SIGKILL)
		if !s.waitFor(done, killWait) {
			log.Error("hook did not die after SIGKILL; going on", "pid", pid)
			return
		}
	}
	e := *s.hookExit
	took := time.Since(started).Round(time.Millisecond)
	if e.Status() != 0 {
		log.Warn("hook failed", "pid", pid, "status", e.Status(), "signal", sigName(e.Signal), "duration", took)
		return
	}
	log.Debug("hook done", "pid", pid, "duration", took)
}
