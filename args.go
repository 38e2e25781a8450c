package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// getopt rewrites the flags before the command the way getopt(3) reads
// short options, which is how tini reads its own: a value may be attached
// (-e143, -pSIGKILL) and options may be clustered (-sg, -ge143, -vvv).
// Go's flag package, under urfave/cli, reads "-e143" as a flag called
// e143, and urfave/cli's UseShortOptionHandling splits "-sg" but not
// "-ge143". So each cluster becomes separate flags, and a value attached
// to the last of them becomes the next argument.
//
// Like getopt and the flag package, it stops at the first argument that
// is not a flag, and after "--": everything from there belongs to the
// command. A single-dash argument that names a flag as a whole (-grace,
// -p=KILL, -version) is left to the flag package, which accepts it.
// takesValue maps each flag name, long and short, to whether it takes a
// value. A cluster with a letter that is no short flag is a usage error
// naming the argument.
func getopt(args []string, takesValue map[string]bool) ([]string, error) {
	out := make([]string, 0, len(args)+4)
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" || a == "-" || !strings.HasPrefix(a, "-") {
			break
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if takes, known := takesValue[name]; known || strings.HasPrefix(a, "--") {
			// A whole flag: if it takes a value and none is attached, the
			// next argument is that value, whatever it looks like.
			out = append(out, a)
			if known && takes && !hasValue && i+1 < len(args) {
				i++
				out = append(out, args[i])
			}
			continue
		}
		for j := 1; j < len(a); j++ {
			c := a[j : j+1]
			takes, known := takesValue[c]
			if !known && len(a) == 2 {
				return nil, usagef("unknown option %q", a)
			}
			if !known {
				return nil, usagef("unknown option -%s in %q (a cluster such as -sg or -ge143 holds short options only)", strings.ToValidUTF8(c, "?"), a)
			}
			out = append(out, "-"+c)
			if !takes {
				continue
			}
			if rest := a[j+1:]; rest != "" {
				out = append(out, rest)
			} else if i+1 < len(args) {
				i++
				out = append(out, args[i])
			}
			break
		}
	}
	return append(out, args[i:]...), nil
}

// valueTable lists every name of flags (and the help flag urfave/cli adds)
// with whether the flag takes a value.
func valueTable(flags []cli.Flag) map[string]bool {
	t := map[string]bool{}
	for _, f := range append(flags, cli.HelpFlag) {
		takes := true
		switch f := f.(type) {
		case *boolFlag, *countFlag, *cli.BoolFlag:
			takes = false
		case cli.DocGenerationFlag:
			takes = f.TakesValue()
		}
		for _, n := range f.Names() {
			t[n] = takes
		}
	}
	return t
}
