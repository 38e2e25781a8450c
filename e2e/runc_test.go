package e2e

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// vigil as PID 1 of real OCI containers run by runc, in a rootfs of
// busybox-static and the vigil binary that the test builds in a temporary
// directory. Containers share a host directory, mounted at /shared, for
// tombstones and reports, as the containers of a pod share an emptyDir.

// runcTools returns runc and a statically linked busybox, or skips.
func runcTools(t *testing.T) (runc, busybox string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("runc needs root (CI runs as root)")
	}
	runc = findTool("runc", "/usr/sbin/runc")
	if runc == "" {
		t.Skip("runc is not installed (CI installs the Debian package runc)")
	}
	busybox = findTool("busybox", "/bin/busybox")
	if busybox == "" {
		t.Skip("busybox is not installed (CI installs the Debian package busybox-static)")
	}
	f, err := elf.Open(busybox)
	if err != nil {
		t.Skipf("%s: %v", busybox, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Skipf("%s is dynamically linked and would not run alone in a rootfs; install busybox-static", busybox)
		}
	}
	return runc, busybox
}

func findTool(name, fallback string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if _, err := os.Stat(fallback); err == nil {
		return fallback
	}
	return ""
}

// runcHost is one runc state directory and the directory its containers
// share.
type runcHost struct {
	t       *testing.T
	runc    string
	busybox string
	root    string // runc --root
	shared  string // mounted at /shared in every container
}

func newRuncHost(t *testing.T) *runcHost {
	runc, busybox := runcTools(t)
	h := &runcHost{t: t, runc: runc, busybox: busybox, root: t.TempDir(), shared: t.TempDir()}
	// Children may run as another user (-u) and write their reports here.
	if err := os.Chmod(h.shared, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	return h
}

// applets are the busybox commands the containers use.
var applets = []string{"sh", "sleep", "grep", "tr"}

// rootfs builds a minimal image in dir: busybox and its applets in /bin,
// vigil at /vigil, an /etc/passwd and /etc/group with a user app.
func (h *runcHost) rootfs(dir string) {
	t := h.t
	for _, d := range []string{"bin", "proc", "dev", "sys", "tmp", "etc", "shared", "home/app"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The rootfs is / for users other than root too.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, h.busybox, filepath.Join(dir, "bin", "busybox"))
	copyFile(t, vigilBin, filepath.Join(dir, "vigil"))
	for _, a := range applets {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
		"etc/group":  "root:x:0:\napp:x:1000:\nextra:x:2000:app\nother:x:3000:root\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// copyFile hard-links src to dst when they share a file system, and copies
// it otherwise.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	if os.Link(src, dst) == nil {
		return
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// bundle writes an OCI bundle whose process is args: runc's default spec,
// with no terminal, the host's network, the shared directory at /shared,
// and the capabilities a container usually has (Docker's default set), so
// that vigil -u can change user.
func (h *runcHost) bundle(args []string) string {
	t := h.t
	dir := t.TempDir()
	h.rootfs(filepath.Join(dir, "rootfs"))
	spec := exec.Command(h.runc, "spec", "--rootless=false")
	spec.Dir = dir
	if out, err := spec.CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v\n%s", err, out)
	}
	path := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("runc spec wrote bad JSON: %v", err)
	}
	process := cfg["process"].(map[string]any)
	process["terminal"] = false
	process["args"] = args
	caps := []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
		"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
		"CAP_KILL", "CAP_AUDIT_WRITE"}
	process["capabilities"] = map[string]any{"bounding": caps, "effective": caps, "permitted": caps}
	linux := cfg["linux"].(map[string]any)
	var namespaces []any
	for _, ns := range linux["namespaces"].([]any) {
		if ns.(map[string]any)["type"] != "network" {
			namespaces = append(namespaces, ns)
		}
	}
	linux["namespaces"] = namespaces
	cfg["mounts"] = append(cfg["mounts"].([]any), map[string]any{
		"destination": "/shared", "type": "bind", "source": h.shared, "options": []string{"rbind", "rw"},
	})
	if b, err = json.MarshalIndent(cfg, "", "\t"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// container is one `runc run`.
type container struct {
	t      *testing.T
	id     string
	cmd    *exec.Cmd
	output *bytes.Buffer // runc's and the container's stdout and stderr
	done   chan struct{}
}

var containerSeq atomic.Int64

// run starts a container whose PID 1 runs args.
func (h *runcHost) run(name string, args ...string) *container {
	t := h.t
	c := &container{t: t, output: &bytes.Buffer{}, done: make(chan struct{}),
		id: fmt.Sprintf("vigil-e2e-%d-%d-%s", os.Getpid(), containerSeq.Add(1), name)}
	c.cmd = exec.Command(h.runc, "--root", h.root, "run", "--bundle", h.bundle(args), c.id)
	c.cmd.Stdout, c.cmd.Stderr = c.output, c.output
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("runc run: %v", err)
	}
	go func() {
		c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			c.cmd.Process.Kill()
		}
		exec.Command(h.runc, "--root", h.root, "delete", "-f", c.id).Run()
		<-c.done
	})
	return c
}

// expect waits for the container to end and checks its exit status, which
// runc takes from the container's PID 1: vigil.
func (c *container) expect(status int, d time.Duration) {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(d):
		c.t.Fatalf("container %s did not end within %s\noutput:\n%s", c.id, d, c.output)
	}
	ws := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() || ws.ExitStatus() != status {
		c.t.Fatalf("container %s ended with %v, want exit status %d\noutput:\n%s", c.id, c.cmd.ProcessState, status, c.output)
	}
}

// orphanScript double-forks orphans that vigil, as the container's PID 1,
// must reap; waits until none is left in any state; reports what it saw
// and who PID 1 is to /shared/report; and exits 3.
const orphanScript = `
i=0
while [ $i -lt 10 ]; do
	(sleep 0.1 &)
	(sh -c 'exit 7' &)
	i=$((i+1))
done
n=0
while :; do
	zombies=0 others=0
	for d in /proc/[0-9]*; do
		p=${d#/proc/}
		[ "$p" = 1 ] || [ "$p" = $$ ] && continue
		read -r stat < $d/stat 2>/dev/null || continue
		set -- $stat
		if [ "$3" = Z ]; then zombies=$((zombies+1)); else others=$((others+1)); fi
	done
	[ $zombies = 0 ] && [ $others = 0 ] && break
	n=$((n+1))
	[ $n -gt 1000 ] && break
	sleep 0.01
done
echo "zombies=$zombies others=$others pid1=$(tr '\0' ' ' < /proc/1/cmdline)" > /shared/report
exit 3
`

func TestRuncContainerExitsWithChildStatusAndReapsOrphans(t *testing.T) {
	h := newRuncHost(t)
	c := h.run("orphans", "/vigil", "--tombstone", "/shared/tomb.json", "--", "sh", "-c", orphanScript)
	c.expect(3, 30*time.Second)
	report := waitFile(t, filepath.Join(h.shared, "report"), "zombies=", time.Second)
	if !strings.HasPrefix(report, "zombies=0 others=0 pid1=/vigil --tombstone") {
		t.Errorf("inside the container, after its orphans ended: %q, want zombies=0 others=0 and /vigil as PID 1\noutput:\n%s",
			report, c.output)
	}
	readTombstone(t, filepath.Join(h.shared, "tomb.json")).check(t, map[string]any{
		"name": "sh", "state": "exited", "class": "failure", "exit_status": 3, "exit_code": 3})
}

func TestRuncContainerKilledChildGivesSignalStatus(t *testing.T) {
	h := newRuncHost(t)
	h.run("killed", "/vigil", "--", "sh", "-c", "kill -KILL $$").expect(137, 30*time.Second)
}

// TestRuncJobWithSidecar is the Kubernetes Job whose pod also runs a
// sidecar: the main container waits until the sidecar runs, does its work
// and exits 0; the sidecar's vigil sees the main tombstone say exited,
// stops its long-running child gracefully, and the pod can complete.
func TestRuncJobWithSidecar(t *testing.T) {
	h := newRuncHost(t)
	t0 := time.Now()
	main := h.run("main", "/vigil", "--name", "main", "--tombstone", "/shared/main.json",
		"--wait-for", "tombstone:/shared/sidecar.json", "--wait-timeout", "20s",
		"--", "sh", "-c", "echo working; sleep 0.3; exit 0")
	sidecar := h.run("sidecar", "/vigil", "--name", "sidecar", "--tombstone", "/shared/sidecar.json",
		"--stop-on", "tombstone:/shared/main.json", "--grace", "5s", "--restart", "on-failure",
		"--", "sleep", "1000")
	main.expect(0, 30*time.Second)
	sidecar.expect(0, 30*time.Second) // class stopped exits 0, though sleep died of SIGTERM
	if took := time.Since(t0); took > 5*time.Second {
		t.Errorf("the pod took %s to end; the sidecar's child should have ended on SIGTERM, well before its grace", took)
	}
	m := readTombstone(t, filepath.Join(h.shared, "main.json"))
	m.check(t, map[string]any{"name": "main", "state": "exited", "class": "success", "exit_status": 0})
	s := readTombstone(t, filepath.Join(h.shared, "sidecar.json"))
	s.check(t, map[string]any{"name": "sidecar", "state": "exited", "class": "stopped", "signal": "SIGTERM",
		"exit_code": nil, "exit_status": 0})
	if s.time(t, "ended_at").Before(m.time(t, "ended_at")) {
		t.Errorf("the sidecar ended at %s, before the main container at %s", s["ended_at"], m["ended_at"])
	}
	if m.time(t, "started_at").Before(s.time(t, "started_at")) {
		t.Errorf("the main container's child started at %s, before the sidecar ran at %s", m["started_at"], s["started_at"])
	}
}

func TestRuncRunAsUserFromTheImagesPasswd(t *testing.T) {
	h := newRuncHost(t)
	// The kernel lists supplementary groups sorted.
	tests := []struct {
		user, want string
	}{
		{"app", "Uid: 1000 1000 1000 1000\nGid: 1000 1000 1000 1000\nGroups: 1000 2000\nCapEff: 0000000000000000\nHOME: /home/app"},
		{"app:other", "Uid: 1000 1000 1000 1000\nGid: 3000 3000 3000 3000\nGroups: 3000\nCapEff: 0000000000000000\nHOME: /home/app"},
	}
	for i, tt := range tests {
		report := fmt.Sprintf("/shared/ids%d", i)
		c := h.run("user", "/vigil", "-u", tt.user, "--", "sh", "-c",
			`grep -E '^(Uid|Gid|Groups|CapEff):' /proc/self/status > `+report+`; echo "HOME: $HOME" >> `+report)
		c.expect(0, 30*time.Second)
		var lines []string
		for _, line := range strings.Split(strings.TrimSpace(waitFile(t, filepath.Join(h.shared, filepath.Base(report)), "HOME:", time.Second)), "\n") {
			lines = append(lines, strings.Join(strings.Fields(line), " "))
		}
		if got := strings.Join(lines, "\n"); got != tt.want {
			t.Errorf("-u %s: the child reports:\n%s\nwant:\n%s\noutput:\n%s", tt.user, got, tt.want, c.output)
		}
	}

	unknown := h.run("unknown-user", "/vigil", "-u", "nosuchuser", "--", "sh", "-c", "echo started > /shared/started")
	unknown.expect(2, 30*time.Second)
	if !strings.Contains(unknown.output.String(), `no user "nosuchuser" in /etc/passwd`) {
		t.Errorf("vigil did not say the user is unknown\noutput:\n%s", unknown.output)
	}
	if _, err := os.Stat(filepath.Join(h.shared, "started")); !os.IsNotExist(err) {
		t.Errorf("the command started although the user is unknown")
	}
}
