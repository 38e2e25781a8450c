package pid1

import (
	"os"
	"strconv"
)

// purpose is what a tombstone target is read for.
type purpose uint8

const (
	forWait  purpose = iota // --wait-for: hold the child back until it holds
	forProbe                // --probe: one answer now
	forStop                 // --stop-on: stop the child once it holds
)

// pathHolds is the one rule for a path target of --wait-for, --probe and
// --stop-on, and says why: file: holds when PATH exists (a stat, which
// opens nothing: a FIFO or a socket that exists holds, and cannot block the
// reader), tombstone: and ready: by tombstoneHolds. earlier is as there.
func pathHolds(t Target, p purpose, earlier string) (bool, string) {
	if t.Kind == "file" {
		if _, err := os.Stat(t.Path); err != nil {
			return false, err.Error()
		}
		return true, "exists"
	}
	ts, live, err := readTombstone(t.Path)
	if err != nil {
		return false, err.Error()
	}
	return tombstoneHolds(t.Kind, p, ts, live, earlier)
}

// tombstoneHolds is the one rule for a tombstone:/ready: target of
// --wait-for, --probe and --stop-on, and says why for the log and the
// probe's line. live is what the record's lock says of its writer; earlier
// is the run a --stop-on reader found already finished when it started
// ("" for none; see earlierRun), on which it never acts.
//
//   - --wait-for and --probe: tombstone: holds when the record says running
//     or ready, ready: when it says ready, and only while its vigil is not
//     known to be gone: a record a killed vigil left still says running.
//   - --stop-on: holds when the record says exited, or its vigil is gone,
//     and it is not of the earlier run: the end it waits for, unless it
//     was there, finished, before the reader started.
func tombstoneHolds(kind string, p purpose, ts Tombstone, live liveness, earlier string) (bool, string) {
	if ts.State == "" {
		return false, "not a tombstone: no state"
	}
	why := "state " + ts.State
	if ts.Status != "" {
		why += ", status " + strconv.Quote(ts.Status)
	}
	if earlier != "" && runOf(ts) == earlier {
		return false, why + ", of an earlier run (it had ended when this vigil started)"
	}
	switch live {
	case livenessLive:
		why += ", its vigil runs"
	case livenessGone:
		why += ", its vigil is gone"
	}
	switch {
	case p == forStop:
		// A vigil gone without writing exited (killed with its
		// container) has ended too; its last close wakes the watcher.
		return ts.State == "exited" || live == livenessGone, why
	case live == livenessGone:
		return false, why
	case kind == "ready":
		return ts.State == "ready", why
	}
	return ts.State == "running" || ts.State == "ready", why
}

// runOf names the run of vigil that wrote ts: its run id, or, for a record
// of a vigil that writes none, when its command started and ended.
func runOf(ts Tombstone) string {
	if ts.RunID != "" {
		return ts.RunID
	}
	ended := ""
	if ts.EndedAt != nil {
		ended = *ts.EndedAt
	}
	return "started " + ts.StartedAt + ", ended " + ended
}

// earlierRun is what a --stop-on reader makes of the record it finds when
// it starts: the run it names is an earlier one, never acted on, when its
// vigil is gone, or when it says exited and no lock tells (a record left
// on a volume by a run before this one). A record whose vigil still runs
// is of the current run, whatever it says.
func earlierRun(ts Tombstone, live liveness) string {
	switch {
	case ts.State == "":
		return ""
	case live == livenessGone, live == livenessUnknown && ts.State == "exited":
		return runOf(ts)
	}
	return ""
}
