package pid1

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vigil/reaper"
)

func TestSplitWords(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"echo hi", []string{"echo", "hi"}, false},
		{"  a\tb\nc  ", []string{"a", "b", "c"}, false},
		{`sh -c 'echo $X; exit 3'`, []string{"sh", "-c", "echo $X; exit 3"}, false},
		{`printf "%s\n" "a b"`, []string{"printf", `%s\n`, "a b"}, false},
		{`a\ b`, []string{"a b"}, false},
		{`"a\"b" 'c\d'`, []string{`a"b`, `c\d`}, false},
		{`''`, []string{""}, false},
		{`x""y`, []string{"xy"}, false},
		{"a \\\nb", []string{"a", "b"}, false},
		{`"unterminated`, nil, true},
		{`'unterminated`, nil, true},
		{`trailing\`, nil, true},
		{"", nil, true},
		{"   ", nil, true},
	}
	for _, tt := range tests {
		got, err := SplitWords(tt.in)
		if (err != nil) != tt.wantErr || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("SplitWords(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in      string
		want    Target
		wantErr bool
	}{
		{"file:/run/ready", Target{Kind: "file", Path: "/run/ready"}, false},
		{"tombstone:/shared/main.json", Target{Kind: "tombstone", Path: "/shared/main.json"}, false},
		{"tcp:db:5432", Target{Kind: "tcp", Addr: "db:5432"}, false},
		{"tcp::8080", Target{Kind: "tcp", Addr: "localhost:8080"}, false},
		{"tcp:[::1]:80", Target{Kind: "tcp", Addr: "[::1]:80"}, false},
		{"tcp:db", Target{}, true},
		{"tcp:db:0", Target{}, true},
		{"tcp:db:70000", Target{}, true},
		{"file:", Target{}, true},
		{"http://x", Target{}, true},
		{"/run/ready", Target{}, true},
	}
	for _, tt := range tests {
		got, err := ParseTarget(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseTarget(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestLookupUser(t *testing.T) {
	dir := t.TempDir()
	passwd := filepath.Join(dir, "passwd")
	group := filepath.Join(dir, "group")
	os.WriteFile(passwd, []byte("root:x:0:0:root:/root:/bin/sh\n# comment\napp:x:1000:1000::/home/app:/bin/sh\nbroken:x:abc:1\n"), 0o644)
	os.WriteFile(group, []byte("root:x:0:\napp:x:1000:\nwheel:x:10:app,other\naudio:x:29:other\n"), 0o644)
	tests := []struct {
		spec     string
		uid, gid uint32
		groups   []uint32
		home     string
		wantErr  bool
	}{
		{"app", 1000, 1000, []uint32{1000, 10}, "/home/app", false},
		{"1000", 1000, 1000, []uint32{1000, 10}, "/home/app", false},
		{"app:audio", 1000, 29, []uint32{29}, "/home/app", false}, // that group only, as runc, gosu and su-exec
		{"app:0", 1000, 0, []uint32{0}, "/home/app", false},
		{"4242", 4242, 0, []uint32{0}, "/", false},
		{"4242:4343", 4242, 4343, []uint32{4343}, "/", false},
		{"nobody-here", 0, 0, nil, "", true},
		{"app:nogroup", 0, 0, nil, "", true},
		{"app:", 0, 0, nil, "", true},
		{":1", 0, 0, nil, "", true},
		{"4294967295", 0, 0, nil, "", true},
	}
	for _, tt := range tests {
		cred, home, err := lookupUser(tt.spec, passwd, group)
		if (err != nil) != tt.wantErr {
			t.Errorf("lookupUser(%q) error %v, want error %v", tt.spec, err, tt.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		if cred.Uid != tt.uid || cred.Gid != tt.gid || !reflect.DeepEqual(cred.Groups, tt.groups) || home != tt.home {
			t.Errorf("lookupUser(%q) = uid %d gid %d groups %v home %q; want %d %d %v %q",
				tt.spec, cred.Uid, cred.Gid, cred.Groups, home, tt.uid, tt.gid, tt.groups, tt.home)
		}
	}
	// A scratch image has no passwd: numbers still work, names do not.
	if _, _, err := lookupUser("65534:65534", "/nonexistent/passwd", "/nonexistent/group"); err != nil {
		t.Errorf("numeric user without passwd: %v", err)
	}
	if _, _, err := lookupUser("app", "/nonexistent/passwd", "/nonexistent/group"); err == nil {
		t.Error("named user without passwd: no error")
	}
}

func TestOOMFiles(t *testing.T) {
	v1 := "12:pids:/\n4:memory:/kubepods/pod1/abc\n1:name=systemd:/\n"
	v2 := "0::/kubepods.slice/pod1\n"
	if got, want := oomFiles(v1), []string{
		"/sys/fs/cgroup/memory/kubepods/pod1/abc/memory.oom_control",
		"/sys/fs/cgroup/memory/memory.oom_control",
	}; !reflect.DeepEqual(got, want) {
		t.Errorf("v1: %q, want %q", got, want)
	}
	if got, want := oomFiles(v2), []string{
		"/sys/fs/cgroup/kubepods.slice/pod1/memory.events",
		"/sys/fs/cgroup/memory.events",
	}; !reflect.DeepEqual(got, want) {
		t.Errorf("v2: %q, want %q", got, want)
	}
	dir := t.TempDir()
	f := filepath.Join(dir, "memory.oom_control")
	os.WriteFile(f, []byte("oom_kill_disable 0\nunder_oom 0\noom_kill 7\n"), 0o644)
	if n, ok := readOOMKill(f); !ok || n != 7 {
		t.Errorf("readOOMKill = %d, %v; want 7, true", n, ok)
	}
	if _, ok := readOOMKill(filepath.Join(dir, "missing")); ok {
		t.Error("readOOMKill of a missing file says ok")
	}
}

func TestTailKeepsTheLastBytes(t *testing.T) {
	var all strings.Builder
	tl := &tail{ring: make([]byte, 10)}
	for _, chunk := range []string{"abc", "defghij", "k", "lmnopqrstuvwxyz0123", "45", "6789ABCDE"} {
		tl.keep([]byte(chunk))
		all.WriteString(chunk)
		s := all.String()
		want := s[max(0, len(s)-10):]
		if got := string(tl.last(10)); got != want {
			t.Fatalf("after %q: tail %q, want %q", chunk, got, want)
		}
		if got, want := string(tl.last(4)), want[max(0, len(want)-4):]; got != want {
			t.Fatalf("after %q: last 4 %q, want %q", chunk, got, want)
		}
	}
}

func TestSummaryFitsTheTerminationLog(t *testing.T) {
	r := &record{class: Fault, exit: reaper.Exit{Pid: 9, Signal: unix.SIGSEGV, CoreDumped: true},
		status: 139, command: []string{"/usr/bin/server", "-x"}, started: time.Now(), ended: time.Now(),
		tail: []byte(strings.Repeat("line of stderr\n", 1000) + "the last line\n")}
	s := summary(r)
	if len(s) > terminationLogMax {
		t.Errorf("summary is %d bytes, more than %d", len(s), terminationLogMax)
	}
	if !strings.HasPrefix(s, "server: fault, exit status 139 (SIGSEGV, core dumped)\nlast stderr:\nline of stderr\n") {
		t.Errorf("summary starts %q", s[:80])
	}
	if !strings.HasSuffix(s, "the last line\n") {
		t.Errorf("summary does not end with the last line of stderr")
	}
}

func TestStoreReplacesSymlink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("keep me"), 0o600)
	path := filepath.Join(dir, "tomb.json")
	if err := os.Symlink(victim, path); err != nil {
		t.Fatal(err)
	}
	st, err := openStore(path, 4096, func(bool) []byte { return []byte("{}\n") })
	if err != nil {
		t.Fatal(err)
	}
	st.close()
	if b, _ := os.ReadFile(victim); string(b) != "keep me" {
		t.Errorf("the symlink's target was written: %q", b)
	}
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Type() != 0 || fi.Mode().Perm() != 0o644 {
		t.Errorf("tombstone is %v (%v), want a regular 0644 file", fi.Mode(), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("directory holds %d entries, want 2 (no temporary file left)", len(entries))
	}
}
