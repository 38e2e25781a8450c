package pid1

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// writeRecord writes a tombstone with state (and status, when not empty)
// to dir/name and returns its path.
func writeRecord(t *testing.T, dir, name, state, status string) string {
	t.Helper()
	rec := map[string]any{"name": "app", "state": state, "pid": 7, "started_at": "2025-01-01T00:00:00Z"}
	if status != "" {
		rec["status"] = status
	}
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// runProbe runs Probe with a bound, so that a probe that hangs fails the
// test instead of stopping it.
func runProbe(t *testing.T, target string) (int, string) {
	t.Helper()
	type result struct {
		code int
		out  string
	}
	done := make(chan result, 1)
	go func() {
		var b strings.Builder
		code := Probe(target, &b)
		done <- result{code, b.String()}
	}()
	select {
	case r := <-done:
		if strings.Count(r.out, "\n") != 1 || !strings.HasSuffix(r.out, "\n") {
			t.Errorf("Probe(%q) wrote %q, want exactly one line", target, r.out)
		}
		return r.code, r.out
	case <-time.After(10 * time.Second):
		t.Fatalf("Probe(%q) still running after 10s", target)
		return 0, ""
	}
}

func TestProbe(t *testing.T) {
	dir := t.TempDir()
	ready := writeRecord(t, dir, "ready.json", "ready", "serving 3 clients")
	running := writeRecord(t, dir, "running.json", "running", "")
	starting := writeRecord(t, dir, "starting.json", "starting", "")
	exited := writeRecord(t, dir, "exited.json", "exited", "")
	stopping := writeRecord(t, dir, "stopping.json", "stopping", "")

	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.json")
	if err := os.Symlink(ready, link); err != nil {
		t.Fatal(err)
	}
	// A link in the middle of the path is followed: only the record
	// itself must not be one.
	linkDir := filepath.Join(dir, "linkdir")
	if err := os.Symlink(dir, linkDir); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.json")
	padded := `{"state":"ready"}`
	if err := os.WriteFile(big, []byte(padded+strings.Repeat(" ", recordMax-len(padded)+1)), 0o644); err != nil {
		t.Fatal(err)
	}
	largest := filepath.Join(dir, "largest.json")
	if err := os.WriteFile(largest, []byte(padded+strings.Repeat(" ", recordMax-len(padded))), 0o644); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.json")
	if err := os.WriteFile(garbage, []byte("not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	stateless := filepath.Join(dir, "stateless.json")
	if err := os.WriteFile(stateless, []byte(`{"name":"x"}`), 0o644); err != nil {
		t.Fatal(err)
	}

	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	down, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downAddr := down.Addr().String()
	down.Close() // nothing listens there now

	for _, tc := range []struct {
		target string
		code   int
		says   string
	}{
		{"ready:" + ready, 0, `holds: state ready, status "serving 3 clients"`},
		{"ready:" + running, 1, "does not hold: state running"},
		{"ready:" + starting, 1, "state starting"},
		{"ready:" + exited, 1, "state exited"},
		{"ready:" + filepath.Join(dir, "missing.json"), 1, "no such file"},
		{"ready:" + filepath.Join(linkDir, "ready.json"), 0, "state ready"},
		{"ready:" + link, 1, "is a symlink"},
		{"ready:" + fifo, 1, "not a regular file"},
		{"ready:" + dir, 1, "not a regular file"},
		{"ready:/dev/null", 1, "not a regular file"},
		{"ready:" + big, 1, "larger than 65536 bytes"},
		{"ready:" + largest, 0, "state ready"},
		{"ready:" + garbage, 1, "not a tombstone"},
		{"ready:" + stateless, 1, "not a tombstone: no state"},

		{"tombstone:" + running, 0, "holds: state running"},
		{"tombstone:" + ready, 0, "holds: state ready"},
		{"tombstone:" + starting, 1, "does not hold: state starting"},
		{"tombstone:" + stopping, 1, "state stopping"},
		{"tombstone:" + exited, 1, "state exited"},
		{"tombstone:" + fifo, 1, "not a regular file"},
		{"tombstone:" + link, 1, "is a symlink"},
		{"tombstone:" + filepath.Join(dir, "missing.json"), 1, "no such file"},

		{"file:" + ready, 0, "holds: exists"},
		{"file:" + fifo, 0, "holds: exists"}, // stat opens nothing: no hang
		{"file:" + link, 0, "holds: exists"}, // as --wait-for file: does
		{"file:" + filepath.Join(dir, "missing"), 1, "no such file"},

		{"tcp:" + up.Addr().String(), 0, "holds: connected to " + up.Addr().String()},
		{"tcp:" + downAddr, 1, "connection refused"},
	} {
		code, out := runProbe(t, tc.target)
		if code != tc.code || !strings.Contains(out, tc.says) || !strings.HasPrefix(out, tc.target+": ") {
			t.Errorf("Probe(%q) = %d, %q; want %d and a line naming the target that says %q", tc.target, code, out, tc.code, tc.says)
		}
	}
}

func TestProbeBadUsage(t *testing.T) {
	for _, target := range []string{
		"", "ready", "ready:", "file:", "tombstone:", "tcp:", "bogus:/x", "http://example.com", "/run/app.json",
		"ready:/a\x00b", "tcp:localhost", "tcp:localhost:0", "tcp:localhost:http", "tcp:localhost:65536",
	} {
		code, out := runProbe(t, target)
		if code != ExitUsage || !strings.HasPrefix(out, "vigil: --probe: target ") {
			t.Errorf("Probe(%q) = %d, %q; want %d and a usage line", target, code, out, ExitUsage)
		}
	}
	// A target that holds a newline still gives one line.
	if code, out := runProbe(t, "bogus:a\nb"); code != ExitUsage || strings.Count(out, "\n") != 1 {
		t.Errorf(`Probe("bogus:a\nb") = %d, %q; want one usage line`, code, out)
	}
}

// TestProbeNeedsNoProc runs Probe where an image without a shell would:
// no /proc, an empty read-only /tmp, a read-only root. The test binary
// runs itself in a new mount namespace, takes those away, and probes.
func TestProbeNeedsNoProc(t *testing.T) {
	if dir := os.Getenv("VIGIL_PROBE_HELPER"); dir != "" {
		os.Exit(probeHelper(dir, strings.Split(os.Getenv("VIGIL_PROBE_TARGETS"), "\n")))
	}
	if os.Geteuid() != 0 {
		t.Skip("taking /proc away in a new mount namespace needs root")
	}
	dir := t.TempDir()
	writeRecord(t, dir, "ready.json", "ready", "")
	writeRecord(t, dir, "running.json", "running", "")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The helper sees dir at ./testdata (bound there in its namespace).
	targets := []string{
		"ready:testdata/ready.json", "ready:testdata/running.json", "tombstone:testdata/running.json",
		"file:testdata/ready.json", "tcp:" + ln.Addr().String(), "file:/proc/self/stat",
	}
	want := []int{0, 1, 0, 0, 0, 1}
	cmd := exec.Command(os.Args[0], "-test.run=^TestProbeNeedsNoProc$", "-test.v=false")
	cmd.Env = append(os.Environ(), "VIGIL_PROBE_HELPER="+dir, "VIGIL_PROBE_TARGETS="+strings.Join(targets, "\n"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v; stdout:\n%s\nstderr:\n%s", err, out, stderr.String())
	}
	got := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if code, line, ok := strings.Cut(sc.Text(), " "); ok && len(code) == 1 {
			got[strings.SplitN(line, ": ", 2)[0]] = code + " " + line
		}
	}
	for i, target := range targets {
		if r := got[target]; !strings.HasPrefix(r, strconv.Itoa(want[i])+" ") {
			t.Errorf("without /proc and /tmp, Probe(%q): %q, want exit %d; helper output:\n%s\nstderr:\n%s",
				target, r, want[i], out, stderr.String())
		}
	}
}

// probeHelper is TestProbeNeedsNoProc's other half, in its own mount
// namespace: it makes the file system what a distroless image with a
// read-only root gives, then prints "CODE LINE" for each target.
func probeHelper(dir string, targets []string) int {
	steps := []struct {
		what string
		do   func() error
	}{
		{"make mounts private", func() error { return unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "") }},
		{"bind the records", func() error { return unix.Mount(dir, "testdata", "", unix.MS_BIND, "") }},
		{"make the records read-only", func() error {
			return unix.Mount("", "testdata", "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, "")
		}},
		{"hide /tmp", func() error { return unix.Mount("tmpfs", "/tmp", "tmpfs", unix.MS_RDONLY, "size=4k") }},
		{"unmount /proc", func() error { return unix.Unmount("/proc", unix.MNT_DETACH) }},
		{"make / read-only", func() error {
			return unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, "")
		}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", s.what, err)
			return 1
		}
	}
	if _, err := os.Stat("/proc/self"); err == nil {
		fmt.Fprintln(os.Stderr, "/proc is still there")
		return 1
	}
	for _, p := range []string{"/tmp/x", "testdata/x", "/x"} {
		if err := os.WriteFile(p, nil, 0o644); err == nil {
			fmt.Fprintf(os.Stderr, "%s could be written\n", p)
			return 1
		}
	}
	for _, target := range targets {
		var b strings.Builder
		code := Probe(target, &b)
		fmt.Printf("%d %s", code, b.String())
	}
	return 0
}

func TestLocalhostIsTheLoopbackWithoutAResolver(t *testing.T) {
	for host, want := range map[string]bool{"localhost": true, "LocalHost": true, "localhost.": true,
		"127.0.0.1": false, "localhost.example": false, "": false} {
		if got := isLocalhost(host); got != want {
			t.Errorf("isLocalhost(%q) = %v, want %v", host, got, want)
		}
	}
	// Only ::1 listens: localhost still connects, as a resolver's answer
	// would have let it.
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	c, err := dialTCP("localhost:"+port, time.Second)
	if err != nil {
		t.Fatalf("dialTCP(localhost:%s) with only ::1 listening: %v", port, err)
	}
	c.Close()
}
