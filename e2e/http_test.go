package e2e

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// http: targets (issue 21), against a real HTTP server (net/http, in the
// test process; vigil speaks HTTP by hand).

// healthServer serves /healthz with the status held in code, and counts
// the requests it answered.
type healthServer struct {
	addr  string
	code  atomic.Int32
	calls atomic.Int32
}

func newHealthServer(t *testing.T, code int) *healthServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &healthServer{addr: ln.Addr().String()}
	h.code.Store(int32(code))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.calls.Add(1)
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(int(h.code.Load()))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return h
}

func TestProbeHTTP(t *testing.T) {
	h := newHealthServer(t, 200)
	if status, line := probe(t, "http:"+h.addr+"/healthz"); status != 0 || !strings.Contains(line, "status 200") {
		t.Errorf("--probe http: of a 200 = %d %q, want 0", status, line)
	}
	h.code.Store(307)
	if status, line := probe(t, "http://"+h.addr+"/healthz"); status != 0 || !strings.Contains(line, "status 307") {
		t.Errorf("--probe http:// of a 307 = %d %q, want 0 (redirects are not followed)", status, line)
	}
	h.code.Store(503)
	if status, line := probe(t, "http:"+h.addr+"/healthz"); status != 1 || !strings.Contains(line, "status 503") {
		t.Errorf("--probe http: of a 503 = %d %q, want 1", status, line)
	}
	if status, line := probe(t, "http:"+h.addr+"/other"); status != 1 || !strings.Contains(line, "status 404") {
		t.Errorf("--probe http: of a 404 = %d %q, want 1", status, line)
	}
	// A port that accepts and never answers: the probe ends in its bound.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	began := time.Now()
	if status, line := probe(t, "http:"+ln.Addr().String()+"/"); status != 1 {
		t.Errorf("--probe http: of a silent port = %d %q, want 1", status, line)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("--probe http: of a silent port took %s", took)
	}
}

// TestWaitForHTTP: as PID 1, the command starts only once the GET
// answers 2xx; a 503 keeps it waiting.
func TestWaitForHTTP(t *testing.T) {
	h := newHealthServer(t, 503)
	dir := t.TempDir()
	tomb, file := filepath.Join(dir, "tomb.json"), filepath.Join(dir, "ready")
	r := start(t, opts{pid1: true}, "--wait-for", "http:"+h.addr+"/healthz", "--tombstone", tomb,
		"--", self, "record", file)
	waitFile(t, tomb, `"state":"starting"`, 10*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for h.calls.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("vigil asked %d times in 10s\nstderr:\n%s", h.calls.Load(), r.stderr)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if readTombstone(t, tomb)["state"] != "starting" {
		t.Fatalf("the command started while the server answered 503")
	}
	h.code.Store(200)
	waitFile(t, file, "ready", 10*time.Second)
	r.signal(unix.SIGTERM)
	r.expect(0)
}

// TestReadyOnHTTP: the child is ready once its own endpoint answers 2xx.
// As PID 1 and not.
func TestReadyOnHTTP(t *testing.T) {
	for _, pid1 := range []bool{true, false} {
		if pid1 && os.Geteuid() != 0 {
			continue
		}
		h := newHealthServer(t, 500)
		dir := t.TempDir()
		tomb, file := filepath.Join(dir, "tomb.json"), filepath.Join(dir, "ready")
		r := start(t, opts{pid1: pid1}, "--ready-on", "http:"+h.addr+"/healthz", "--tombstone", tomb,
			"--", self, "record", file)
		waitFile(t, file, "ready", 10*time.Second)
		waitFile(t, tomb, `"state":"running"`, 10*time.Second)
		deadline := time.Now().Add(10 * time.Second)
		for h.calls.Load() < 2 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if st := readTombstone(t, tomb)["state"]; st != "running" {
			t.Errorf("pid1=%v: state %v while the endpoint answers 500", pid1, st)
		}
		h.code.Store(204)
		waitFile(t, tomb, `"state":"ready"`, 10*time.Second)
		r.signal(unix.SIGTERM)
		r.expect(0)
	}
}
