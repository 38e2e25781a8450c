package pid1

import (
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// quote writes w so that SplitWords reads it back as one word.
func quote(w string) string {
	return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
}

// FuzzSplitWords: a hook command line splits into at least one word or is
// refused; the words, quoted again, split back into the same words.
func FuzzSplitWords(f *testing.F) {
	for _, s := range []string{
		"echo hello", `notify --to "ops team" 'it'\''s down'`, `a\ b "c\"d" 'e\f' "\$HOME" \`,
		"'unterminated", `"also`, "", "  \t\n ", "a\\\nb", `""`, `''`, "x;y|z&&`w` $(v)",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words, err := SplitWords(s)
		if err != nil {
			if words != nil {
				t.Fatalf("SplitWords(%q) = %q with error %v", s, words, err)
			}
			return
		}
		if len(words) == 0 {
			t.Fatalf("SplitWords(%q) = no words and no error", s)
		}
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = quote(w)
		}
		again, err := SplitWords(strings.Join(quoted, " "))
		if err != nil || !reflect.DeepEqual(again, words) {
			t.Fatalf("SplitWords(%q) = %q, but quoted again it reads %q, %v", s, words, again, err)
		}
	})
}

// FuzzParseTarget: a --wait-for/--stop-on target is refused or is one of
// the three kinds with a usable path or address, and its String form reads
// back as the same target.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{
		"file:/run/ready", "tombstone:/shared/db.json", "tcp:db:5432", "tcp::80", "tcp:[::1]:443",
		"tcp:host:0", "tcp:host:65536", "tcp:host", "file:", "file:a/../b", "http://x", ":", "",
		"tcp:[fe80::1%eth0]:22", "file:/a\x00b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := ParseTarget(s)
		if err != nil {
			return
		}
		switch tg.Kind {
		case "file", "tombstone":
			if tg.Path == "" || tg.Path != filepath.Clean(tg.Path) || strings.IndexByte(tg.Path, 0) >= 0 {
				t.Fatalf("ParseTarget(%q) = path %q", s, tg.Path)
			}
		case "tcp":
			host, port, err := net.SplitHostPort(tg.Addr)
			n, perr := strconv.Atoi(port)
			if err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
				t.Fatalf("ParseTarget(%q) = address %q", s, tg.Addr)
			}
		default:
			t.Fatalf("ParseTarget(%q) = kind %q", s, tg.Kind)
		}
		again, err := ParseTarget(tg.String())
		if err != nil || again != tg {
			t.Fatalf("ParseTarget(%q) = %+v, but its String %q reads %+v, %v", s, tg, tg.String(), again, err)
		}
	})
}

// FuzzLookupUser fuzzes --user and the image's passwd and group files: a
// user is refused or resolved to a credential setuid and setgroups accept,
// with the primary group first among the supplementary ones.
func FuzzLookupUser(f *testing.F) {
	const passwd = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n# comment\nbad:x:n:0::/:\n"
	const group = "root:x:0:\napp:x:1000:\nwheel:x:10:app,root\nbad:x:zz:app\n"
	for _, s := range []struct{ spec, passwd, group string }{
		{"app", passwd, group}, {"app:wheel", passwd, group}, {"1000:10", passwd, group}, {"4242", "", ""},
		{"root", passwd, group}, {"nobody", passwd, group}, {"app:", passwd, group}, {":0", passwd, group},
		{"4294967295", passwd, group}, {"0:4294967295", passwd, group}, {"a:b:c", passwd, group},
		{"x", "x:x:1:2:3:4:5:6:7\n::::::\n", ":::\n" + strings.Repeat("x", 70000) + "\n"},
		{"app", "long:x:1:1:" + strings.Repeat("G", 70000) + ":/:\n \tapp:x: +1000:-0\n", "+g:x::app\n#c:x:7:app\n"},
	} {
		f.Add(s.spec, s.passwd, s.group)
	}
	dir := f.TempDir()
	pw, gr := filepath.Join(dir, "passwd"), filepath.Join(dir, "group")
	f.Fuzz(func(t *testing.T, spec, passwdText, groupText string) {
		if err := os.WriteFile(pw, []byte(passwdText), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(gr, []byte(groupText), 0o644); err != nil {
			t.Fatal(err)
		}
		cred, home, err := lookupUser(spec, pw, gr)
		if err != nil {
			if cred != nil || home != "" {
				t.Fatalf("lookupUser(%q) = %+v, %q with error %v", spec, cred, home, err)
			}
			if !strings.Contains(err.Error(), strconv.Quote(spec)) {
				t.Fatalf("lookupUser(%q): error %q does not name the spec", spec, err)
			}
			return
		}
		if cred == nil || cred.Uid == 1<<32-1 || cred.Gid == 1<<32-1 {
			t.Fatalf("lookupUser(%q) = %+v", spec, cred)
		}
		if len(cred.Groups) == 0 || cred.Groups[0] != cred.Gid {
			t.Fatalf("lookupUser(%q) = groups %v, want %d first", spec, cred.Groups, cred.Gid)
		}
		for _, g := range cred.Groups {
			if g == 1<<32-1 {
				t.Fatalf("lookupUser(%q) = group (gid_t)-1", spec)
			}
		}
	})
}
