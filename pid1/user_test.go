package pid1

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
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
