package pid1

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestTombstoneHolds(t *testing.T) {
	rec := func(state, run string) Tombstone { return Tombstone{State: state, RunID: run, Locked: true} }
	tests := []struct {
		name    string
		kind    string
		p       purpose
		ts      Tombstone
		live    liveness
		earlier string
		want    bool
	}{
		{"wait: running, vigil runs", "tombstone", forWait, rec("running", "b"), livenessLive, "", true},
		{"wait: ready, vigil runs", "tombstone", forWait, rec("ready", "b"), livenessLive, "", true},
		{"wait: running, vigil gone", "tombstone", forWait, rec("running", "a"), livenessGone, "", false},
		{"wait: running, no lock to tell", "tombstone", forWait, rec("running", "a"), livenessUnknown, "", true},
		{"wait: starting", "tombstone", forWait, rec("starting", "b"), livenessLive, "", false},
		{"wait: exited", "tombstone", forWait, rec("exited", "b"), livenessGone, "", false},
		{"ready: ready, vigil runs", "ready", forWait, rec("ready", "b"), livenessLive, "", true},
		{"ready: ready, vigil gone", "ready", forWait, rec("ready", "a"), livenessGone, "", false},
		{"ready: running", "ready", forWait, rec("running", "b"), livenessLive, "", false},
		{"probe: ready, vigil gone", "ready", forProbe, rec("ready", "a"), livenessGone, "", false},
		{"probe: running, vigil runs", "tombstone", forProbe, rec("running", "b"), livenessLive, "", true},
		{"stop: exited, this run", "tombstone", forStop, rec("exited", "b"), livenessGone, "a", true},
		{"stop: exited, its vigil still finishing", "tombstone", forStop, rec("exited", "b"), livenessLive, "", true},
		{"stop: exited, the earlier run", "tombstone", forStop, rec("exited", "a"), livenessGone, "a", false},
		{"stop: running, vigil runs", "tombstone", forStop, rec("running", "b"), livenessLive, "a", false},
		{"stop: running, vigil gone since (killed)", "tombstone", forStop, rec("running", "b"), livenessGone, "a", true},
		{"stop: running, gone, the earlier run", "tombstone", forStop, rec("running", "a"), livenessGone, "a", false},
		{"stop: an old vigil's record, another run", "tombstone", forStop, Tombstone{State: "exited", StartedAt: "2"}, livenessUnknown, "started 1, ended ", true},
		{"no state", "tombstone", forWait, Tombstone{}, livenessLive, "", false},
	}
	for _, tt := range tests {
		if got, why := tombstoneHolds(tt.kind, tt.p, tt.ts, tt.live, tt.earlier); got != tt.want {
			t.Errorf("%s: holds = %v (%s), want %v", tt.name, got, why, tt.want)
		}
	}
}

func TestEarlierRun(t *testing.T) {
	tests := []struct {
		name string
		ts   Tombstone
		live liveness
		want string
	}{
		{"exited, vigil gone: earlier", Tombstone{State: "exited", RunID: "a"}, livenessGone, "a"},
		{"running, vigil gone: earlier", Tombstone{State: "running", RunID: "a"}, livenessGone, "a"},
		{"exited, no lock to tell: earlier", Tombstone{State: "exited", RunID: "a"}, livenessUnknown, "a"},
		{"exited, vigil still runs: this run", Tombstone{State: "exited", RunID: "a"}, livenessLive, ""},
		{"starting, vigil runs: this run", Tombstone{State: "starting", RunID: "a"}, livenessLive, ""},
		{"running, no lock to tell: as written", Tombstone{State: "running", RunID: "a"}, livenessUnknown, ""},
		{"not a tombstone", Tombstone{}, livenessGone, ""},
	}
	for _, tt := range tests {
		if got := earlierRun(tt.ts, tt.live); got != tt.want {
			t.Errorf("%s: earlierRun = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestPathHoldsTheSameForEveryPurpose: a file: target holds when its path
// exists, whatever it is (a FIFO is stat'ed, never opened), for
// --wait-for, --probe and --stop-on alike; a record that cannot be read
// holds for none of them.
func TestPathHoldsTheSameForEveryPurpose(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(dir, "junk")
	if err := os.WriteFile(junk, []byte("not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		t    Target
		want bool
	}{
		{Target{Kind: "file", Path: fifo}, true},
		{Target{Kind: "file", Path: filepath.Join(dir, "absent")}, false},
		{Target{Kind: "tombstone", Path: filepath.Join(dir, "absent")}, false},
		{Target{Kind: "tombstone", Path: junk}, false},
		{Target{Kind: "ready", Path: junk}, false},
	}
	for _, tt := range tests {
		for _, p := range []purpose{forWait, forProbe, forStop} {
			if got, why := pathHolds(tt.t, p, ""); got != tt.want || why == "" {
				t.Errorf("pathHolds(%v, purpose %d) = %v, %q; want %v and a reason", tt.t, p, got, why, tt.want)
			}
		}
	}
}
