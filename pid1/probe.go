package pid1

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// What --probe exits with besides ExitUsage.
const (
	probeHolds = 0
	probeFails = 1
)

// probeReadMax bounds what a probe reads of a record: a tombstone is a
// few hundred bytes, and a probe that a file can make read without end
// is a probe that can hang.
const probeReadMax = 64 << 10

// probeDialTimeout bounds the one connection a tcp: probe makes; a
// Kubernetes exec probe's own default timeout is one second.
const probeDialTimeout = time.Second

// Probe evaluates one --probe target once and returns the exit status:
// 0 when it holds, 1 when it does not, 2 when the target cannot be read.
// It writes one line to out saying which and why. It is what an exec
// probe or a HEALTHCHECK calls in an image without a shell, so it needs
// no /proc, no /tmp and nothing writable, and nothing it touches can
// make it hang: records are opened without following a final symlink,
// without blocking, must be regular files and are read up to 64 KiB.
//
//	ready:PATH      the tombstone at PATH says "ready"
//	tombstone:PATH  the tombstone at PATH says "running" or "ready"
//	file:PATH       PATH exists (as for --wait-for file:)
//	tcp:HOST:PORT   one connection to HOST:PORT succeeds within 1s
func Probe(target string, out io.Writer) int {
	t, err := parseProbeTarget(target)
	if err != nil {
		fmt.Fprintf(out, "vigil: --probe: %s\n", oneLine(err.Error()))
		return ExitUsage
	}
	why, ok := probe(t)
	verdict := "does not hold"
	if ok {
		verdict = "holds"
	}
	fmt.Fprintf(out, "%s: %s: %s\n", oneLine(t.String()), verdict, oneLine(why))
	if ok {
		return probeHolds
	}
	return probeFails
}

// parseProbeTarget reads the targets of ParseTarget and ready:PATH.
func parseProbeTarget(s string) (Target, error) {
	const want = "want ready:PATH, tombstone:PATH, file:PATH or tcp:HOST:PORT"
	kind, rest, _ := strings.Cut(s, ":")
	if rest == "" {
		return Target{}, fmt.Errorf("target %q: %s", s, want)
	}
	switch kind {
	case "ready":
		if strings.IndexByte(rest, 0) >= 0 {
			return Target{}, fmt.Errorf("target %q: path holds a NUL byte", s)
		}
		return Target{Kind: "ready", Path: filepath.Clean(rest)}, nil
	case "file", "tombstone", "tcp":
		return ParseTarget(s)
	}
	return Target{}, fmt.Errorf("target %q: %s", s, want)
}

// probe evaluates t and says why it holds or not.
func probe(t Target) (string, bool) {
	switch t.Kind {
	case "file":
		// stat, like --wait-for file:, which opens nothing: a FIFO or a
		// socket that exists holds, and cannot block the probe.
		if _, err := os.Stat(t.Path); err != nil {
			return err.Error(), false
		}
		return "exists", true
	case "tcp":
		c, err := net.DialTimeout("tcp", t.Addr, probeDialTimeout)
		if err != nil {
			return err.Error(), false
		}
		c.Close()
		return "connected to " + t.Addr, true
	}
	rec, err := readProbeRecord(t.Path)
	if err != nil {
		return err.Error(), false
	}
	why := "state " + rec.State
	if rec.Status != "" {
		why += fmt.Sprintf(", status %q", rec.Status)
	}
	if t.Kind == "ready" {
		return why, rec.State == "ready"
	}
	return why, rec.State == "running" || rec.State == "ready"
}

// probeRecord is the part of a tombstone a probe reports. Status is
// declared here too, so that the line shows it before and after the
// field joins Tombstone (the shallower field wins in encoding/json).
type probeRecord struct {
	Tombstone
	Status string `json:"status"`
}

// readProbeRecord reads a tombstone for a probe: no following a symlink
// at PATH, nothing but a regular file, no more than probeReadMax bytes.
func readProbeRecord(path string) (probeRecord, error) {
	var rec probeRecord
	// Look before opening: opening a device can have effects of its own
	// (a tape rewinds on close). The check after opening is the one that
	// counts; this one only keeps the probe away from anything but files.
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return rec, &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFLNK:
		return rec, fmt.Errorf("%s is a symlink; a probe does not follow it", path)
	default:
		return rec, fmt.Errorf("%s is not a regular file", path)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	switch {
	case errors.Is(err, unix.ELOOP):
		return rec, fmt.Errorf("%s is a symlink; a probe does not follow it", path)
	case err != nil:
		return rec, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return rec, err
	}
	if !fi.Mode().IsRegular() {
		return rec, fmt.Errorf("%s is not a regular file (%s)", path, fi.Mode().Type())
	}
	b, err := io.ReadAll(io.LimitReader(f, probeReadMax+1))
	if err != nil {
		return rec, err
	}
	if len(b) > probeReadMax {
		return rec, fmt.Errorf("%s is larger than %d bytes; not a tombstone", path, probeReadMax)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("%s is not a tombstone: %w", path, err)
	}
	if rec.State == "" {
		return rec, fmt.Errorf("%s is not a tombstone: no state", path)
	}
	return rec, nil
}

// oneLine keeps a probe's report on one line whatever a path holds: a
// probe's output is shown in one event line by Kubernetes and Docker.
func oneLine(s string) string {
	return strings.NewReplacer("\n", `\n`, "\r", `\r`).Replace(s)
}
