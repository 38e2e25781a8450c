package pid1

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"vigil/internal/logsink"
)

// hook is one command to run after the child ended.
type hook struct {
	argv   []string
	source string // the flag or file it came from, for logs
}

// listHooks finds the hooks for the record's class, in order: the
// --on-<class> flags, DIR/on-<class>.d/*, then the same for "exit"; and
// prepares what every hook gets: the VIGIL_* environment, the JSON on its
// stdin and the file with the whole captured tail.
func (s *supervisor) listHooks(r *record) int {
	s.hooks = s.hooks[:0]
	for _, c := range []Class{r.class, OnExit} {
		for _, argv := range s.cfg.Hooks[c] {
			s.hooks = append(s.hooks, hook{argv: argv, source: "--on-" + string(c)})
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
			s.hooks = append(s.hooks, hook{argv: []string{p}, source: dir})
		}
	}
	if len(s.hooks) == 0 {
		return 0
	}
	facts := r.facts()
	if s.tail != nil {
		// Present whenever the tail is captured, even empty, as
		// VIGIL_STDERR_TAIL is.
		t := string(r.tail)
		facts.StderrTail = &t
	}
	s.hookJSON, _ = json.Marshal(facts)
	s.hookEnv = append(withoutHookVars(os.Environ()), r.env()...)
	if s.tail != nil {
		if s.tailFile != "" {
			os.Remove(s.tailFile) // the previous run's
			s.tailFile = ""
		}
		if name, err := s.tail.save(); err != nil {
			s.log.Warn("cannot write the stderr tail for hooks", "err", err)
		} else {
			s.tailFile = name
			s.hookEnv = append(s.hookEnv, stderrTailVar+"="+name)
		}
	}
	return len(s.hooks)
}

// withoutHookVars drops the variables vigil sets for hooks from env: a
// program reads the first of two values, so a stale VIGIL_CLASS that vigil
// inherited would hide the real one.
func withoutHookVars(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case isHookVar(k):
			continue
		case k == "NOTIFY_SOCKET", k == "WATCHDOG_USEC", k == "WATCHDOG_PID":
			// A hook is vigil's helper, not the service: it does not talk
			// to vigil's supervisor, nor take part in the child's watchdog.
			continue
		}
		out = append(out, kv)
	}
	return out
}

// startHook starts hook n in a process group of its own, with the JSON on
// its stdin. The machine bounds it with --hook-timeout; the reaper reaps it.
func (s *supervisor) startHook(n int) (int, bool) {
	h := s.hooks[n]
	log := s.log.With("hook", h.argv[0], "from", h.source)
	pr, pw, err := os.Pipe()
	if err != nil {
		log.Error("hook not run", "err", err)
		return 0, false
	}
	p := &proc{argv: h.argv, env: s.hookEnv, files: []uintptr{pr.Fd(), 1, 2}}
	p.attr.Setpgid = true
	pid, err := s.spawn(p)
	pr.Close()
	if err != nil {
		pw.Close()
		log.Error("hook not run", "err", err)
		return 0, false
	}
	// A hook that never reads its stdin must not block vigil, so the
	// write has a goroutine of its own; it ends when the hook does. Quiet
	// keeps the SIGPIPE of a hook that exits unread from looking like a
	// signal for vigil to forward.
	go func(payload []byte) {
		_, _ = logsink.Quiet(pw).Write(payload)
		pw.Close()
	}(s.hookJSON)
	log.Debug("hook started", "pid", pid)
	return pid, true
}
