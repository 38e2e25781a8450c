package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestTestShGofmtKeepsARedirectedLog runs test.sh's gofmt line the way CI
// logs it, stderr into a file that already holds the log's head: the head
// stays, the unformatted file is named, the step fails; on formatted code
// it passes. (tee /dev/stderr opened the log again at offset 0, and the
// head became NUL bytes.)
func TestTestShGofmtKeepsARedirectedLog(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash:", err)
	}
	f, err := os.Open("test.sh")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var line string
	for sc := bufio.NewScanner(f); sc.Scan(); {
		if strings.HasPrefix(sc.Text(), "gofmt ") || strings.Contains(sc.Text(), "$(gofmt ") {
			line = sc.Text()
		}
	}
	if line == "" {
		t.Fatal("no gofmt line in test.sh")
	}
	for _, tt := range []struct {
		source string
		fails  bool
	}{{"package x\nfunc  f() {}\n", true}, {"package x\n\nfunc f() {}\n", false}} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "bad.go"), []byte(tt.source), 0o644); err != nil {
			t.Fatal(err)
		}
		log := filepath.Join(dir, "log")
		cmd := exec.Command("bash", "-c", "set -euo pipefail\necho 'head of the log'\n"+line+"\necho passed")
		cmd.Dir = dir
		out, err := os.Create(log)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = out, out
		err = cmd.Run()
		out.Close()
		got, _ := os.ReadFile(log)
		want := "head of the log\npassed\n"
		if tt.fails {
			want = "head of the log\nbad.go\n"
		}
		if (err != nil) != tt.fails || string(got) != want || bytes.IndexByte(got, 0) >= 0 {
			t.Errorf("%q in a directory holding %q: %v; the log holds %q, want %q", line, tt.source, err, got, want)
		}
	}
}
