package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	// The test binary is also the bench's helper programs.
	if os.Getenv(helperEnv) != "" {
		os.Exit(runHelper(os.Args[1], os.Args[2:]))
	}
	os.Exit(m.Run())
}

// TestQuickRunMeasuresVigil runs the benchmark with tiny counts, so that it
// never rots: every measure must come out with a value for vigil and for
// goref, the Go reference, and the three outputs must be written.
func TestQuickRunMeasuresVigil(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for PID namespaces and mounting /proc (CI runs as root)")
	}
	if testing.Short() {
		t.Skip("builds vigil and runs every init: not in -short")
	}
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	args := []string{"-quick", "-out", out, "-startups", "5", "-idle", "2s", "-orphans", "2000", "-storms", "1", "-signals", "10", "-firstsignals", "2"}
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("bench exited %d\nstderr:\n%s", code, &stderr)
	}
	t.Logf("\n%s", &stdout)

	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res Results
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("results.json does not parse: %v\n%s", err, b)
	}
	vigil := res.program("vigil")
	for _, name := range []string{"vigil", "goref"} {
		p := res.program(name)
		if p == nil {
			t.Fatalf("no %s in results.json:\n%s", name, b)
		}
		for _, m := range measures {
			if _, ok := p.value(m.key); !ok {
				t.Errorf("no value for %s's %s (%s)\nstderr:\n%s", name, m.label, m.key, &stderr)
			}
		}
	}
	if !strings.Contains(stdout.String(), "Targets (issue 12)") {
		t.Errorf("no table of targets in the markdown:\n%s", &stdout)
	}
	if v := vigil.Values["left_after_storm"]; v != 0 {
		t.Errorf("%v processes left after the storm under vigil, want 0", v)
	}
	if !vigil.Binary.Static {
		t.Errorf("vigil's binary is not static")
	}
	for _, f := range []string{"results.md", "ratios.svg"} {
		if fi, err := os.Stat(filepath.Join(out, f)); err != nil || fi.Size() == 0 {
			t.Errorf("%s not written: %v", f, err)
		}
	}
}
