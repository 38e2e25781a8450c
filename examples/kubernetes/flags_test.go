package manifests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// flagSpec is one flag of vigil's command line as `vigil --help` shows it.
type flagSpec struct {
	Name        string   // long name, without dashes
	Placeholder string   // "" for a switch; DURATION, TARGET, … for a value
	Usage       string   // the help text, without the default and variables
	Default     string   // "(default: …)", unquoted; "" when none is shown
	Env         []string // the variables that set it, e.g. VIGIL_GRACE
}

// flagSet is vigil's real command line: every spelling of every flag and
// every variable, read from the help of a vigil built from this repository.
type flagSet struct {
	byName map[string]*flagSpec // "grace", "u", "user", …
	byEnv  map[string]*flagSpec // "VIGIL_GRACE", …
	help   string
}

// buildVigil builds vigil from the repository's root, statically as the
// images ship it, into dir.
func buildVigil(dir string) (string, error) {
	bin := filepath.Join(dir, "vigil")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build of vigil in %s: %w\n%s", cmd.Dir, err, out)
	}
	return bin, nil
}

// loadFlagSet runs `vigil --help` and reads its flags.
func loadFlagSet(vigil string) (*flagSet, error) {
	out, err := exec.Command(vigil, "--help").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s --help: %w\n%s", vigil, err, out)
	}
	return parseHelp(string(out))
}

var (
	// urfave/cli prints one flag a line: spellings, at least two spaces
	// (a tabwriter's padding), the usage.
	helpLine = regexp.MustCompile(`^\s+(-\S.*?)\s{2,}(\S.*)$`)
	helpEnv  = regexp.MustCompile(`\s*\[(\$\w+(?:, \$\w+)*)\]$`)
	helpDef  = regexp.MustCompile(`\s*\(default: (.*)\)$`)
)

// parseHelp reads urfave/cli's "GLOBAL OPTIONS" listing:
//
//	--grace DURATION   wait DURATION … (default: 10s) [$VIGIL_GRACE]
//	--remap-exit CODE, -e CODE [ --remap-exit CODE, -e CODE ]  … [$VIGIL_REMAP_EXIT]
func parseHelp(help string) (*flagSet, error) {
	fs := &flagSet{byName: map[string]*flagSpec{}, byEnv: map[string]*flagSpec{}, help: help}
	for line := range strings.SplitSeq(help, "\n") {
		m := helpLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		names, usage := m[1], m[2]
		spec := &flagSpec{}
		if e := helpEnv.FindStringSubmatchIndex(usage); e != nil {
			for v := range strings.SplitSeq(usage[e[2]:e[3]], ", ") {
				spec.Env = append(spec.Env, strings.TrimPrefix(v, "$"))
			}
			usage = usage[:e[0]]
		}
		if d := helpDef.FindStringSubmatchIndex(usage); d != nil {
			spec.Default = strings.Trim(usage[d[2]:d[3]], `"`)
			usage = usage[:d[0]]
		}
		spec.Usage = usage
		// A repeatable flag repeats its spellings in brackets.
		names, _, _ = strings.Cut(names, " [ ")
		var spellings []string
		for part := range strings.SplitSeq(names, ", ") {
			f := strings.Fields(part)
			if len(f) == 0 || len(f) > 2 || !strings.HasPrefix(f[0], "-") {
				return nil, fmt.Errorf("vigil --help: cannot read the flag spellings %q in line %q", part, line)
			}
			name := strings.TrimLeft(f[0], "-")
			if len(name) > 1 && spec.Name == "" {
				spec.Name = name
			}
			if len(f) == 2 {
				spec.Placeholder = f[1]
			}
			spellings = append(spellings, name)
		}
		if spec.Name == "" {
			spec.Name = spellings[0]
		}
		for _, n := range spellings {
			if fs.byName[n] != nil {
				return nil, fmt.Errorf("vigil --help: flag %q listed twice", n)
			}
			fs.byName[n] = spec
		}
		for _, v := range spec.Env {
			fs.byEnv[v] = spec
		}
	}
	// If urfave/cli ever changes its layout, say so here rather than call
	// every flag of the manifests unknown.
	for _, must := range []string{"help", "grace", "drain", "tombstone"} {
		if fs.byName[must] == nil {
			return nil, fmt.Errorf("vigil --help: found no --%s in:\n%s", must, help)
		}
	}
	if fs.byEnv["VIGIL_GRACE"] == nil {
		return nil, fmt.Errorf("vigil --help: found no [$VIGIL_GRACE] in:\n%s", help)
	}
	return fs, nil
}

// setting is one flag given on a command line or through a variable.
type setting struct {
	Spec    *flagSpec
	Value   string // "true" for a switch
	From    string // how it was written: "--grace=25s", "VIGIL_GRACE"
	FromEnv bool
}

// invocation is one command line of vigil, with the container's variables.
type invocation struct {
	Flags   []setting // command line first, then variables
	Command []string  // what vigil runs; empty for --probe
}

// lookup returns the effective setting of a flag: the command line beats a
// variable, as in urfave/cli, and the last of several values wins for a
// single-valued flag.
func (inv *invocation) lookup(name string) (setting, bool) {
	var fromArgs, fromEnv *setting
	for i := range inv.Flags {
		s := &inv.Flags[i]
		switch {
		case s.Spec.Name != name:
		case s.FromEnv:
			fromEnv = s
		default:
			fromArgs = s
		}
	}
	switch {
	case fromArgs != nil:
		return *fromArgs, true
	case fromEnv != nil:
		return *fromEnv, true
	}
	return setting{}, false
}

// duration is the effective value of a DURATION flag: given, or vigil's
// default; explicit says whether it was given.
func (inv *invocation) duration(fs *flagSet, name string) (d time.Duration, explicit bool, err error) {
	s, ok := inv.lookup(name)
	value := fs.byName[name].Default
	if ok {
		value = s.Value
	}
	d, err = time.ParseDuration(value)
	return d, ok, err
}

// parseArgs reads vigil's arguments (argv without argv[0]) the way Go's flag
// package under urfave/cli does: -x and --x alike, =value or the next
// argument, clusters of one-letter switches (-sg), and the first non-flag or
// "--" ends the flags. env is the container's environment.
func (fs *flagSet) parseArgs(args []string, env map[string]string) (*invocation, error) {
	inv := &invocation{}
	i := 0
	for ; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			i++
			break
		}
		if len(arg) < 2 || arg[0] != '-' {
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(arg, "-"), "-"), "=")
		spec := fs.byName[name]
		if spec == nil {
			if cluster := fs.cluster(arg); cluster != nil {
				for _, s := range cluster {
					inv.Flags = append(inv.Flags, setting{Spec: s, Value: "true", From: arg})
				}
				continue
			}
			return nil, fmt.Errorf("vigil has no flag %s", arg)
		}
		switch {
		case spec.Placeholder == "" && !hasValue:
			value = "true"
		case spec.Placeholder != "" && !hasValue:
			if i+1 == len(args) {
				return nil, fmt.Errorf("%s needs a value (%s)", arg, spec.Placeholder)
			}
			i++
			value = args[i]
			arg += " " + value
		}
		if err := spec.check(value); err != nil {
			return nil, fmt.Errorf("%s: %w", arg, err)
		}
		inv.Flags = append(inv.Flags, setting{Spec: spec, Value: value, From: arg})
	}
	inv.Command = args[i:]

	// Variables in a stable order, so that errors are too.
	names := make([]string, 0, len(env))
	for n := range env {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		spec := fs.byEnv[n]
		if spec == nil {
			if strings.HasPrefix(n, "VIGIL_") {
				return nil, fmt.Errorf("vigil has no variable %s", n)
			}
			continue // the child's own variable
		}
		if env[n] == "" {
			continue // empty means unset
		}
		// A repeatable flag takes one value a line in its variable.
		for v := range strings.SplitSeq(env[n], "\n") {
			if v == "" {
				continue
			}
			if err := spec.check(v); err != nil {
				return nil, fmt.Errorf("%s=%q: %w", n, env[n], err)
			}
			inv.Flags = append(inv.Flags, setting{Spec: spec, Value: v, From: n, FromEnv: true})
		}
	}

	probing := false
	if _, ok := inv.lookup("probe"); ok {
		probing = true
	}
	switch {
	case probing && len(inv.Command) > 0:
		return nil, fmt.Errorf("--probe runs no command, but %q follows the flags", inv.Command)
	case !probing && len(inv.Command) == 0:
		return nil, fmt.Errorf("no command after vigil's flags %q", args)
	}
	return inv, nil
}

// cluster returns the switches of -sg, or nil when arg is not a cluster
// of one-letter switches.
func (fs *flagSet) cluster(arg string) []*flagSpec {
	if strings.HasPrefix(arg, "--") || strings.Contains(arg, "=") {
		return nil
	}
	var out []*flagSpec
	for _, r := range arg[1:] {
		spec := fs.byName[string(r)]
		if spec == nil || spec.Placeholder != "" {
			return nil
		}
		out = append(out, spec)
	}
	return out
}

// check validates a value the way the help promises: a DURATION parses, a
// TARGET is of a kind the flag's help names.
func (spec *flagSpec) check(value string) error {
	switch spec.Placeholder {
	case "DURATION":
		if _, err := time.ParseDuration(value); err != nil {
			return err
		}
	case "TARGET":
		kind, rest, ok := strings.Cut(value, ":")
		if !ok || rest == "" {
			return fmt.Errorf("target %q is not KIND:WHAT", value)
		}
		if !strings.Contains(spec.Usage, kind+":") {
			return fmt.Errorf("--%s takes no %s: target (its help: %q)", spec.Name, kind, spec.Usage)
		}
	}
	return nil
}
