package pid1

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// What --probe exits with besides ExitUsage.
const (
	probeHolds = 0
	probeFails = 1
)

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
//	http:HOST:PORT/PATH  a GET answers 2xx or 3xx (1s to connect, 1s more)
func Probe(target string, out io.Writer) int {
	t, err := ParseTarget(target)
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

// probe evaluates t and says why it holds or not.
func probe(t Target) (string, bool) {
	if t.dialled() {
		return checkDialled(t, probeDialTimeout)
	}
	ok, why := pathHolds(t, forProbe, "")
	return why, ok
}

// oneLine keeps a probe's report on one line whatever a path holds: a
// probe's output is shown in one event line by Kubernetes and Docker.
func oneLine(s string) string {
	return strings.NewReplacer("\n", `\n`, "\r", `\r`).Replace(s)
}
