package pid1

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"vigil/internal/intake"
)

// The files as the kernel writes them (Documentation/admin-guide/cgroup-v2.rst,
// cgroup-v1/memory.rst).
const (
	v2Events   = "low 0\nhigh 0\nmax 31\noom 4\noom_kill 3\noom_group_kill 1\n"
	v1Control  = "oom_kill_disable 0\nunder_oom 0\noom_kill 7\n"
	v1OldKnl   = "oom_kill_disable 0\nunder_oom 0\n" // before Linux 4.13: no counter
	v2Controls = "cpuset cpu io memory hugetlb pids rdma misc\n"
)

// layout writes files (path relative to root: content) under a new root.
func layout(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestFindMemCgroup(t *testing.T) {
	pod := "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-abc.scope"
	tests := []struct {
		name       string
		files      map[string]string
		procCgroup string
		want       string // the counts file relative to root; "" for none
		v2, group  bool
	}{
		{"v2 with a cgroup namespace: the container's cgroup is the root",
			map[string]string{"cgroup.controllers": v2Controls, "memory.events": v2Events, "memory.oom.group": "1\n"},
			"0::/\n", "memory.events", true, true},
		{"v2 without a cgroup namespace: the host's path",
			map[string]string{pod + "/cgroup.controllers": v2Controls, pod + "/memory.events": v2Events, pod + "/memory.oom.group": "0\n"},
			"0::/" + pod + "\n", pod + "/memory.events", true, false},
		{"v2, the host's path but only the container's own cgroup mounted",
			map[string]string{"cgroup.controllers": v2Controls, "memory.events": v2Events, "memory.oom.group": "1\n"},
			"0::/" + pod + "\n", "memory.events", true, true},
		{"v2 without the memory controller: no memory.events",
			map[string]string{"cgroup.controllers": "cpu pids\n", "cgroup.procs": "1\n"},
			"0::/\n", "", false, false},
		{"v1 as Docker mounts it",
			map[string]string{"memory/memory.oom_control": v1Control, "pids/pids.max": "max\n"},
			"13:pids:/docker/abc\n4:memory:/docker/abc\n0::/system.slice/containerd.service\n", "memory/memory.oom_control", false, false},
		{"v1 with the host's hierarchy",
			map[string]string{"memory/docker/abc/memory.oom_control": v1Control},
			"4:memory:/docker/abc\n", "memory/docker/abc/memory.oom_control", false, false},
		{"hybrid: v1 memory wins over a v2 tree without it",
			map[string]string{"memory/memory.oom_control": v1Control, "unified/cgroup.controllers": ""},
			"4:memory:/\n0::/\n", "memory/memory.oom_control", false, false},
		{"a kernel without the counter",
			map[string]string{"memory/memory.oom_control": v1OldKnl},
			"4:memory:/\n", "", false, false},
		{"no cgroups at all", nil, "", "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := layout(t, tt.files)
			cg, ok := findMemCgroup(root, tt.procCgroup)
			if tt.want == "" {
				if ok {
					t.Fatalf("found %+v, want no memory cgroup", cg)
				}
				return
			}
			if !ok {
				t.Fatalf("no memory cgroup found, want %s", tt.want)
			}
			if got, _ := filepath.Rel(root, cg.counts); got != tt.want || cg.v2 != tt.v2 || cg.group != tt.group {
				t.Errorf("found %s (v2 %v, group %v), want %s (v2 %v, group %v)", got, cg.v2, cg.group, tt.want, tt.v2, tt.group)
			}
		})
	}
}

func TestParseOOMCounts(t *testing.T) {
	tests := []struct {
		in   string
		want oomCounts
		ok   bool
	}{
		{v2Events, oomCounts{kills: 3, groupKills: 1}, true},
		{v1Control, oomCounts{kills: 7}, true},
		{v1OldKnl, oomCounts{}, false},
		{"oom_kill 18446744073709551615", oomCounts{kills: 1<<64 - 1}, true}, // no final newline
		{"oom_kill x\noom 2\n", oomCounts{}, false},
		{"oom_kill 18446744073709551616\n", oomCounts{}, false}, // 2^64: overflow
		{"oom_kill -1\n", oomCounts{}, false},
		{"", oomCounts{}, false},
	}
	for _, tt := range tests {
		if got, ok := parseOOMCounts([]byte(tt.in)); got != tt.want || ok != tt.ok {
			t.Errorf("parseOOMCounts(%q) = %+v, %v; want %+v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// TestOOMWatchV2PostsOnModify lays out a v2 cgroup, watches it, and
// rewrites memory.events as the kernel does on a kill: the intake gets
// OOM, and a reading gives the new counters.
func TestOOMWatchV2PostsOnModify(t *testing.T) {
	root := layout(t, map[string]string{"cgroup.controllers": v2Controls, "memory.events": v2Events, "memory.oom.group": "1\n"})
	cg, ok := findMemCgroup(root, "0::/\n")
	if !ok {
		t.Fatal("no memory cgroup found")
	}
	w, err := startOOMWatch(cg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	if w.events == nil {
		t.Fatalf("no event source: %s", w.how)
	}
	if c, ok := w.read(); !ok || c.kills != 3 {
		t.Fatalf("first reading %+v, %v; want 3 kills", c, ok)
	}
	var p intake.Pending
	intake.Take(&p) // whatever earlier tests left
	f, err := os.OpenFile(cg.counts, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("low 0\nhigh 0\nmax 32\noom 5\noom_kill 4\noom_group_kill 1\n"), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	deadline := time.After(10 * time.Second)
	for !p.Has(intake.OOM) {
		select {
		case <-intake.Wake():
			intake.Take(&p)
		case <-deadline:
			t.Fatal("no OOM event within 10s of memory.events being modified")
		}
	}
	if c, ok := w.read(); !ok || c.kills != 4 {
		t.Errorf("reading after the event %+v, %v; want 4 kills", c, ok)
	}
}

// The loop parses the counter before every drain: no garbage.
func TestParseOOMCountsAllocatesNothing(t *testing.T) {
	b := []byte(v2Events)
	if n := testing.AllocsPerRun(100, func() { parseOOMCounts(b) }); n != 0 {
		t.Errorf("parseOOMCounts allocates %v times per call, want 0", n)
	}
}
