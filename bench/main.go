// Command bench measures vigil side by side with tini, dumb-init,
// catatonit and goref, the smallest correct init written in Go, which
// catches signals the way vigil does (built from bench/goref, to show what
// is the Go runtime's and what is vigil's): start-up overhead, memory,
// idle wake-ups, an orphan storm as PID 1 of a PID namespace,
// signal-forward latency and binary size.
//
//	go run ./bench            # medium run, a few minutes
//	go run ./bench -quick     # tiny counts, seconds (what the test suite runs)
//	go run ./bench -full      # the published figures: 2-minute idle window, 100,000 orphans
//
// It needs root (PID namespaces, mounting /proc) and builds vigil and
// goref itself, static and stripped, the way the Dockerfile builds vigil. Every measure runs the
// programs interleaved, round-robin within one iteration or concurrently in
// one window, so drift of the machine hits all of them alike. Results go to
// -out as results.md, results.json and ratios.svg.
//
// The binary doubles as its own helper programs (the PID 1 shim, the storm
// child, the signal waiter): it re-executes itself with BENCH_HELPER set
// and dispatches on os.Args[1], as the e2e tests do.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

func main() {
	if os.Getenv(helperEnv) != "" {
		os.Exit(runHelper(os.Args[1], os.Args[2:]))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// params are the sizes of one run.
type params struct {
	Mode     string        `json:"mode"`
	Startups int           `json:"startup_runs"`
	Idle     time.Duration `json:"idle_window_ns"`
	Orphans  int           `json:"orphans"`
	Storms   int           `json:"storm_rounds"`
	Signals  int           `json:"signals"`
	// FirstSignals is how many fresh starts measure the first signal.
	FirstSignals int           `json:"first_signal_starts"`
	PidsMax      int           `json:"storm_pids_max"`
	SettleTime   time.Duration `json:"settle_ns"`
}

var presets = map[string]params{
	"quick":  {Mode: "quick", Startups: 30, Idle: 10 * time.Second, Orphans: 20000, Storms: 1, Signals: 50, FirstSignals: 3},
	"medium": {Mode: "medium", Startups: 300, Idle: 30 * time.Second, Orphans: 20000, Storms: 2, Signals: 500, FirstSignals: 10},
	"full":   {Mode: "full", Startups: 500, Idle: 2 * time.Minute, Orphans: 100000, Storms: 2, Signals: 500, FirstSignals: 20},
}

// prog is one init under test.
type prog struct {
	Name    string `json:"name"`
	Path    string `json:"path"`
	Version string `json:"version"`
	// argv returns the command line that runs cmd under this init.
	argv func(cmd ...string) []string
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "tiny counts: seconds, for the test suite")
	full := fs.Bool("full", false, "published figures: 2-minute idle window, 100,000 orphans")
	out := fs.String("out", "", "directory for results.md, results.json, ratios.svg (default bench/out)")
	vigilPath := fs.String("vigil", "", "measure this vigil binary instead of building one")
	var extra multiFlag
	fs.Var(&extra, "add", "also measure `NAME=PATH`, a vigil-like init run as PATH -- CMD (repeatable; for comparing builds)")
	startups := fs.Int("startups", 0, "start-up runs per program (0: the mode's)")
	idle := fs.Duration("idle", 0, "idle window (0: the mode's)")
	orphans := fs.Int("orphans", 0, "orphans per storm (0: the mode's)")
	storms := fs.Int("storms", 0, "storm rounds per program (0: the mode's)")
	sigs := fs.Int("signals", 0, "signals per program (0: the mode's)")
	firsts := fs.Int("firstsignals", 0, "fresh starts per program for the first signal (0: the mode's)")
	only := fs.String("only", "", "comma-separated measures to run: startup,memory,idle,storm,signal,first (default all)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	p := presets["medium"]
	switch {
	case *quick && *full:
		fmt.Fprintln(stderr, "bench: -quick and -full contradict each other")
		return 2
	case *quick:
		p = presets["quick"]
	case *full:
		p = presets["full"]
	}
	for _, o := range []struct {
		set int
		dst *int
	}{{*startups, &p.Startups}, {*orphans, &p.Orphans}, {*storms, &p.Storms}, {*sigs, &p.Signals}, {*firsts, &p.FirstSignals}} {
		if o.set > 0 {
			*o.dst = o.set
		}
	}
	if *idle > 0 {
		p.Idle = *idle
	}
	p.PidsMax = 12000
	p.SettleTime = time.Second
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "bench: needs root (PID namespaces, mounting /proc)")
		return 2
	}
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	if *out == "" {
		*out = filepath.Join(root, "bench", "out")
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	tmp, err := os.MkdirTemp("", "vigil-bench-")
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	defer os.RemoveAll(tmp)

	if *vigilPath == "" {
		*vigilPath = filepath.Join(tmp, "vigil")
		fmt.Fprintln(stderr, "bench: building vigil")
		if err := build(root, *vigilPath, "."); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
	}
	goref := filepath.Join(tmp, "goref")
	if err := build(root, goref, "./bench/goref"); err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	progs := findPeers(stderr)
	progs = append(progs, prog{Name: "goref", Path: goref, Version: "bench/goref, " + runtime.Version(),
		argv: func(cmd ...string) []string { return dashDash(goref, cmd) }}, vigilLike("vigil", *vigilPath))
	for _, e := range extra {
		name, path, ok := strings.Cut(e, "=")
		if !ok {
			fmt.Fprintf(stderr, "bench: -add %q: want NAME=PATH\n", e)
			return 2
		}
		progs = append(progs, vigilLike(name, path))
	}
	env := &benchEnv{self: self, tmp: tmp, p: p, log: stderr}
	want := func(m string) bool { return *only == "" || strings.Contains(","+*only+",", ","+m+",") }

	res := &Results{Date: time.Now().UTC().Format(time.RFC3339), Params: p, Host: hostInfo(), Baseline: "tini", GoRef: "goref"}
	for _, pr := range progs {
		res.Programs = append(res.Programs, Program{Name: pr.Name, Path: pr.Path, Version: pr.Version})
	}
	if want("startup") {
		env.startup(progs, res)
	}
	if want("memory") || want("idle") || want("signal") {
		env.resident(progs, res, want("memory"), want("idle"), want("signal"))
	}
	if want("first") {
		env.firstSignal(progs, res, want("memory"))
	}
	env.setMemory(res)
	if want("storm") {
		env.storm(progs, res)
	}
	for i, pr := range progs {
		res.Programs[i].Binary = binaryInfo(pr.Path)
	}
	res.Command = "go run ./bench " + strings.Join(args, " ")
	if err := res.write(*out); err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	fmt.Fprint(stdout, res.markdown())
	fmt.Fprintf(stderr, "bench: results in %s\n", *out)
	return 0
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// benchEnv is what every measure needs.
type benchEnv struct {
	self string // this binary, run as the helpers
	tmp  string
	p    params
	log  io.Writer
	mem  map[int]map[string][]float64 // idle memory samples by program and key
}

func (e *benchEnv) logf(format string, a ...any) {
	fmt.Fprintf(e.log, "bench: "+format+"\n", a...)
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the vigil module")
	}
	return filepath.Dir(mod), nil
}

// build builds the package pkg of the module the way vigil ships: static,
// stripped, without urfave/cli's man-page renderer (a tag goref ignores).
func build(root, dst, pkg string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-tags", "urfave_cli_no_docs", "-ldflags=-s -w", "-o", dst, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building %s: %v\n%s", pkg, err, out)
	}
	return nil
}

// findPeers returns the installed inits, tini first: it is the baseline.
// tini-static is the build Docker ships as docker-init; both are measured.
func findPeers(log io.Writer) []prog {
	var ps []prog
	for _, c := range []struct {
		name    string
		argv    func(path string, cmd []string) []string
		version []string
	}{
		{"tini", dashDash, []string{"--version"}},
		{"tini-static", dashDash, []string{"--version"}},
		{"dumb-init", dashDash, []string{"--version"}},
		{"catatonit", dashDash, []string{"--version"}},
	} {
		path, err := exec.LookPath(c.name)
		if err != nil {
			fmt.Fprintf(log, "bench: %s not installed; skipped (apt-get install tini dumb-init catatonit)\n", c.name)
			continue
		}
		v, _ := exec.Command(path, c.version...).CombinedOutput()
		argv := c.argv
		ps = append(ps, prog{Name: c.name, Path: path, Version: firstLine(string(v)),
			argv: func(cmd ...string) []string { return argv(path, cmd) }})
	}
	return ps
}

func vigilLike(name, path string) prog {
	v, _ := exec.Command(path, "--version").CombinedOutput()
	return prog{Name: name, Path: path, Version: firstLine(string(v)),
		argv: func(cmd ...string) []string { return dashDash(path, cmd) }}
}

// dashDash is every init's command line here: tini, catatonit and vigil
// document INIT -- CMD, and dumb-init's getopt stops at "--" too.
func dashDash(path string, cmd []string) []string {
	return append([]string{path, "--"}, cmd...)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// Host describes the machine, for the reader of the results.
type Host struct {
	CPUs   int    `json:"cpus"`
	Kernel string `json:"kernel"`
	Go     string `json:"go"`
	CPU    string `json:"cpu"`
}

func hostInfo() Host {
	h := Host{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				h.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return h
}
