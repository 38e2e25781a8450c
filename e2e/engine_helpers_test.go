package e2e

import (
	"bufio"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The real container engines, Docker and podman, from Debian's packages,
// each started privately by the test: a dockerd (and its containerd) with
// its own data root, exec root and socket, a podman with its own root and
// run root, all under one short temporary directory that is removed at the
// end. Images are built FROM scratch out of a busybox-static rootfs, the
// vigil binary under test, tini-static for comparison and a static copy of
// this test binary for the helper programs: no registry is needed.

func init() {
	helpers["slow-stop"] = slowStop
}

// slowStop writes "ready" to FILE; on SIGTERM it writes "term", takes
// DURATION to shut down cleanly (a database flushing its buffers), writes
// "clean" and exits 0.
func slowStop(args []string) int {
	file := args[0]
	d, err := time.ParseDuration(args[1])
	if err != nil {
		panic(err)
	}
	c := make(chan os.Signal, 1)
	signal.Notify(c, unix.SIGTERM)
	writeFile(file, "ready")
	<-c
	t0 := time.Now()
	writeFile(file, "ready term")
	time.Sleep(d)
	writeFile(file, fmt.Sprintf("ready term clean after %s", time.Since(t0).Round(100*time.Millisecond)))
	return 0
}

// inCI reports whether the tests run in CI, where an engine that cannot
// start is a missing install step, not a reason to skip.
func inCI() bool { return os.Getenv("CI") == "true" }

// engineUnavailable ends a test whose engine cannot run here: it says so
// loudly in the output, then skips, or fails in CI.
func engineUnavailable(t *testing.T, engine, why string) {
	t.Helper()
	t.Logf("!!!!!!!! %s IS NOT AVAILABLE: the %s tests do not run !!!!!!!!", strings.ToUpper(engine), engine)
	if inCI() {
		t.Fatalf("%s must run in CI (CI=true): %s", engine, why)
	}
	t.Skipf("%s cannot run here: %s", engine, why)
}

// shortTempDir makes a temporary directory with a short path: the engines'
// unix sockets live under it, and a socket path has at most 107 bytes.
func shortTempDir(t *testing.T, prefix string) string {
	t.Helper()
	base := os.TempDir()
	if len(base) > 20 {
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, prefix)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// staticBinary reports why path cannot run alone in a scratch image, or ""
// if it can.
func staticBinary(path string) string {
	f, err := elf.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return path + " is dynamically linked"
		}
	}
	return ""
}

// imageContext is the build context every engine test shares, made once.
var imageContext struct {
	once sync.Once
	dir  string // the context: the image's root
	df   string // the directory holding the Dockerfiles
	tini bool   // tini-static is in the image, at /tini
	err  error
}

// engineImages returns the build context and the directory of Dockerfiles:
// Dockerfile.base (the rootfs, no entrypoint), Dockerfile.vigil
// (ENTRYPOINT ["/vigil", "--"]) and, with tini-static installed,
// Dockerfile.tini (ENTRYPOINT ["/tini", "--"]). The files live beside the
// vigil binary under test, which TestMain removes.
func engineImages(t *testing.T) (ctxDir, dfDir string, tini bool) {
	t.Helper()
	ic := &imageContext
	ic.once.Do(func() { ic.err = makeImageContext(t) })
	if ic.err != nil {
		t.Fatalf("making the image build context: %v", ic.err)
	}
	return ic.dir, ic.df, ic.tini
}

func makeImageContext(t *testing.T) error {
	ic := &imageContext
	busybox := findTool("busybox", "/bin/busybox")
	if busybox == "" {
		return errors.New("busybox is not installed (.ci/run installs the Debian package busybox-static)")
	}
	if why := staticBinary(busybox); why != "" {
		return fmt.Errorf("%s; install busybox-static", why)
	}
	base := filepath.Join(filepath.Dir(vigilBin), "engine-image")
	ic.dir, ic.df = filepath.Join(base, "root"), filepath.Join(base, "dockerfiles")
	if err := os.MkdirAll(ic.df, 0o755); err != nil {
		return err
	}
	// The same layout as the runc tests' rootfs: busybox and its applets,
	// /vigil, /etc/passwd, /shared.
	(&runcHost{t: t, busybox: busybox}).rootfs(ic.dir)
	// The helpers are this test binary; it must run with no libc.
	helper := filepath.Join(ic.dir, "e2e")
	if staticBinary(self) == "" {
		copyFile(t, self, helper)
	} else {
		t0 := time.Now()
		build := exec.Command("go", "test", "-c", "-trimpath", "-ldflags=-s -w", "-o", helper, ".")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("building a static copy of the e2e test binary: %v\n%s", err, out)
		}
		t.Logf("built a static copy of the e2e test binary for the images in %s", time.Since(t0).Round(time.Millisecond))
	}
	if tini := "/usr/bin/tini-static"; staticBinary(tini) == "" {
		copyFile(t, tini, filepath.Join(ic.dir, "tini"))
		ic.tini = true
	}
	files := map[string]string{
		"Dockerfile.base":  "FROM scratch\nCOPY . /\nENV E2E_HELPER=1\n",
		"Dockerfile.vigil": "FROM localhost/vigil-e2e:base\nENTRYPOINT [\"/vigil\", \"--\"]\n",
		"Dockerfile.tini":  "FROM localhost/vigil-e2e:base\nENTRYPOINT [\"/tini\", \"--\"]\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(ic.df, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// initCase is one init under comparison: its name and the image whose
// entrypoint it is.
type initCase struct{ name, image string }

// engine is one container engine, driven through its own command-line
// client as a user would.
type engine struct {
	name     string
	argv     []string // the client and its global flags
	env      []string // the client's environment
	runArgs  []string // flags every container gets
	initArgs []string // flags that make vigil the container's init (--init)
	inits    []initCase
	initDesc string      // how initArgs reads in the matrix
	daemon   *daemonProc // nil for podman, which has no daemon
	seq      atomic.Int64
}

// do runs the client with args, bounded by d, and returns its stdout, its
// stderr and an error that names the command.
func (e *engine) do(d time.Duration, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.argv[0], append(slices.Clone(e.argv[1:]), args...)...)
	cmd.Env = e.env
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s %s: no answer within %s", e.name, strings.Join(args, " "), d)
	} else if err != nil {
		err = fmt.Errorf("%s %s: %v\n%s", e.name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), stderr.String(), err
}

// must is do that fails the test on an error.
func (e *engine) must(t *testing.T, d time.Duration, args ...string) string {
	t.Helper()
	out, _, err := e.do(d, args...)
	if err != nil {
		t.Fatalf("%v%s", err, e.daemonTail())
	}
	return out
}

// daemonTail is the end of the daemon's log, for failure messages.
func (e *engine) daemonTail() string {
	if e.daemon == nil {
		return ""
	}
	return "\n" + e.name + " daemon log (tail):\n" + e.daemon.tail(30)
}

// buildImages builds localhost/vigil-e2e:base, :vigil and (with
// tini-static) :tini, and fills e.inits.
func (e *engine) buildImages(t *testing.T) {
	t.Helper()
	ctxDir, dfDir, tini := engineImages(t)
	t0 := time.Now()
	defer func() { t.Logf("%s built the images in %s", e.name, time.Since(t0).Round(time.Millisecond)) }()
	names := []string{"base", "vigil"}
	if tini {
		names = append(names, "tini")
	}
	for _, n := range names {
		e.must(t, 2*time.Minute, "build", "-q", "-t", "localhost/vigil-e2e:"+n, "-f", filepath.Join(dfDir, "Dockerfile."+n), ctxDir)
		if n != "base" {
			e.inits = append(e.inits, initCase{n, "localhost/vigil-e2e:" + n})
		}
	}
	if !tini {
		t.Logf("tini-static is not installed (Debian package tini): %s runs vigil alone, with no comparison", e.name)
	}
}

// ctr is one container, started detached.
type ctr struct {
	t    *testing.T
	e    *engine
	name string
	what string // the image and command, for messages
}

// start runs a container in the background: image with cmd, with the
// engine's flags for every container and opts; the test removes it at the
// end.
func (e *engine) start(t *testing.T, opts []string, image string, cmd ...string) *ctr {
	t.Helper()
	c := &ctr{t: t, e: e, name: fmt.Sprintf("vigil-e2e-%d-%d", os.Getpid(), e.seq.Add(1)),
		what: strings.Join(append([]string{image}, cmd...), " ")}
	args := append([]string{"run", "-d", "--name", c.name}, e.runArgs...)
	args = append(append(append(args, opts...), image), cmd...)
	e.must(t, time.Minute, args...)
	t.Cleanup(func() { e.do(time.Minute, "rm", "-f", c.name) })
	return c
}

// wait waits up to d for the container to end and returns its exit status.
func (c *ctr) wait(d time.Duration) int {
	c.t.Helper()
	out, _, err := c.e.do(d, "wait", c.name)
	if err != nil {
		c.t.Fatalf("%s: %v\n%s", c, err, c.logs())
	}
	n, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		c.t.Fatalf("%s wait %s printed %q, not an exit status", c.e.name, c.name, out)
	}
	return n
}

// output returns what the container wrote to its stdout and stderr, as the
// engine's logs command gives them.
func (c *ctr) output() (string, string) {
	c.t.Helper()
	stdout, stderr, err := c.e.do(time.Minute, "logs", c.name)
	if err != nil {
		c.t.Fatalf("%v", err)
	}
	return stdout, stderr
}

// logs is the container's output for a failure message.
func (c *ctr) logs() string {
	stdout, stderr, err := c.e.do(time.Minute, "logs", c.name)
	if err != nil {
		return fmt.Sprintf("(no logs: %v)", err)
	}
	return fmt.Sprintf("container stdout:\n%scontainer stderr (vigil's log goes here):\n%s", stdout, clipLog(stderr))
}

func (c *ctr) String() string { return fmt.Sprintf("%s container %s (%s)", c.e.name, c.name, c.what) }

// shared makes a host directory for a test's container to mount at
// /shared, and returns it and the -v option.
func shared(t *testing.T) (string, []string) {
	dir := t.TempDir()
	return dir, []string{"-v", dir + ":/shared"}
}

// matrix collects, for the note on the issue, what each init did in each
// case, and logs it as a table at the end of the engine's test.
type matrix struct {
	mu    sync.Mutex
	rows  []string
	cols  []string
	cells map[[2]string]string
}

func (m *matrix) set(row, col, v string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cells == nil {
		m.cells = map[[2]string]string{}
	}
	if !slices.Contains(m.rows, row) {
		m.rows = append(m.rows, row)
	}
	if !slices.Contains(m.cols, col) {
		m.cols = append(m.cols, col)
	}
	m.cells[[2]string{row, col}] = v
}

func (m *matrix) log(t *testing.T, title string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.rows) == 0 {
		return
	}
	// vigil first, the inits it is compared with after it; rows in a
	// stable order, whatever order the parallel cases ended in.
	slices.SortStableFunc(m.cols, func(a, b string) int {
		return strings.Compare(strconv.FormatBool(a != "vigil"), strconv.FormatBool(b != "vigil"))
	})
	slices.Sort(m.rows)
	var b strings.Builder
	fmt.Fprintf(&b, "%s matrix (as measured in this run):\n| case | %s |\n|---|%s\n", title,
		strings.Join(m.cols, " | "), strings.Repeat("---|", len(m.cols)))
	for _, r := range m.rows {
		fmt.Fprintf(&b, "| %s |", r)
		for _, c := range m.cols {
			v := m.cells[[2]string{r, c}]
			if v == "" {
				v = "-"
			}
			fmt.Fprintf(&b, " %s |", v)
		}
		b.WriteByte('\n')
	}
	t.Log(b.String())
}

// daemonProc is one daemon the test started, logging to a file.
type daemonProc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func startDaemon(name, logPath string, argv ...string) (*daemonProc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	p := &daemonProc{name: name, log: logPath, done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	// Its own process group: a Ctrl-C meant for go test must not reach the
	// daemons before the cleanup stops them in order.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the daemon has ended.
func (p *daemonProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, gives the daemon d to end, then kills it.
func (p *daemonProc) stop(d time.Duration) {
	if p.exited() {
		return
	}
	p.cmd.Process.Signal(unix.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(d):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// tail returns the last n lines of the daemon's log.
func (p *daemonProc) tail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitUntil polls ready until it is true, the daemon exits or d passes, and
// returns why not.
func (p *daemonProc) waitUntil(d time.Duration, ready func() bool) error {
	var ok bool
	poll(d, func() bool { ok = ready(); return ok || p.exited() })
	switch {
	case ok:
		return nil
	case p.exited():
		return fmt.Errorf("%s exited (%v) before it was ready; its log ends:\n%s", p.name, p.cmd.ProcessState, p.tail(20))
	}
	return fmt.Errorf("%s was not ready within %s; its log ends:\n%s", p.name, d, p.tail(20))
}

// listening reports whether something accepts connections on the unix
// socket.
func listening(sock string) bool {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// pings reports whether a Docker API server answers /_ping on sock.
func pings(sock string) bool {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	resp, err := client.Get("http://docker/_ping")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// hostLeftovers are paths outside the test's directory that the engines
// create whatever they are told: containerd's shim sockets
// (/run/containerd/s), dockerd's plugin socket directory, runc's and
// podman's caches. The test removes those that did not exist before it, once
// they hold nothing of anyone else's.
var hostLeftovers = []string{"/run/containerd", "/run/docker", "/run/runc", "/var/lib/containers", "/opt/containerd"}

// notThere returns the paths among hostLeftovers that do not exist yet.
func notThere() []string {
	var missing []string
	for _, p := range hostLeftovers {
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, p)
		}
	}
	return missing
}

// removeIfEmpty removes the directory tree at root if it holds no files,
// only empty directories (and podman's blob-info cache, which only its
// builds write).
func removeIfEmpty(root string) {
	os.Remove(filepath.Join(root, "cache", "blob-info-cache-v1.boltdb"))
	var dirs []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	slices.Reverse(dirs) // children first
	for _, d := range dirs {
		os.Remove(d) // fails, harmlessly, on anything not empty
	}
}

// unmountUnder detaches every mount point below dir, deepest first, so that
// removing dir cannot reach into a file system the engine left mounted.
func unmountUnder(t *testing.T, dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			points = append(points, fields[4])
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	for _, p := range points {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			t.Logf("unmounting %s: %v", p, err)
		}
	}
}

// killShims kills the containerd shims whose command line names the test's
// directory: they outlive containerd by design.
func killShims(dir string) {
	d, _ := os.ReadDir("/proc")
	for _, e := range d {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(b), "containerd-shim") && strings.Contains(string(b), dir) {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
}

// startDocker starts a containerd and a dockerd of the test's own, with
// vigil as the daemon's --init-path, and returns the engine that drives
// them; the test's cleanup stops both and removes everything. It skips
// (fails in CI) with the daemon's own error when they cannot start.
func startDocker(t *testing.T) *engine {
	t.Helper()
	if os.Geteuid() != 0 {
		// Not a missing install step: CI runs as root, so this never skips there.
		t.Skip("dockerd needs root (CI runs as root)")
	}
	dockerd, containerd := findTool("dockerd", "/usr/sbin/dockerd"), findTool("containerd", "/usr/bin/containerd")
	// The client of the same package: another docker on PATH (a newer
	// static client, say) would work too, but is not what we test with.
	client := findTool("/usr/bin/docker", "/usr/bin/docker")
	if dockerd == "" || containerd == "" || client == "" {
		engineUnavailable(t, "docker", fmt.Sprintf("dockerd=%q containerd=%q docker=%q: install the Debian package docker.io (.ci/run does)",
			dockerd, containerd, client))
	}
	created := notThere()
	t0 := time.Now()
	dir := shortTempDir(t, "vd")
	var ctd, dd *daemonProc
	e := &engine{name: "docker"}
	t.Cleanup(func() {
		if dd != nil && !dd.exited() {
			// Remove every container first: dockerd would otherwise give
			// each running one its stop timeout on the way out.
			if ids, _, err := e.do(time.Minute, "ps", "-aq"); err == nil && strings.TrimSpace(ids) != "" {
				e.do(time.Minute, append([]string{"rm", "-f", "-v"}, strings.Fields(ids)...)...)
			}
			dd.stop(30 * time.Second)
		}
		if ctd != nil {
			ctd.stop(15 * time.Second)
		}
		killShims(dir)
		unmountUnder(t, dir)
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("removing the docker test directory: %v", err)
		}
		for _, p := range created {
			removeIfEmpty(p)
		}
	})

	// containerd: everything under dir, the CRI plugin (Kubernetes') off.
	ctdSock := filepath.Join(dir, "ctd.sock")
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[ttrpc]
  address = %q
[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(dir, "ctd-root"), filepath.Join(dir, "ctd-state"), ctdSock, ctdSock+".ttrpc", filepath.Join(dir, "ctd-opt"))
	must(t, os.WriteFile(filepath.Join(dir, "containerd.toml"), []byte(cfg), 0o644))
	var err error
	if ctd, err = startDaemon("containerd", filepath.Join(dir, "containerd.log"), containerd, "--config", filepath.Join(dir, "containerd.toml")); err != nil {
		engineUnavailable(t, "docker", err.Error())
	}
	if err := ctd.waitUntil(30*time.Second, func() bool { return listening(ctdSock) }); err != nil {
		engineUnavailable(t, "docker", err.Error())
	}

	// dockerd: no network of its own (the containers run with --network
	// none), vfs storage (no overlay mounts needed), its key and state
	// under dir, vigil as the init for docker run --init.
	sock := filepath.Join(dir, "docker.sock")
	must(t, os.WriteFile(filepath.Join(dir, "daemon.json"),
		[]byte(fmt.Sprintf(`{"deprecated-key-path": %q}`, filepath.Join(dir, "key.json"))), 0o644))
	if dd, err = startDaemon("dockerd", filepath.Join(dir, "dockerd.log"), dockerd,
		"--config-file", filepath.Join(dir, "daemon.json"),
		"--containerd", ctdSock,
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"),
		"-H", "unix://"+sock,
		"--storage-driver=vfs", "--iptables=false", "--ip6tables=false", "--bridge=none", "--ip-masq=false",
		"--userland-proxy=false",
		"--init-path", vigilBin); err != nil {
		engineUnavailable(t, "docker", err.Error())
	}
	if err := dd.waitUntil(60*time.Second, func() bool { return pings(sock) }); err != nil {
		engineUnavailable(t, "docker", err.Error())
	}
	t.Logf("containerd and dockerd ready in %s", time.Since(t0).Round(time.Millisecond))
	e.daemon = dd
	e.argv = []string{client, "-H", "unix://" + sock}
	// The client's own configuration stays in dir too, and the classic
	// builder is what docker.io 20.10 uses without buildx.
	e.env = append(os.Environ(), "DOCKER_CONFIG="+filepath.Join(dir, "client"), "DOCKER_BUILDKIT=0")
	e.runArgs = []string{"--network", "none"}
	e.initArgs = []string{"--init"}
	e.initDesc = "docker run --init (dockerd --init-path vigil)"
	return e
}

// startPodman prepares a podman whose storage, state and runtime state are
// all under a temporary directory, and returns the engine that drives it.
func startPodman(t *testing.T) *engine {
	t.Helper()
	if os.Geteuid() != 0 {
		// Rootless podman needs subordinate ids set up for the user; CI
		// runs as root, so this never skips there.
		t.Skip("the podman tests run podman as root (CI runs as root)")
	}
	podman, runc := findTool("podman", "/usr/bin/podman"), findTool("runc", "/usr/sbin/runc")
	if podman == "" || runc == "" {
		engineUnavailable(t, "podman", fmt.Sprintf("podman=%q runc=%q: install the Debian package podman (.ci/run does)", podman, runc))
	}
	created := notThere()
	dir := shortTempDir(t, "vp")
	e := &engine{name: "podman"}
	t.Cleanup(func() {
		e.do(time.Minute, "rm", "-a", "-f")
		unmountUnder(t, dir)
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("removing the podman test directory: %v", err)
		}
		for _, p := range created {
			removeIfEmpty(p)
		}
	})
	e.argv = []string{podman,
		"--root", filepath.Join(dir, "root"),
		"--runroot", filepath.Join(dir, "run"),
		"--tmpdir", filepath.Join(dir, "tmp"),
		"--storage-driver", "vfs",
		"--cgroup-manager", "cgroupfs",
		"--events-backend", "file",
		"--network-config-dir", filepath.Join(dir, "net"),
		"--runtime", runc,
		// runc keeps its state in /run/runc unless told otherwise.
		"--runtime-flag", "root=" + filepath.Join(dir, "runc"),
	}
	e.env = os.Environ()
	// This VM cannot raise the limits to podman's defaults (runc fails with
	// "error setting rlimit type 7: operation not permitted"), so every
	// container gets limits it can set.
	e.runArgs = []string{"--network", "none", "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"}
	e.initArgs = []string{"--init", "--init-path", vigilBin}
	e.initDesc = "podman run --init --init-path vigil"
	if _, _, err := e.do(time.Minute, "info"); err != nil {
		engineUnavailable(t, "podman", err.Error())
	}
	return e
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
