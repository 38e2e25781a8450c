package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// --user as runc, gosu and su-exec do it (issue 11, section 5), with vigil
// as PID 1 reading a passwd and group of the test's own, the way it reads
// an image's.

func init() {
	helpers["pid1-as"] = pid1As
}

// pid1As is the PID 1 shim with two more steps, both inside the new mount
// namespace: it bind-mounts PASSWD and GROUP (unless "-") over /etc/passwd
// and /etc/group, and with UID:GID (unless "-") it becomes that user, with
// no supplementary groups and so no capabilities, before it execs vigil:
// ARGS are "pid1-as UID:GID PASSWD GROUP VIGIL VIGIL-ARGS...".
func pid1As(args []string) int {
	ids, passwd, group, argv := args[0], args[1], args[2], args[3:]
	fatal := func(what string, err error) int {
		fmt.Fprintf(os.Stderr, "pid1-as: %s: %v\n", what, err)
		return 98
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fatal("make / private", err)
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fatal("mount /proc", err)
	}
	for _, m := range [][2]string{{passwd, "/etc/passwd"}, {group, "/etc/group"}} {
		if m[0] == "-" {
			continue
		}
		if err := unix.Mount(m[0], m[1], "", unix.MS_BIND, ""); err != nil {
			return fatal("bind "+m[1], err)
		}
	}
	if ids != "-" {
		u, g, _ := strings.Cut(ids, ":")
		uid, gid := mustAtoi(u), mustAtoi(g)
		// Go applies these to every thread of the process.
		if err := syscall.Setgroups(nil); err != nil {
			return fatal("setgroups", err)
		}
		if err := syscall.Setresgid(gid, gid, gid); err != nil {
			return fatal("setresgid", err)
		}
		if err := syscall.Setresuid(uid, uid, uid); err != nil {
			return fatal("setresuid", err)
		}
	}
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "E2E_CGROUP_PROCS=") {
			env = append(env, kv)
		}
	}
	return fatal("exec "+argv[0], unix.Exec(argv[0], argv, env))
}

// userWorld is a directory any user may enter, holding a copy of vigil, the
// test binary and the passwd and group files the tests' vigil reads.
type userWorld struct {
	dir, vigil, bin, passwd, group string
}

const (
	worldPasswd = "root:x:0:0:root:/root:/bin/sh\napp:x:4000:4000:app:/home/app:/bin/sh\n"
	worldGroup  = "root:x:0:\napp:x:4000:\nextra:x:4100:app\nother:x:4200:\n"
)

func newUserWorld(t *testing.T) *userWorld {
	t.Helper()
	bin, dir := publicCopy(t)
	w := &userWorld{dir: dir, bin: bin, vigil: filepath.Join(dir, "vigil"),
		passwd: filepath.Join(dir, "passwd"), group: filepath.Join(dir, "group")}
	b, err := os.ReadFile(vigilBin)
	if err != nil {
		t.Fatal(err)
	}
	for path, content := range map[string][]byte{w.vigil: b, w.passwd: []byte(worldPasswd), w.group: []byte(worldGroup)} {
		if err := os.WriteFile(path, content, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// start runs the world's vigil as PID 1, as ids ("-" for root) and with
// env added, with the world's passwd and group as /etc/passwd and
// /etc/group.
func (w *userWorld) start(t *testing.T, ids string, env []string, args ...string) *run {
	t.Helper()
	needRoot(t)
	r := &run{t: t, stderr: &bytes.Buffer{}, stdout: &bytes.Buffer{}, done: make(chan struct{})}
	r.cmd = exec.Command(self, append([]string{"pid1-as", ids, w.passwd, w.group, w.vigil}, args...)...)
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWPID | unix.CLONE_NEWNS}
	r.cmd.Env = append(os.Environ(), "E2E_HELPER=1", "GODEBUG=containermaxprocs=0,updatemaxprocs=0")
	r.cmd.Env = append(r.cmd.Env, env...)
	r.cmd.Dir = w.dir
	r.cmd.Stdout, r.cmd.Stderr = r.stdout, r.stderr
	r.launch()
	return r
}

// ids reads what the ids helper reported, as "Key: value" pairs.
func readIDs(t *testing.T, path string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(waitFile(t, path, "HOME:", time.Second)), "\n") {
		k, v, _ := strings.Cut(line, ": ")
		got[k] = v
	}
	return got
}

func TestUserWithGroupGetsThatGroupOnly(t *testing.T) {
	w := newUserWorld(t)
	tests := []struct {
		user, uid, gid, groups string
	}{
		{"app", "4000", "4000", "4000 4100"},   // the user's groups from /etc/group
		{"app:other", "4000", "4200", "4200"},  // the named group only
		{"app:4000", "4000", "4000", "4000"},   // even the user's own group
		{"4000:extra", "4000", "4100", "4100"}, // by number
		{"4343", "4343", "0", "0"},             // unknown to passwd: group 0, as Docker
		{"4343:4344", "4343", "4344", "4344"},  // both numbers
	}
	for i, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			report := filepath.Join(w.dir, "ids"+strconv.Itoa(i))
			w.start(t, "-", nil, "-u", tt.user, "--", w.bin, "ids", report).expect(0)
			got := readIDs(t, report)
			want := map[string]string{
				"Uid": strings.Repeat(tt.uid+" ", 3) + tt.uid, "Gid": strings.Repeat(tt.gid+" ", 3) + tt.gid,
				"Groups": tt.groups,
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("-u %s: the child reports %s: %q, want %q\nall: %v", tt.user, k, got[k], v, got)
				}
			}
		})
	}
}

func TestUserCommandIsLookedUpWithTheUsersPermissions(t *testing.T) {
	w := newUserWorld(t)
	// Three directories on PATH each hold a "tool" (the test binary, so
	// that it runs the ids helper): the first cannot be searched by app,
	// the second's tool cannot be executed by app, the third is open.
	var dirs []string
	for _, d := range []struct {
		name          string
		dirMode, mode os.FileMode
	}{{"closed", 0o700, 0o755}, {"private", 0o755, 0o700}, {"open", 0o755, 0o755}} {
		dir := filepath.Join(w.dir, d.name)
		if err := os.Mkdir(dir, d.dirMode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, d.dirMode); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(w.bin)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "tool"), b, d.mode); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, dir)
	}
	path := "PATH=" + strings.Join(dirs, ":")

	report := filepath.Join(w.dir, "ids")
	r := w.start(t, "-", []string{path}, "-u", "app", "--", "tool", "ids", report)
	r.expect(0)
	if got := readIDs(t, report)["Uid"]; got != "4000 4000 4000 4000" {
		t.Errorf("tool ran as %q, want uid 4000\nstderr:\n%s", got, r.stderr)
	}
	// Root may run the first one, which is found first.
	rootReport := filepath.Join(w.dir, "ids-root")
	w.start(t, "-", []string{path}, "--", "tool", "ids", rootReport).expect(0)
	readIDs(t, rootReport)

	// Nothing app may run: 126, the directory named, nothing started.
	never := filepath.Join(w.dir, "never")
	denied := w.start(t, "-", []string{"PATH=" + dirs[0] + ":" + dirs[1]}, "-u", "app", "--", "tool", "ids", never)
	denied.expect(126)
	if msg := denied.stderr.String(); !strings.Contains(msg, "permission denied") || !strings.Contains(msg, "tool") {
		t.Errorf("vigil did not say the tool may not run\nstderr:\n%s", msg)
	}
	if _, err := os.Stat(never); !os.IsNotExist(err) {
		t.Errorf("the tool ran although app may run none")
	}
}

func TestUserSameAsAnUnprivilegedVigil(t *testing.T) {
	w := newUserWorld(t)
	// vigil runs as app without capabilities, as with docker run --user
	// app; -u names app again, as the image's entrypoint may.
	for _, spec := range []string{"app", "4000:4000", "app:app"} {
		t.Run(spec, func(t *testing.T) {
			report := filepath.Join(w.dir, "ids-"+strings.ReplaceAll(spec, ":", "-"))
			r := w.start(t, "4000:4000", nil, "-u", spec, "--", w.bin, "ids", report)
			r.expect(0)
			got := readIDs(t, report)
			if got["Uid"] != "4000 4000 4000 4000" || got["Gid"] != "4000 4000 4000 4000" || got["HOME"] != "/home/app" {
				t.Errorf("-u %s: the child reports %v\nstderr:\n%s", spec, got, r.stderr)
			}
		})
	}
	// Another user is beyond an unprivileged vigil: it says so, exits
	// 125 (vigil could not set itself up), and blames no command.
	never := filepath.Join(w.dir, "never")
	r := w.start(t, "4000:4000", nil, "-u", "root", "--", w.bin, "ids", never)
	r.expect(125)
	if msg := r.stderr.String(); !strings.Contains(msg, "CAP_SETUID") || strings.Contains(msg, "ids:") {
		t.Errorf("vigil did not say it lacks CAP_SETUID\nstderr:\n%s", msg)
	}
	if _, err := os.Stat(never); !os.IsNotExist(err) {
		t.Errorf("the command started")
	}
}

// TestUserLongLinesAsTheCLibraryReadsThem: a GECOS of 100 KiB before the
// user and a group of 20,000 members before the user's last group (lines
// the C library and setpriv --init-groups read whole) end neither file:
// vigil as PID 1 finds the user and every group, with setpriv's answer
// beside it. A line over 16 MiB is refused with one line, exit 2, nothing
// started.
func TestUserLongLinesAsTheCLibraryReadsThem(t *testing.T) {
	w := newUserWorld(t)
	passwd := "root:x:0:0:root:/root:/bin/sh\nlong:x:4001:4001:" + strings.Repeat("G", 100<<10) + ":/:/bin/sh\n" +
		"app:x:4000:4000:app:/home/app:/bin/sh\n"
	group := "root:x:0:\nbig:x:4300:" + strings.Repeat("someone,", 20000) + "app\nextra:x:4100:app\n"
	for path, text := range map[string]string{w.passwd: passwd, w.group: group} {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const want = "4000 4100 4300"
	if _, err := exec.LookPath("setpriv"); err == nil {
		script := `mount --bind "$1" /etc/passwd && mount --bind "$2" /etc/group && exec setpriv --reuid app --regid 4000 --init-groups id -G`
		out, err := exec.Command("unshare", "-m", "sh", "-c", script, "sh", w.passwd, w.group).CombinedOutput()
		if got := strings.Fields(string(out)); err != nil || strings.Join(sortedInts(t, got), " ") != want {
			t.Fatalf("setpriv --init-groups gives %q, %v; this test expects %s", out, err, want)
		}
	}
	report := filepath.Join(w.dir, "ids")
	r := w.start(t, "-", nil, "-u", "app", "--", w.bin, "ids", report)
	r.expect(0)
	if got := readIDs(t, report); got["Uid"] != "4000 4000 4000 4000" || got["Groups"] != want {
		t.Errorf("-u app: the child reports %v, want uid 4000 and groups %s (setpriv's)\nstderr:\n%s", got, want, r.stderr)
	}

	if err := os.WriteFile(w.group, []byte("root:x:0:\nhuge:x:4400:"+strings.Repeat("x", 16<<20)+"\nextra:x:4100:app\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	never := filepath.Join(w.dir, "never")
	r = w.start(t, "-", nil, "-u", "app", "--", w.bin, "ids", never)
	r.expect(2)
	if msg := r.stderr.String(); strings.Count(msg, "\n") != 1 || !strings.Contains(msg, "/etc/group: line 2 is longer than 16 MiB") {
		t.Errorf("a 16 MiB line: vigil said %q, want one line naming the file and the line", msg)
	}
	if _, err := os.Stat(never); !os.IsNotExist(err) {
		t.Errorf("the command started")
	}
}

func sortedInts(t *testing.T, s []string) []string {
	t.Helper()
	n := make([]int, len(s))
	for i, v := range s {
		n[i] = atoi(t, v)
	}
	slices.Sort(n)
	out := make([]string, len(n))
	for i, v := range n {
		out[i] = strconv.Itoa(v)
	}
	return out
}
