// Package manifests tests the Kubernetes examples: every YAML file here is
// decoded strictly into the API types, and every vigil command line in it
// is checked against the flags of a vigil built from this repository. It is
// a module of its own so that vigil's module keeps its three dependencies.
package manifests

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var (
	vigilFlags *flagSet // vigil's flags
	flagsErr   error    // why there are none
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "vigil-manifests-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin, err := buildVigil(dir)
	if err == nil {
		vigilFlags, err = loadFlagSet(bin)
	}
	flagsErr = err
	return m.Run()
}

// newChecker returns a checker with vigil's flags and this directory's
// image, or fails the test.
func newChecker(t *testing.T) *checker {
	t.Helper()
	if flagsErr != nil {
		t.Fatalf("vigil's flag set: %v", flagsErr)
	}
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	img, err := parseDockerfile(data)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	return &checker{flags: vigilFlags, image: img}
}

func TestEveryManifestDecodesStrictlyAndUsesRealFlags(t *testing.T) {
	c := newChecker(t)
	files, err := filepath.Glob("*.y*ml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no *.yaml file in examples/kubernetes")
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, err := range c.checkFile(data) {
				t.Errorf("%s: %v", f, err)
			}
		})
	}
}

func TestExampleDockerfileUsesRealFlags(t *testing.T) {
	c := newChecker(t)
	img := c.image
	if !isVigil(img.Entrypoint) {
		t.Fatalf("ENTRYPOINT %q: want vigil as PID 1", img.Entrypoint)
	}
	entry, err := c.flags.parseArgs(append(img.Entrypoint[1:len(img.Entrypoint):len(img.Entrypoint)], img.Cmd...), nil)
	if err != nil {
		t.Fatalf("ENTRYPOINT %q CMD %q: %v", img.Entrypoint, img.Cmd, err)
	}
	if !isVigil(img.Healthcheck) {
		t.Fatalf("HEALTHCHECK CMD %q: want a vigil --probe", img.Healthcheck)
	}
	health, err := c.flags.parseArgs(img.Healthcheck[1:], nil)
	if err != nil {
		t.Fatalf("HEALTHCHECK CMD %q: %v", img.Healthcheck, err)
	}
	probe, ok := health.lookup("probe")
	if !ok {
		t.Fatalf("HEALTHCHECK CMD %q: no --probe", img.Healthcheck)
	}
	tomb, _ := entry.lookup("tombstone")
	if kind, p, _ := strings.Cut(probe.Value, ":"); kind == "ready" && p != tomb.Value {
		t.Errorf("HEALTHCHECK probes %s, but the ENTRYPOINT writes its tombstone at %q", probe.Value, tomb.Value)
	}
}

func TestHelpIsReadAsVigilMeansIt(t *testing.T) {
	if flagsErr != nil {
		t.Fatalf("vigil's flag set: %v", flagsErr)
	}
	fs := vigilFlags
	for _, tc := range []struct {
		spelling, name, placeholder, env string
	}{
		{"grace", "grace", "DURATION", "VIGIL_GRACE"},
		{"u", "user", "USER[:GROUP]", "VIGIL_USER"},
		{"s", "subreaper", "", "VIGIL_SUBREAPER"},
		{"wait-for", "wait-for", "TARGET", "VIGIL_WAIT_FOR"},
	} {
		spec := fs.byName[tc.spelling]
		if spec == nil {
			t.Errorf("--%s: not found in vigil --help:\n%s", tc.spelling, fs.help)
			continue
		}
		if spec.Name != tc.name || spec.Placeholder != tc.placeholder || fs.byEnv[tc.env] != spec {
			t.Errorf("--%s: read as %+v, want name %s, placeholder %q, variable %s", tc.spelling, *spec, tc.name, tc.placeholder, tc.env)
		}
	}
}

// A pod the checker accepts; the cases below each break one thing in it.
const goodJob = `
apiVersion: batch/v1
kind: Job
metadata: {name: t}
spec:
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 30
      volumes: [{name: run, emptyDir: {}}]
      containers:
        - name: main
          image: vigil-example:1
          command: [/vigil, --tombstone=/run/vigil/main.json, --grace=25s, --, sh, -c, "true"]
          volumeMounts: [{name: run, mountPath: /run/vigil}]
        - name: side
          image: vigil-example:1
          command: [/vigil, -sg, --stop-on, "tombstone:/run/vigil/main.json", --drain=5s, --grace=20s, --, httpd, -f]
          env: [{name: VIGIL_LOG_FORMAT, value: json}, {name: OTHER, value: x}]
          volumeMounts: [{name: run, mountPath: /run/vigil}]
`

func TestCheckerRejects(t *testing.T) {
	c := newChecker(t)
	if errs := c.checkFile([]byte(goodJob)); len(errs) > 0 {
		t.Fatalf("the good job is refused: %v", errors.Join(errs...))
	}
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"unknown field", "restartPolicy: Never", "restartPolicy: Never\n      restartPolicyy: Never", `unknown field "spec.template.spec.restartPolicyy"`},
		{"field in the wrong case", "command: [/vigil, --tomb", "Command: [/vigil, --tomb", `unknown field "spec.template.spec.containers[0].Command"`},
		{"duplicate key", "metadata: {name: t}", "metadata: {name: t}\nmetadata: {name: u}", `"metadata" already set`},
		{"unknown kind", "kind: Job", "kind: Jobb", `unknown kind "Jobb"`},
		{"unknown flag", "--grace=25s", "--gracee=25s", "vigil has no flag --gracee=25s"},
		{"unknown short flag", "-sg", "-sq", "vigil has no flag -sq"},
		{"unknown variable", "name: OTHER", "name: VIGIL_OTHER", "vigil has no variable VIGIL_OTHER"},
		{"bad duration", "--grace=25s", "--grace=25", `--grace=25: time: missing unit in duration "25"`},
		{"bad duration in a variable", "name: VIGIL_LOG_FORMAT, value: json", "name: VIGIL_DRAIN, value: soon", `VIGIL_DRAIN="soon": time: invalid duration`},
		{"unknown target", "tombstone:/run/vigil/main.json", "http:/run/vigil/main.json", "--stop-on takes no http: target"},
		{"no command", ", --, httpd, -f]", "]", "no command after vigil's flags"},
		{"no grace", "--grace=25s, ", "", "container main: no --grace: give it explicitly"},
		{"grace too long", "--grace=20s", "--grace=25s", "--drain 5s + --grace 25s = 30s, not below terminationGracePeriodSeconds 30s"},
		{"period not set", "terminationGracePeriodSeconds: 30", "", "terminationGracePeriodSeconds is not set"},
		{"record nobody writes", "tombstone:/run/vigil/main.json", "tombstone:/run/vigil/mian.json", "no vigil in this pod writes a tombstone at /run/vigil/mian.json"},
		{"record not shared", "volumeMounts: [{name: run, mountPath: /run/vigil}]\n        - name: side", "volumeMounts: [{name: run, mountPath: /var/vigil}]\n        - name: side", "not on a volume both containers mount"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(goodJob, tc.old) {
				t.Fatalf("the good job has no %q to replace", tc.old)
			}
			bad := strings.Replace(goodJob, tc.old, tc.new, 1)
			errs := c.checkFile([]byte(bad))
			err := errors.Join(errs...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("want an error containing %q, got: %v\nmanifest:%s", tc.want, err, bad)
			}
		})
	}
}

// A pod with a native sidecar: the budget counts main's stop and the
// sidecar's together, as the kubelet stops them one after the other.
const nativeJob = `
apiVersion: batch/v1
kind: Job
metadata: {name: t}
spec:
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 30
      initContainers:
        - name: side
          image: vigil-example:1
          restartPolicy: Always
          command: [/vigil, --grace=10s, --, httpd, -f]
      containers:
        - name: main
          image: vigil-example:1
          command: [/vigil, --drain=5s, --grace=10s, --, sh, -c, "true"]
`

func TestCheckerBudgetsNativeSidecars(t *testing.T) {
	c := newChecker(t)
	if errs := c.checkFile([]byte(nativeJob)); len(errs) > 0 {
		t.Fatalf("the good job is refused: %v", errors.Join(errs...))
	}
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"sidecar after main too long", "--grace=10s, --, httpd", "--grace=15s, --, httpd", "sidecar side: stopped after the main containers (their longest --drain + --grace: 15s) and any later sidecar, its own 15s makes 30s, not below terminationGracePeriodSeconds 30s"},
		{"main leaves too little", "--drain=5s, --grace=10s", "--drain=5s, --grace=20s", "its own 10s makes 35s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(nativeJob, tc.old) {
				t.Fatalf("the good job has no %q to replace", tc.old)
			}
			bad := strings.Replace(nativeJob, tc.old, tc.new, 1)
			err := errors.Join(c.checkFile([]byte(bad))...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("want an error containing %q, got: %v", tc.want, err)
			}
		})
	}
	// Without restartPolicy: Always it is an init container that has
	// ended before main starts: its stop is not added to main's.
	plain := strings.Replace(strings.Replace(nativeJob, "          restartPolicy: Always\n", "", 1), "--grace=10s, --, httpd", "--grace=15s, --, httpd", 1)
	if errs := c.checkFile([]byte(plain)); len(errs) > 0 {
		t.Errorf("a plain init container's stop was counted after main's: %v", errors.Join(errs...))
	}
}

func TestSplitDocuments(t *testing.T) {
	docs := splitDocuments([]byte("# header only\n---\na: 1\n--- \nb: 2\n---\n# trailing comment\n"))
	if len(docs) != 2 || string(docs[0]) != "a: 1\n" || string(docs[1]) != "b: 2\n" {
		t.Errorf("got %q, want [\"a: 1\\n\" \"b: 2\\n\"]", docs)
	}
}
