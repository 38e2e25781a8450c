package main

import (
	"flag"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
)

// The flag types below are urfave/cli's own with one change: Names()
// returns a list built once. urfave/cli's Names() runs a regular expression
// over every name on each call, and before the Action it asks IsSet of
// every flag (runFlagActions), each IsSet scanning every flag's Names():
// O(flags²) regular expressions, 70% of the command line's cost
// (BenchmarkRunWith: about 600 µs and 5150 allocations per command line
// before, 170 µs and 980 after). Embedding the pointer
// keeps every other method, so help, env lookup and parsing are unchanged.
//
// The second change is Apply: a VIGIL_* variable that is empty, or holds
// nothing but white space and newlines (a YAML block scalar, value: |,
// always ends with one), is unset. urfave/cli would read "" as a value for
// string flags and fail on "\n" for the others.

type boolFlag struct {
	*cli.BoolFlag
	names []string
}

func (f *boolFlag) Names() []string { return f.names }
func (f *boolFlag) Apply(set *flag.FlagSet) error {
	return blankIsUnset(&f.EnvVars, func() error { return f.BoolFlag.Apply(set) })
}

type stringFlag struct {
	*cli.StringFlag
	names []string
}

func (f *stringFlag) Names() []string { return f.names }
func (f *stringFlag) Apply(set *flag.FlagSet) error {
	return blankIsUnset(&f.EnvVars, func() error { return f.StringFlag.Apply(set) })
}

// listFlag is a repeatable flag. Its values are kept as given, one a
// line: a VIGIL_* variable holds several separated by newlines (hook
// command lines hold commas, spaces and semicolons), each trimmed of white
// space, and the values given on the command line replace the variable's.
// It is its own because urfave/cli sets a slice flag's separator only
// through cli.App. String (help) is urfave/cli's.
type listFlag struct {
	*cli.StringSliceFlag
	names []string
	dst   *[]string
}

func (f *listFlag) Names() []string { return f.names }
func (f *listFlag) Apply(set *flag.FlagSet) error {
	for _, e := range f.EnvVars {
		if v, ok := syscall.Getenv(e); ok {
			if strings.TrimSpace(v) != "" {
				for _, line := range strings.Split(v, "\n") {
					*f.dst = append(*f.dst, strings.TrimSpace(line))
				}
				f.HasBeenSet = true
			}
			break
		}
	}
	v := &listValue{dst: f.dst}
	for _, n := range f.names {
		set.Var(v, n, f.Usage)
	}
	return nil
}

// listValue is a listFlag's value in the flag set.
type listValue struct {
	dst   *[]string
	given bool // on the command line: the variable's values are gone
}

func (v *listValue) Set(s string) error {
	if !v.given {
		*v.dst, v.given = nil, true
	}
	for _, line := range strings.Split(s, "\n") {
		*v.dst = append(*v.dst, strings.TrimSpace(line))
	}
	return nil
}

func (v *listValue) String() string {
	if v.dst == nil {
		return ""
	}
	return strings.Join(*v.dst, "\n")
}

type durationFlag struct {
	*cli.DurationFlag
	names []string
}

func (f *durationFlag) Names() []string { return f.names }
func (f *durationFlag) Apply(set *flag.FlagSet) error {
	return blankIsUnset(&f.EnvVars, func() error { return f.DurationFlag.Apply(set) })
}

type intFlag struct {
	*cli.IntFlag
	names []string
}

func (f *intFlag) Names() []string { return f.names }
func (f *intFlag) Apply(set *flag.FlagSet) error {
	return blankIsUnset(&f.EnvVars, func() error { return f.IntFlag.Apply(set) })
}

// countFlag is -v: a GenericFlag whose value counts. It takes no value,
// so help shows "--verbose, -v" rather than "--verbose value".
type countFlag struct {
	*cli.GenericFlag
	names []string
}

func (f *countFlag) Names() []string { return f.names }
func (f *countFlag) Apply(set *flag.FlagSet) error {
	return blankIsUnset(&f.EnvVars, func() error { return f.GenericFlag.Apply(set) })
}
func (f *countFlag) TakesValue() bool { return false }
func (f *countFlag) String() string   { return cli.FlagStringer(f) }

// The constructors bind each flag to dst, where its value goes; the value
// dst holds is the default help shows.

func boolean(dst *bool, name, env, usage string, aliases ...string) cli.Flag {
	f := &cli.BoolFlag{Name: name, Aliases: aliases, Usage: usage, Destination: dst, Value: *dst}
	if env != "" {
		f.EnvVars = []string{env}
	}
	return &boolFlag{f, names(name, aliases)}
}

func str(dst *string, name, env, usage string, aliases ...string) cli.Flag {
	f := &cli.StringFlag{Name: name, Aliases: aliases, Usage: usage, Destination: dst, Value: *dst}
	if env != "" {
		f.EnvVars = []string{env}
	}
	return &stringFlag{f, names(name, aliases)}
}

func dur(dst *time.Duration, name, env, usage string) cli.Flag {
	return &durationFlag{&cli.DurationFlag{Name: name, EnvVars: []string{env}, Usage: usage, Destination: dst, Value: *dst}, names(name, nil)}
}

func integer(dst *int, name, env, usage string) cli.Flag {
	return &intFlag{&cli.IntFlag{Name: name, EnvVars: []string{env}, Usage: usage, Destination: dst, Value: *dst}, names(name, nil)}
}

func list(dst *[]string, name, env, usage string, aliases ...string) cli.Flag {
	return &listFlag{&cli.StringSliceFlag{Name: name, Aliases: aliases, EnvVars: []string{env}, Usage: usage}, names(name, aliases), dst}
}

// names is a flag's name and aliases, as urfave/cli's FlagNames gives them
// for names without commas or spaces (none of vigil's has one).
func names(name string, aliases []string) []string {
	return append([]string{name}, aliases...)
}

// blankIsUnset runs apply with the flag's variables hidden if the first
// one set holds only white space, as urfave/cli reads the first one set.
func blankIsUnset(envVars *[]string, apply func() error) error {
	for _, e := range *envVars {
		if v, ok := syscall.Getenv(e); ok {
			if strings.TrimSpace(v) == "" {
				saved := *envVars
				*envVars = nil
				defer func() { *envVars = saved }()
			}
			break
		}
	}
	return apply()
}
