package pid1

import (
	"cmp"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMayExec is the permission rule, on plain values: which class of
// bits applies, and root's bypass.
func TestMayExec(t *testing.T) {
	const dir, file = unix.S_IFDIR, unix.S_IFREG
	app := identity{uid: 1000, gid: 1000, groups: []uint32{1000, 2000}}
	root := identity{uid: 0, gid: 0}
	tests := []struct {
		name     string
		mode     uint32
		uid, gid uint32
		id       identity
		want     bool
	}{
		{"others may", file | 0o755, 0, 0, app, true},
		{"others may not", file | 0o750, 0, 0, app, false},
		{"owner bits for the owner", file | 0o700, 1000, 0, app, true},
		{"owner denied though others may", file | 0o017, 1000, 0, app, false},
		{"primary group", file | 0o710, 0, 1000, app, true},
		{"supplementary group", file | 0o710, 0, 2000, app, true},
		{"group denied though others may", file | 0o701, 0, 2000, app, false},
		{"group of someone else", file | 0o710, 0, 3000, app, false},
		{"directory: search is x", dir | 0o711, 0, 0, app, true},
		{"directory without x", dir | 0o700, 0, 0, app, false},
		{"root: any x bit", file | 0o001, 1000, 1000, root, true},
		{"root: file with no x bit", file | 0o666, 0, 0, root, false},
		{"root: any directory", dir, 1000, 1000, root, true}, // mode 0000
	}
	for _, tt := range tests {
		if got := mayExec(tt.mode, tt.uid, tt.gid, tt.id); got != tt.want {
			t.Errorf("%s: mayExec(%o, uid %d, gid %d, %+v) = %v, want %v", tt.name, tt.mode, tt.uid, tt.gid, tt.id, got, tt.want)
		}
	}
}

func TestParents(t *testing.T) {
	for in, want := range map[string][]string{
		"/usr/bin/env": {"/", "/usr", "/usr/bin"},
		"/x":           {"/"},
		"bin/x":        {".", "bin"},
		"/a//b/x":      {"/", "/a", "/a//b"},
	} {
		if got := parents(in); !reflect.DeepEqual(got, want) {
			t.Errorf("parents(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestLookPathAsTheUser: the PATH search skips what the child's user
// cannot reach or run. It needs no root: permissions are decided from
// stat, for a user who is not the files' owner.
func TestLookPathAsTheUser(t *testing.T) {
	base := t.TempDir()
	for _, d := range []string{base, filepath.Dir(base)} { // t.TempDir makes both 0700
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mk := func(dir string, dirMode os.FileMode, fileMode os.FileMode) string {
		d := filepath.Join(base, dir)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "tool"), []byte("#!/bin/sh\n"), fileMode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, dirMode); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(d, 0o755) })
		return d
	}
	closed := mk("closed", 0o700, 0o755)   // the user cannot search it
	private := mk("private", 0o755, 0o700) // the user cannot run the file
	open := mk("open", 0o755, 0o755)
	other := identity{uid: uint32(os.Getuid()) + 4242, gid: uint32(os.Getgid()) + 4242}
	other.groups = []uint32{other.gid}
	path := func(dirs ...string) []string { return []string{"PATH=" + strings.Join(dirs, ":")} }

	got, err := lookPath("tool", path(closed, private, open), &other)
	if err != nil || got != open+"/tool" {
		t.Errorf("lookPath as another user = %q, %v; want %s/tool", got, err, open)
	}
	var e *Error
	if _, err := lookPath("tool", path(closed, private), &other); !errors.As(err, &e) || e.Code != ExitCannotExec {
		t.Errorf("nothing the user may run: %v, want exit %d", err, ExitCannotExec)
	}
	if _, err := lookPath("no-such-tool", path(closed, open), &other); !errors.As(err, &e) || e.Code != ExitNotFound {
		t.Errorf("missing everywhere: %v, want exit %d", err, ExitNotFound)
	}
	if err := checkExecutable(closed+"/tool", closed+"/tool", &other); !errors.As(err, &e) || e.Code != ExitCannotExec ||
		!strings.Contains(err.Error(), "cannot search "+closed) {
		t.Errorf("a path through a closed directory: %v, want exit %d naming the directory", err, ExitCannotExec)
	}
	// A symbolic link in an open directory to a file in a closed one.
	link := filepath.Join(open, "link")
	if err := os.Symlink(closed+"/tool", link); err != nil {
		t.Fatal(err)
	}
	if err := checkExecutable("link", link, &other); !errors.As(err, &e) || e.Code != ExitCannotExec {
		t.Errorf("a link into a closed directory: %v, want exit %d", err, ExitCannotExec)
	}
	// The files' owner may use every one of them.
	owner := identity{uid: uint32(os.Getuid()), gid: uint32(os.Getgid())}
	if owner.uid == 0 {
		owner.uid, owner.gid = 4242, 4242
		chownAll(t, base, 4242)
	}
	if got, err := lookPath("tool", path(closed, open), &owner); err != nil || got != closed+"/tool" {
		t.Errorf("lookPath as the owner = %q, %v; want %s/tool", got, err, closed)
	}
}

func chownAll(t *testing.T, dir string, id int) {
	t.Helper()
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, id, id)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestChildCredential: what --user changes, for a privileged and an
// unprivileged vigil.
func TestChildCredential(t *testing.T) {
	root := identity{uid: 0, gid: 0, groups: []uint32{0}, setuid: true, setgid: true}
	app := identity{uid: 1000, gid: 1000, groups: []uint32{1000, 2000}}
	cred := func(uid, gid uint32, groups ...uint32) *syscall.Credential {
		return &syscall.Credential{Uid: uid, Gid: gid, Groups: groups}
	}
	tests := []struct {
		name    string
		want    *syscall.Credential
		cur     identity
		got     *syscall.Credential
		wantErr string
	}{
		{"no --user", nil, root, nil, ""},
		{"root becomes app", cred(1000, 1000, 1000, 2000), root, cred(1000, 1000, 1000, 2000), ""},
		{"root stays root", cred(0, 0, 0), root, nil, ""},
		{"app as itself: nothing to change", cred(1000, 1000, 2000, 1000), app, nil, ""},
		{"app as itself, other groups: keeps its own", cred(1000, 1000, 1000), app,
			&syscall.Credential{Uid: 1000, Gid: 1000, Groups: []uint32{1000}, NoSetGroups: true}, ""},
		{"app cannot become root", cred(0, 0, 0), app, nil, "CAP_SETUID"},
		{"app cannot change group", cred(1000, 3000, 3000), app, nil, "CAP_SETGID"},
	}
	for _, tt := range tests {
		got, err := childCredential(tt.want, tt.cur)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error %v, want one naming %s", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.got) {
			t.Errorf("%s: childCredential = %+v, %v; want %+v", tt.name, got, err, tt.got)
		}
	}
}

// TestSpawnAsItselfWithoutPrivileges starts a real process the way an
// unprivileged vigil does with -u naming its own user: it must run, not
// fail on setgroups and be reported as a command that cannot execute.
func TestSpawnAsItselfWithoutPrivileges(t *testing.T) {
	cur, err := currentIdentity()
	if err != nil {
		t.Fatal(err)
	}
	if cur.setgid {
		t.Skip("vigil would hold CAP_SETGID here, so setgroups succeeds anyway; the e2e test drops it")
	}
	p := &proc{argv: []string{"true"}, env: os.Environ(), files: []uintptr{0, 1, 2}}
	p.attr.Credential = &syscall.Credential{Uid: cur.uid, Gid: cur.gid, Groups: []uint32{cur.gid, 4242}}
	pid, err := spawn(p)
	if err != nil {
		t.Fatalf("spawn as itself: %v", err)
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil || ws.ExitStatus() != 0 {
		t.Errorf("true ended with %v, %v", ws, err)
	}
}

// cLibraryPasswd and cLibraryGroup hold what real files hold and what the
// C library reads in its own way: lines over 64 KiB (a long GECOS, a big
// group), comments, blank lines, leading white space, NIS entries, short
// and long lines, odd numbers, a "\r", a NUL byte, duplicates.
var (
	cLibraryPasswd = "root:x:0:0:root:/root:/bin/sh\n" +
		"#app:x:5:5::/nope:/bin/sh\n" +
		"  \n\n" +
		" lead:x:1001:1001::/home/lead:/bin/sh\n" +
		"\t  #hidden:x:1040:1::/:\n" +
		"four:x:1002:1002\n" +
		"three:x:1021\n" +
		"+nis:x:1003:1003::/home/nis:/bin/sh\n" +
		"-neg:x:1004:1004::/home/neg:/bin/sh\n" +
		"sp:x: 1005:+1005::/home/sp:/bin/sh\n" +
		"trail:x:1006 :1006::/:\n" +
		"neg1:x:-1:1007::/:\n" +
		"m0:x:-0:1::/m0:\n" +
		"wrap:x:-18446744073709551615:1::/wrap:\n" +
		"huge:x:99999999999:1008::/:\n" +
		"hex:x:0x10:1::/:\n" +
		"emptyuid:x::1::/:\n" +
		"long:x:1009:1009:" + strings.Repeat("G", 100000) + ":/home/long:/bin/sh\n" +
		"cr:x:1010:1010::/home/cr:/bin/sh\r\n" +
		"extra:x:1011:1011::/home/extra:/bin/sh:more:fields\n" +
		"nul:x:1050:1::/home/\x00hidden:/bin/sh\n" +
		"dupe:x:1030:1::/first:\n" +
		"dupe:x:1031:1::/second:\n" +
		"app:x:1000:1000::/home/app:/bin/sh\n" +
		"last:x:1060:1060::/home/last:/bin/sh" // no newline at the end
	cLibraryGroup = "root:x:0:\n" +
		"big:x:2000:" + strings.Repeat("someone,", 20000) + "app,long\n" +
		"#com:x:2001:app\n" +
		" ws:x:2002:app,lead\n" +
		"+nisg:x:2003:app\n" +
		"-negg:x:2004:app\n" +
		"+nis0:x::app\n" +
		"three:x:2005\n" +
		"sp:x:2006: app , four,,cr\n" +
		"colon:x:2007:app:extra\n" +
		"dup:x:2000:app\n" +
		"gidsp:x: 2008:app,m0\n" +
		"cr:x:2009:app\r\n" +
		"neg:x:-1:app\n" +
		"hugeg:x:99999999999:app\n" +
		"\v\f#d:x:2011:app,last\n" +
		"g7:x:2012:,,app,,\n" +
		"g8:x:2013:app ,\n" +
		"g10:x:2014:zz\x00,app\n" +
		"emptyg:x::app\n" +
		"last:x:2010:app,wrap,dupe"
)

// TestLookupUserAsTheCLibrary reads the same passwd and group files with
// lookupUser and with glibc (getent passwd, group and initgroups, id) in a
// mount namespace where they
// are /etc/passwd and /etc/group: the same users are found, with the same
// uid, gid, home and supplementary groups, and the same groups by name.
func TestLookupUserAsTheCLibrary(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to bind-mount the files over /etc/passwd and /etc/group in a mount namespace (CI runs as root)")
	}
	for _, tool := range []string{"unshare", "getent", "id"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is missing: %v", tool, err)
		}
	}
	users := []string{"root", "app", "lead", "four", "three", "sp", "trail", "neg1", "m0", "wrap", "huge", "hex",
		"emptyuid", "long", "cr", "extra", "nul", "dupe", "last", "hidden", "#hidden", "+nis", "nis", "-neg", "neg", "nobody"}
	groups := []string{"big", "com", "#com", "ws", " ws", "+nisg", "nisg", "three", "sp", "colon", "dup", "gidsp", "cr",
		"neg", "hugeg", "g7", "g10", "emptyg", "last", "d"}
	dir := t.TempDir()
	passwd, group, nss := filepath.Join(dir, "passwd"), filepath.Join(dir, "group"), filepath.Join(dir, "nsswitch.conf")
	for path, text := range map[string]string{passwd: cLibraryPasswd, group: cLibraryGroup, nss: "passwd: files\ngroup: files\n"} {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	script := `set -e
mount --make-rprivate /
mount --bind "$1" /etc/passwd; mount --bind "$2" /etc/group; mount --bind "$3" /etc/nsswitch.conf
shift 3
while [ "$1" != -- ]; do
	if uid=$(id -u -- "$1" 2>/dev/null); then
		# getent cannot print an entry with a colon in a field: '?'.
		e=$(getent passwd -- "$1" 2>/dev/null) && [ -n "$e" ] && home=$(printf %s "$e" | cut -d: -f6) || home='?'
		printf 'U|%s|%s|%s|%s|%s\n' "$1" "$uid" "$(id -g -- "$1")" "$(getent initgroups -- "$1" | cut -c22-)" "$home"
	else
		printf 'U|%s|-\n' "$1"
	fi
	shift
done
shift
for g; do
	if e=$(getent group -- "$g" 2>/dev/null); then printf 'G|%s|%s\n' "$g" "$(printf %s "${e:-?}" | cut -d: -f3)"; else printf 'G|%s|-\n' "$g"; fi
done`
	args := append([]string{"-m", "sh", "-c", script, "sh", passwd, group, nss}, users...)
	out, err := exec.Command("unshare", append(append(args, "--"), groups...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("glibc's view: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "|")
		switch {
		case f[0] == "U" && len(f) == 3: // glibc finds no such user
			if cred, _, err := lookupUser(f[1], passwd, group); err == nil {
				t.Errorf("user %q: glibc finds none, lookupUser gives %+v", f[1], cred)
			}
		case f[0] == "U" && len(f) == 6:
			cred, home, err := lookupUser(f[1], passwd, group)
			if err != nil {
				t.Errorf("user %q: glibc finds uid %s gid %s, lookupUser: %v", f[1], f[2], f[3], err)
				continue
			}
			// initgroups: the primary group, then every group that lists
			// the user (getent initgroups lists the latter).
			want := map[string]bool{f[3]: true}
			for _, g := range strings.Fields(f[4]) {
				want[g] = true
			}
			got := map[string]bool{}
			for _, g := range cred.Groups {
				got[strconv.Itoa(int(g))] = true
			}
			if strconv.Itoa(int(cred.Uid)) != f[2] || strconv.Itoa(int(cred.Gid)) != f[3] || !maps.Equal(got, want) {
				t.Errorf("user %q: lookupUser gives uid %d gid %d groups %v; glibc: uid %s gid %s groups %s",
					f[1], cred.Uid, cred.Gid, cred.Groups, f[2], f[3], f[4])
			}
			if wantHome := cmp.Or(f[5], "/"); f[5] != "?" && home != wantHome {
				t.Errorf("user %q: home %q, glibc's %q", f[1], home, wantHome)
			}
		case f[0] == "G" && len(f) == 3:
			gid, err := lookupGroup(f[1], group)
			switch {
			case f[2] == "-" && err == nil:
				t.Errorf("group %q: glibc finds none, lookupGroup gives %d", f[1], gid)
			case f[2] != "-" && f[2] != "?" && (err != nil || strconv.Itoa(int(gid)) != f[2]):
				t.Errorf("group %q: lookupGroup gives %d, %v; glibc: %s", f[1], gid, err, f[2])
			}
		default:
			t.Fatalf("unexpected line %q from glibc's side", line)
		}
	}
}

// TestLookupUserIsBounded: whatever the files hold, lookupUser holds one
// line at a time. A line of maxLine bytes is read; one byte more is an
// error naming the file and the line; an 8 GiB file of one line (sparse)
// is refused after maxLine, and 64 MiB of short lines before the user
// cost no more memory than one of them.
func TestLookupUserIsBounded(t *testing.T) {
	dir := t.TempDir()
	passwd, group := filepath.Join(dir, "passwd"), filepath.Join(dir, "group")
	write := func(path, text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(passwd, "app:x:1000:1000::/home/app:/bin/sh\n")
	prefix := "big:x:2000:"
	write(group, prefix+strings.Repeat("x", maxLine-len(prefix)-len(",app"))+",app\nwheel:x:10:app\n")
	if cred, _, err := lookupUser("app", passwd, group); err != nil || !slices.Equal(cred.Groups, []uint32{1000, 2000, 10}) {
		t.Errorf("a line of maxLine bytes: %+v, %v; want groups 1000 2000 10", cred, err)
	}
	write(group, "root:x:0:\n"+prefix+strings.Repeat("x", maxLine-len(prefix)+1)+"\nwheel:x:10:app\n")
	if _, _, err := lookupUser("app", passwd, group); err == nil || !strings.Contains(err.Error(), group+": line 2 is longer than 16 MiB") {
		t.Errorf("a line of maxLine+1 bytes: %v, want an error naming %s, line 2", err, group)
	}

	// 8 GiB of NUL bytes and no newline, without the disk space.
	sparse := filepath.Join(dir, "sparse")
	f, err := os.Create(sparse)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(8 << 30); err != nil {
		t.Skipf("no sparse file here: %v", err)
	}
	f.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, _, err := lookupUser("app", sparse, group); err == nil || !strings.Contains(err.Error(), "line 1 is longer") {
		t.Errorf("an 8 GiB line: %v, want an error", err)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("an 8 GiB line: refused after %d MiB allocated in all", alloc>>20)
	if alloc > 4*maxLine {
		t.Errorf("an 8 GiB line: %d MiB allocated, want at most %d", alloc>>20, 4*maxLine>>20)
	}

	// 64 MiB of short lines, then the user.
	var b strings.Builder
	for b.Len() < 64<<20 {
		b.WriteString("someone:x:1:1:a user:/home/someone:/bin/sh\n")
	}
	b.WriteString("app:x:1000:1000::/home/app:/bin/sh\n")
	write(passwd, b.String())
	b.Reset()
	write(group, "wheel:x:10:app\n")
	runtime.ReadMemStats(&before)
	cred, home, err := lookupUser("app", passwd, group)
	runtime.ReadMemStats(&after)
	if err != nil || cred.Uid != 1000 || home != "/home/app" {
		t.Errorf("app after 64 MiB of lines: %+v, %q, %v", cred, home, err)
	}
	alloc = after.TotalAlloc - before.TotalAlloc
	t.Logf("64 MiB of short lines: %d KiB allocated", alloc>>10)
	if alloc > 1<<20 {
		t.Errorf("64 MiB of short lines: %d KiB allocated, want under 1 MiB", alloc>>10)
	}
}
