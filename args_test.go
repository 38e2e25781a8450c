package main

import (
	"context"
	"log/slog"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vigil/pid1"
)

// TestGetoptSplitsClustersAsTiniDoes: the rewriting alone, on tini's and
// dumb-init's spellings.
func TestGetoptSplitsClustersAsTiniDoes(t *testing.T) {
	table := valueTable(newCommandLine().flags())
	tests := []struct {
		in, want string // arguments separated by spaces
	}{
		{"-e143 cmd", "-e 143 cmd"},
		{"-pSIGKILL cmd", "-p SIGKILL cmd"},
		{"-sg cmd", "-s -g cmd"},
		{"-ge143 cmd", "-g -e 143 cmd"},
		{"-ge 143 cmd", "-g -e 143 cmd"},
		{"-vvv cmd", "-v -v -v cmd"},
		{"-sgvwe3 -e4 cmd", "-s -g -v -w -e 3 -e 4 cmd"},
		{"-r15:0 cmd", "-r 15:0 cmd"},
		{"-uapp:app cmd", "-u app:app cmd"},
		{"-e -1 cmd", "-e -1 cmd"},           // a value that looks like a flag
		{"-e -sg cmd", "-e -sg cmd"},         // is a value all the same
		{"-g cmd --x -sg", "-g cmd --x -sg"}, // the command's own flags
		{"-g -- -sg", "-g -- -sg"},           // -- ends the flags
		{"-s - -sg", "-s - -sg"},             // so does a lone -
		{"--grace 5s -sg cmd", "--grace 5s -s -g cmd"},
		{"--grace=5s -sg cmd", "--grace=5s -s -g cmd"},
		{"--on-exit -sg -g cmd", "--on-exit -sg -g cmd"},
		{"-grace 5s cmd", "-grace 5s cmd"}, // the flag package's single-dash long form
		{"-p=KILL cmd", "-p=KILL cmd"},
		{"-version", "-version"},
		{"-cV", "-c -V"},
		{"--no-such -sg cmd", "--no-such -s -g cmd"}, // urfave/cli names the unknown flag
		{"-e", "-e"}, // and the missing value
		{"-ge", "-g -e"},
	}
	for _, tt := range tests {
		got, err := getopt(strings.Fields(tt.in), table)
		if err != nil || strings.Join(got, " ") != tt.want {
			t.Errorf("getopt(%q) = %q, %v; want %q", tt.in, strings.Join(got, " "), err, tt.want)
		}
	}
	for _, bad := range []string{"-sx", "-gxe1", "-xyz", "-s\xff"} {
		_, err := getopt([]string{bad, "cmd"}, table)
		if err == nil || !strings.Contains(err.Error(), strings.ToValidUTF8(bad, "\ufffd")[:2]) {
			t.Errorf("getopt(%q): %v, want an error naming it", bad, err)
		}
	}
}

// TestShortOptionsAsTiniTakesThem runs whole command lines: what tini
// accepts gives the same configuration here.
func TestShortOptionsAsTiniTakesThem(t *testing.T) {
	tests := []struct {
		args  string
		check func(c *pid1.Config) bool
	}{
		{"-e143 true", func(c *pid1.Config) bool { return c.RemapExit[143] && len(c.RemapExit) == 1 }},
		{"-pSIGKILL true", func(c *pid1.Config) bool { return c.PdeathSig == unix.SIGKILL }},
		{"-sg true", func(c *pid1.Config) bool { return c.Subreaper == pid1.SubreaperOn && c.Group }},
		{"-ge143 true", func(c *pid1.Config) bool { return c.Group && c.RemapExit[143] }},
		{"-ge143 -e3 true", func(c *pid1.Config) bool { return c.Group && c.RemapExit[143] && c.RemapExit[3] }},
		{"-vvv true", func(c *pid1.Config) bool { return c.Log.Enabled(context.Background(), slog.LevelDebug-8) }},
		{"-vv true", func(c *pid1.Config) bool { return !c.Log.Enabled(context.Background(), slog.LevelDebug-8) }},
		{"-g cmd --x", func(c *pid1.Config) bool { return slices.Equal(c.Command, []string{"cmd", "--x"}) }},
		{"-g cmd -sg", func(c *pid1.Config) bool {
			return c.Subreaper == pid1.SubreaperAuto && slices.Equal(c.Command, []string{"cmd", "-sg"})
		}},
		{"-- -sg", func(c *pid1.Config) bool { return !c.Group && slices.Equal(c.Command, []string{"-sg"}) }},
		{"-P", func(c *pid1.Config) bool { return c.Pause && len(c.Command) == 0 }},
		{"-Pw --stop-signal HUP", func(c *pid1.Config) bool {
			return c.Pause && c.WarnOnReap && slices.Equal(c.StopSignals, []unix.Signal{unix.SIGHUP})
		}},
		{"-r15:0 -cw true", func(c *pid1.Config) bool {
			to, ok := c.Rewrite[unix.SIGTERM]
			return ok && to == 0 && !c.Group && c.WarnOnReap
		}},
	}
	for _, tt := range tests {
		cfg, status, stderr := parse(strings.Fields(tt.args))
		if cfg == nil || status != 0 {
			t.Errorf("%q: status %d, stderr %q", tt.args, status, stderr)
			continue
		}
		if !tt.check(cfg) {
			t.Errorf("%q: wrong configuration %+v", tt.args, *cfg)
		}
	}
	for _, bad := range []string{"-sx", "-gqe143", "-g-"} {
		cfg, status, stderr := parse([]string{bad, "true"})
		if cfg != nil || status != pid1.ExitUsage || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, bad) {
			t.Errorf("%q: status %d, stderr %q; want 2 and one line naming it", bad, status, stderr)
		}
	}
	if _, status, stderr := parse([]string{"-g", "-c", "true"}); status != pid1.ExitUsage || !strings.Contains(stderr, "--single-child") {
		t.Errorf("-g -c: status %d, stderr %q; want 2, a contradiction", status, stderr)
	}
}

// TestTiniVariables: what docker run --init users set for tini, with
// vigil's own flags and variables winning.
func TestTiniVariables(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		env   []string
		args  []string
		check func(c *pid1.Config) bool
	}{
		{"TINI_SUBREAPER", []string{"TINI_SUBREAPER=1"}, nil,
			func(c *pid1.Config) bool { return c.Subreaper == pid1.SubreaperOn }},
		{"TINI_SUBREAPER=0 is set, as in tini", []string{"TINI_SUBREAPER=0"}, nil,
			func(c *pid1.Config) bool { return c.Subreaper == pid1.SubreaperOn }},
		{"TINI_SUBREAPER empty is set, as in tini", []string{"TINI_SUBREAPER="}, nil,
			func(c *pid1.Config) bool { return c.Subreaper == pid1.SubreaperOn }},
		{"VIGIL_NO_SUBREAPER wins", []string{"TINI_SUBREAPER=1", "VIGIL_NO_SUBREAPER=true"}, nil,
			func(c *pid1.Config) bool { return c.Subreaper == pid1.SubreaperOff }},
		{"VIGIL_SUBREAPER=false wins", []string{"TINI_SUBREAPER=1", "VIGIL_SUBREAPER=false"}, nil,
			func(c *pid1.Config) bool { return c.Subreaper == pid1.SubreaperAuto }},
		{"--no-subreaper wins", []string{"TINI_SUBREAPER=1"}, []string{"--no-subreaper"},
			func(c *pid1.Config) bool { return c.Subreaper == pid1.SubreaperOff }},
		{"TINI_KILL_PROCESS_GROUP", []string{"TINI_KILL_PROCESS_GROUP=1"}, nil,
			func(c *pid1.Config) bool { return c.Group }},
		{"VIGIL_GROUP=false wins", []string{"TINI_KILL_PROCESS_GROUP=1", "VIGIL_GROUP=false"}, nil,
			func(c *pid1.Config) bool { return !c.Group }},
		{"-c wins", []string{"TINI_KILL_PROCESS_GROUP=1"}, []string{"-c"},
			func(c *pid1.Config) bool { return !c.Group }},
		{"TINI_KILL_PROCESS_GROUP empty is set, as in tini", []string{"TINI_KILL_PROCESS_GROUP="}, nil,
			func(c *pid1.Config) bool { return c.Group }},
		{"TINI_VERBOSITY empty is 0, as in tini", []string{"TINI_VERBOSITY="}, nil,
			func(c *pid1.Config) bool {
				return !c.Log.Enabled(ctx, slog.LevelWarn) && c.Log.Enabled(ctx, slog.LevelError)
			}},
		{"TINI_VERBOSITY from a YAML block scalar", []string{"TINI_VERBOSITY=3\n"}, nil,
			func(c *pid1.Config) bool {
				return !c.Log.Enabled(ctx, slog.LevelDebug-1) && c.Log.Enabled(ctx, slog.LevelDebug)
			}},
		{"TINI_VERBOSITY=-1 is tini's unsigned 4294967295: trace", []string{"TINI_VERBOSITY=-1"}, nil,
			func(c *pid1.Config) bool { return c.Log.Enabled(ctx, slog.LevelDebug-4) }},
		{"TINI_VERBOSITY=0: errors only", []string{"TINI_VERBOSITY=0"}, nil,
			func(c *pid1.Config) bool {
				return !c.Log.Enabled(ctx, slog.LevelWarn) && c.Log.Enabled(ctx, slog.LevelError)
			}},
		{"TINI_VERBOSITY=1: warnings", []string{"TINI_VERBOSITY=1"}, nil,
			func(c *pid1.Config) bool {
				return !c.Log.Enabled(ctx, slog.LevelInfo) && c.Log.Enabled(ctx, slog.LevelWarn)
			}},
		{"TINI_VERBOSITY=2: info", []string{"TINI_VERBOSITY=2"}, nil,
			func(c *pid1.Config) bool {
				return !c.Log.Enabled(ctx, slog.LevelDebug) && c.Log.Enabled(ctx, slog.LevelInfo)
			}},
		{"TINI_VERBOSITY=3: debug", []string{"TINI_VERBOSITY=3"}, nil,
			func(c *pid1.Config) bool {
				return !c.Log.Enabled(ctx, slog.LevelDebug-1) && c.Log.Enabled(ctx, slog.LevelDebug)
			}},
		{"TINI_VERBOSITY=4: trace", []string{"TINI_VERBOSITY=4"}, nil,
			func(c *pid1.Config) bool { return c.Log.Enabled(ctx, slog.LevelDebug-4) }},
		{"VIGIL_LOG_LEVEL wins", []string{"TINI_VERBOSITY=3", "VIGIL_LOG_LEVEL=error"}, nil,
			func(c *pid1.Config) bool { return !c.Log.Enabled(ctx, slog.LevelWarn) }},
		{"VIGIL_VERBOSE wins", []string{"TINI_VERBOSITY=0", "VIGIL_VERBOSE=1"}, nil,
			func(c *pid1.Config) bool { return c.Log.Enabled(ctx, slog.LevelDebug) }},
		{"-v wins", []string{"TINI_VERBOSITY=0"}, []string{"-v"},
			func(c *pid1.Config) bool { return c.Log.Enabled(ctx, slog.LevelDebug) }},
		{"empty VIGIL_LOG_LEVEL is unset", []string{"TINI_VERBOSITY=3", "VIGIL_LOG_LEVEL="}, nil,
			func(c *pid1.Config) bool { return c.Log.Enabled(ctx, slog.LevelDebug) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, kv := range tt.env {
				k, v, _ := strings.Cut(kv, "=")
				t.Setenv(k, v)
			}
			cfg, status, stderr := parse(append(tt.args, "true"))
			if cfg == nil || status != 0 {
				t.Fatalf("%v %q: status %d, stderr %q", tt.env, tt.args, status, stderr)
			}
			if !tt.check(cfg) {
				t.Errorf("%v %q: wrong configuration %+v", tt.env, tt.args, *cfg)
			}
		})
	}
}

// TestTiniAtoi: TINI_VERBOSITY is read as tini reads it, with glibc's
// atoi into an unsigned int; nothing is an error. The values are glibc's
// own answers (atoi through ctypes, cast to 32 bits).
func TestTiniAtoi(t *testing.T) {
	for v, want := range map[string]uint32{
		"1\n": 1, " 2": 2, "3abc": 3, "-1": 4294967295, "0x2": 0, "": 0, "abc": 0, "loud": 0,
		"\t\v\f\r 4": 4, "+3": 3, "-0": 0, "- 1": 0, "--1": 0, "\u00a01": 0, "\n\n2\n": 2,
		"00000000000000000000000000003": 3, "4294967296": 0, "4294967297": 1, "-4294967295": 1,
		"99999999999": 1215752191, "9223372036854775807": 4294967295, "9223372036854775808": 4294967295,
		"18446744073709551617": 4294967295, "-9223372036854775808": 0, "-9223372036854775809": 0,
	} {
		if got := tiniAtoi(v); got != want {
			t.Errorf("tiniAtoi(%q) = %d, want %d (glibc's atoi)", v, got, want)
		}
	}
}

// TestListsAsKubernetesWritesThem: a YAML block scalar (value: |) ends
// with a newline and may hold empty lines; an empty variable is unset.
func TestListsAsKubernetesWritesThem(t *testing.T) {
	const blockScalar = "echo first\n\necho 'second one'\n"
	tests := []struct {
		env, value string
		check      func(c *pid1.Config) bool
	}{
		{"VIGIL_ON_EXIT", blockScalar, func(c *pid1.Config) bool {
			return slices.EqualFunc(c.Hooks[pid1.OnExit], [][]string{{"echo", "first"}, {"echo", "second one"}}, slices.Equal)
		}},
		{"VIGIL_ON_FAILURE", "echo failed\n", func(c *pid1.Config) bool {
			return slices.EqualFunc(c.Hooks["failure"], [][]string{{"echo", "failed"}}, slices.Equal)
		}},
		{"VIGIL_ON_EXIT", "\n", func(c *pid1.Config) bool { return len(c.Hooks[pid1.OnExit]) == 0 }},
		{"VIGIL_ON_EXIT", "", func(c *pid1.Config) bool { return len(c.Hooks[pid1.OnExit]) == 0 }},
		{"VIGIL_WAIT_FOR", "file:/a\n\ntcp:db:5432\n", func(c *pid1.Config) bool {
			return len(c.WaitFor) == 2 && c.WaitFor[0].String() == "file:/a" && c.WaitFor[1].Kind == "tcp"
		}},
		{"VIGIL_WAIT_FOR", " \n \n", func(c *pid1.Config) bool { return len(c.WaitFor) == 0 }},
		{"VIGIL_STOP_ON", "tombstone:/shared/main.json\n", func(c *pid1.Config) bool {
			return len(c.StopOn) == 1 && c.StopOn[0].String() == "tombstone:/shared/main.json"
		}},
		{"VIGIL_STOP_ON", "", func(c *pid1.Config) bool { return len(c.StopOn) == 0 }},
		{"VIGIL_REMAP_EXIT", "143\n3\n", func(c *pid1.Config) bool { return c.RemapExit[143] && c.RemapExit[3] && len(c.RemapExit) == 2 }},
		{"VIGIL_REWRITE", "TERM:QUIT\n\n", func(c *pid1.Config) bool { return c.Rewrite[unix.SIGTERM] == unix.SIGQUIT }},
		{"VIGIL_STOP_SIGNAL", "INT\n", func(c *pid1.Config) bool { return slices.Equal(c.StopSignals, []unix.Signal{unix.SIGINT}) }},
		{"VIGIL_STOP_SIGNAL", "\n", func(c *pid1.Config) bool { return len(c.StopSignals) == 0 }},
		// Empty variables of every other kind are unset too.
		{"VIGIL_LOG_LEVEL", "", func(c *pid1.Config) bool { return c.Log.Enabled(context.Background(), slog.LevelInfo) }},
		{"VIGIL_LOG_FORMAT", "\n", func(c *pid1.Config) bool { return c.Log != nil }},
		{"VIGIL_TIMEOUT_SIGNAL", "", func(c *pid1.Config) bool { return c.TimeoutSignal == unix.SIGTERM }},
		{"VIGIL_GRACE", "\n", func(c *pid1.Config) bool { return c.Grace == 10*time.Second }},
		{"VIGIL_GROUP", "\n", func(c *pid1.Config) bool { return !c.Group }},
		{"VIGIL_CAPTURE_TAIL", " ", func(c *pid1.Config) bool { return c.CaptureTail == 0 }},
		{"VIGIL_VERBOSE", "\n", func(c *pid1.Config) bool { return !c.Log.Enabled(context.Background(), slog.LevelDebug) }},
	}
	for _, tt := range tests {
		t.Run(tt.env+"="+strings.ReplaceAll(tt.value, "\n", `\n`), func(t *testing.T) {
			t.Setenv(tt.env, tt.value)
			cfg, status, stderr := parse([]string{"true"})
			if cfg == nil || status != 0 {
				t.Fatalf("status %d, stderr %q", status, stderr)
			}
			if !tt.check(cfg) {
				t.Errorf("wrong configuration %+v", *cfg)
			}
		})
	}
	// An empty value given to a flag is still named as an error.
	if _, status, stderr := parse([]string{"--on-exit", "", "true"}); status != pid1.ExitUsage || !strings.Contains(stderr, `""`) {
		t.Errorf(`--on-exit "": status %d, stderr %q; want 2`, status, stderr)
	}
}

// dockerReads applies the rules dockerd's parseInitVersion uses for
// docker info and docker version (moby, daemon/info_unix.go): split at
// " - ", the second part must be "git." and a commit with no further dot.
// It returns the commit, or "" where dockerd logs "unknown output format".
func dockerReads(out string) string {
	parts := strings.Split(strings.TrimSpace(out), " - ")
	if len(parts) < 2 {
		return ""
	}
	git := strings.Split(strings.TrimSpace(parts[1]), ".")
	if len(git) != 2 || git[0] != "git" {
		return ""
	}
	return git[1]
}

func TestVersionLineIsWhatDockerParses(t *testing.T) {
	re := regexp.MustCompile(`^vigil version [^ ]+ - git\.([0-9a-f]{7}|unknown)$`)
	for _, tt := range []struct {
		bi     *debug.BuildInfo
		commit string
	}{
		{&debug.BuildInfo{Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "de40ad007797e0dcd8b7126f27bb87401d224240"}, {Key: "vcs.modified", Value: "true"}}}, "de40ad0"},
		{&debug.BuildInfo{}, "unknown"},
		{nil, "unknown"},
	} {
		line := versionLine(tt.bi)
		if !re.MatchString(line) || dockerReads(line+"\n") != tt.commit {
			t.Errorf("version line %q: docker reads commit %q, want %q", line, dockerReads(line), tt.commit)
		}
		// Debian's dockerd compares the commit with a prefix of
		// "library-import" as long as it, and slices without a check.
		if len(tt.commit) > len("library-import") {
			t.Errorf("commit %q is longer than dockerd's expected commit", tt.commit)
		}
	}
	// A commit given at build time (-X main.commit=...) comes first.
	defer func(c string) { commit = c }(commit)
	commit = "0123456789abcdef0123456789abcdef01234567"
	if got := versionLine(&debug.BuildInfo{Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "de40ad0"}}}); dockerReads(got) != "0123456" {
		t.Errorf("with -X main.commit: %q, want commit 0123456", got)
	}
	commit = "v1.2" // not a commit: better unknown than a broken line
	if got := versionLine(nil); dockerReads(got) != "unknown" {
		t.Errorf("with -X main.commit=v1.2: %q, want git.unknown", got)
	}
	commit = ""

	var out strings.Builder
	printVersion(&out, false)
	if strings.Count(out.String(), "\n") != 1 || dockerReads(out.String()) == "" {
		t.Errorf("--version printed %q, want one line docker parses", out.String())
	}
	out.Reset()
	printVersion(&out, true)
	if lines := strings.Split(out.String(), "\n"); dockerReads(lines[0]) == "" || !strings.HasPrefix(lines[1], "go: go1.") {
		t.Errorf("--version -v printed %q, want the version line, then build details", out.String())
	}
}

// TestVersionThroughTheCommandLine: --version, -V, and -v for details,
// in either order.
func TestVersionThroughTheCommandLine(t *testing.T) {
	for _, tt := range []struct {
		args  []string
		lines int // at least
		exact bool
	}{
		{[]string{"--version"}, 1, true},
		{[]string{"-V"}, 1, true},
		{[]string{"--version", "-v"}, 2, false},
		{[]string{"-v", "--version"}, 2, false},
		{[]string{"-vV"}, 2, false},
	} {
		var stdout, stderr strings.Builder
		status := run(append([]string{"vigil"}, tt.args...), &stdout, &stderr)
		n := strings.Count(stdout.String(), "\n")
		if status != 0 || stderr.String() != "" || n < tt.lines || (tt.exact && n != tt.lines) || dockerReads(strings.Split(stdout.String(), "\n")[0]) == "" {
			t.Errorf("%q: status %d, stdout %q, stderr %q; want %d line(s), the first in docker's form", tt.args, status, stdout.String(), stderr.String(), tt.lines)
		}
	}
}
