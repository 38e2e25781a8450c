// Package cross builds vigil for every platform tini ships for, as the
// release and the Dockerfile build it (static, stripped, no cgo), checks
// that each binary is a static ELF executable of the right machine, and
// runs the arm64 one under qemu-user when it is installed.
//
// It lives under .ci/ so that `go test ./...` does not build seven
// binaries; test.sh runs it with `go test ./.ci/cross/`.
package cross

import (
	"bufio"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// target is one platform and what its binary must look like.
type target struct {
	goarch, goarm string
	machine       elf.Machine
	class         elf.Class
	data          elf.Data
}

func (tg target) name() string {
	if tg.goarm != "" {
		return tg.goarch + "v" + tg.goarm
	}
	return tg.goarch
}

var targets = []target{
	{"amd64", "", elf.EM_X86_64, elf.ELFCLASS64, elf.ELFDATA2LSB},
	{"arm64", "", elf.EM_AARCH64, elf.ELFCLASS64, elf.ELFDATA2LSB},
	{"arm", "7", elf.EM_ARM, elf.ELFCLASS32, elf.ELFDATA2LSB},
	{"386", "", elf.EM_386, elf.ELFCLASS32, elf.ELFDATA2LSB},
	{"ppc64le", "", elf.EM_PPC64, elf.ELFCLASS64, elf.ELFDATA2LSB},
	{"s390x", "", elf.EM_S390, elf.ELFCLASS64, elf.ELFDATA2MSB},
	{"riscv64", "", elf.EM_RISCV, elf.ELFCLASS64, elf.ELFDATA2LSB},
}

// The release build: what the Dockerfile and the README's install line use.
const (
	tags    = "urfave_cli_no_docs"
	ldflags = "-s -w"
)

// helperEnv makes the test binary a child for vigil under qemu: "exit3"
// exits 3, "usr1" says "ready" and exits 7 when SIGUSR1 arrives.
const helperEnv = "CROSS_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "exit3":
		os.Exit(3)
	case "usr1":
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGUSR1)
		fmt.Println("ready")
		select {
		case <-c:
			os.Exit(7)
		case <-time.After(time.Minute):
			fmt.Fprintln(os.Stderr, "helper: no SIGUSR1 within a minute")
			os.Exit(99)
		}
	default:
		fmt.Fprintf(os.Stderr, "helper: unknown %s=%q\n", helperEnv, os.Getenv(helperEnv))
		os.Exit(98)
	}
}

// build cross-compiles vigil from the repository's root into dir.
func build(t *testing.T, tg target, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "vigil-"+tg.name())
	cmd := exec.Command("go", "build", "-trimpath", "-tags", tags, "-ldflags", ldflags, "-o", bin, ".")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+tg.goarch, "GOARM="+tg.goarm)
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("GOARCH=%s GOARM=%s go build: %v\n%s", tg.goarch, tg.goarm, err, out)
	}
	t.Logf("built in %v", time.Since(start).Round(100*time.Millisecond))
	return bin
}

// checkELF says what is wrong with bin as a static, stripped executable of
// tg's machine, built as the release builds it.
func checkELF(bin string, tg target) error {
	f, err := elf.Open(bin)
	if err != nil {
		return err
	}
	defer f.Close()
	var errs []error
	if f.Machine != tg.machine || f.Class != tg.class || f.Data != tg.data {
		errs = append(errs, fmt.Errorf("ELF %v %v %v, want %v %v %v", f.Machine, f.Class, f.Data, tg.machine, tg.class, tg.data))
	}
	if f.Type != elf.ET_EXEC {
		errs = append(errs, fmt.Errorf("ELF type %v, want %v (a static executable)", f.Type, elf.ET_EXEC))
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			errs = append(errs, fmt.Errorf("has a %v program header: dynamically linked", p.Type))
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		errs = append(errs, fmt.Errorf("needs shared libraries %q", libs))
	}
	// -s drops the symbol table, -w the DWARF.
	for _, sec := range f.Sections {
		if sec.Name == ".symtab" || strings.HasPrefix(sec.Name, ".debug_") || strings.HasPrefix(sec.Name, ".zdebug_") {
			errs = append(errs, fmt.Errorf("has a %s section: not built with -ldflags=%q", sec.Name, ldflags))
		}
	}

	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("build information: %w", err))...)
	}
	// With -trimpath, go build does not record -ldflags: the sections
	// above tell instead.
	want := map[string]string{
		"GOOS": "linux", "GOARCH": tg.goarch, "CGO_ENABLED": "0",
		"-trimpath": "true", "-tags": tags,
	}
	if tg.goarm != "" {
		want["GOARM"] = tg.goarm
	}
	got := map[string]string{}
	for _, s := range info.Settings {
		got[s.Key] = s.Value
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if got[k] != want[k] {
			errs = append(errs, fmt.Errorf("built with %s=%q, want %q", k, got[k], want[k]))
		}
	}
	return errors.Join(errs...)
}

func TestCrossBuildsAreStaticELFOfEachMachine(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	sizes := map[string]int64{}
	t.Cleanup(func() { // after every parallel subtest
		var lines []string
		for _, tg := range targets {
			if n, ok := sizes[tg.name()]; ok {
				lines = append(lines, fmt.Sprintf("  linux/%-8s %9d bytes  %5.2f MiB", tg.name(), n, float64(n)/(1<<20)))
			}
		}
		t.Logf("sizes (-trimpath -tags %s -ldflags=%q):\n%s", tags, ldflags, strings.Join(lines, "\n"))
	})
	for _, tg := range targets {
		t.Run(tg.name(), func(t *testing.T) {
			// Two builds at a time (go test's -parallel is GOMAXPROCS): each
			// build is mostly one compile or link at a time.
			t.Parallel()
			bin := build(t, tg, dir)
			if err := checkELF(bin, tg); err != nil {
				t.Errorf("%s:\n%v", bin, err)
			}
			st, err := os.Stat(bin)
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			sizes[tg.name()] = st.Size()
			mu.Unlock()
		})
	}
}

// qemu finds qemu-user for arm64: Debian's qemu-user-static, or qemu-user.
func qemu(t *testing.T) string {
	for _, name := range []string{"qemu-aarch64-static", "qemu-aarch64"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const why = "neither qemu-aarch64-static nor qemu-aarch64 is installed (Debian: qemu-user-static or qemu-user)"
	if os.Getenv("CI") != "" {
		t.Fatal(why + "; .ci/run installs qemu-user")
	}
	t.Skip(why)
	return ""
}

// TestArm64UnderQemu runs the arm64 vigil under qemu-user: vigil is the
// arm64 binary, emulated; its child is this test binary, native. qemu-user
// without binfmt_misc cannot run an arm64 child (vigil's execve of one fails
// with "exec format error"), and registering binfmt_misc would change the
// kernel for every process of the machine, which a test must not do. What is
// tested is vigil's arm64 build: spawning, wait4 and the exit status,
// signal handling and kill(2), as the emulated binary does them.
func TestArm64UnderQemu(t *testing.T) {
	q := qemu(t)
	vigil := build(t, targets[1], t.TempDir())
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}

	start := func(ctx context.Context, helper string) (*exec.Cmd, *strings.Builder) {
		cmd := exec.CommandContext(ctx, q, vigil, "--", self)
		cmd.Env = append(os.Environ(), helperEnv+"="+helper)
		stderr := new(strings.Builder)
		cmd.Stderr = stderr
		cmd.WaitDelay = 5 * time.Second
		return cmd, stderr
	}

	t.Run("ExitStatusOfTheChild", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd, stderr := start(ctx, "exit3")
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 3 {
			t.Errorf("qemu-aarch64 vigil-arm64 -- helper exiting 3: got %v, want exit status 3\nstderr:\n%s", err, stderr)
		}
	})

	t.Run("USR1ReachesTheChild", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd, stderr := start(ctx, "usr1")
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// The helper says "ready" once its handler is in place: only then
		// can a signal forwarded by vigil be caught.
		line, err := bufio.NewReader(out).ReadString('\n')
		if line != "ready\n" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("helper's first line: %q (%v), want \"ready\"\nstderr:\n%s", line, err, stderr)
		}
		// qemu-user is one host process: the emulated vigil receives
		// what is sent to it.
		if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		err = cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 7 {
			t.Errorf("SIGUSR1 to vigil-arm64 under qemu: got %v, want exit status 7 (the helper caught the forwarded signal)\nstderr:\n%s", err, stderr)
		}
	})
}
