package kubelet

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// staticPod is a pod the test gave the kubelet through a manifest file.
type staticPod struct {
	n        *node
	t        *testing.T
	name     string // as in the manifest; the kubelet lists it as name-vigil-node
	manifest string
	records  string // host directory the pod's records volume holds
	deleted  time.Time
}

// newPod returns a pod the way the tests run them: on the host's network
// (a loopback-only CNI), never restarted unless the test says so, and a
// directory of the host mounted at /run/vigil for the records the test
// reads.
func newPod(name string, grace int64) *corev1.Pod {
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{
			HostNetwork:                   true,
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: &grace,
		},
	}
}

// container is a container of the test image running argv.
func container(name string, argv ...string) corev1.Container {
	return corev1.Container{Name: name, Image: testImage, Command: argv}
}

// sidecar makes c a native sidecar: an init container that keeps running.
func sidecar(c corev1.Container) corev1.Container {
	always := corev1.ContainerRestartPolicyAlways
	c.RestartPolicy = &always
	return c
}

func execProbe(period, failures int32, argv ...string) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: argv}},
		PeriodSeconds: period, FailureThreshold: failures, TimeoutSeconds: 5,
	}
}

// run gives the kubelet the pod: the records volume is added, every
// container's image is never pulled, and the manifest (JSON, from the API
// type) appears in the static pod directory at once, by a rename. The
// test's cleanup deletes the pod and waits until its containers stopped.
func (n *node) run(t *testing.T, p *corev1.Pod) *staticPod {
	t.Helper()
	sp := &staticPod{n: n, t: t, name: p.Name,
		manifest: filepath.Join(n.manifests, p.Name+".json"), records: filepath.Join(n.records, p.Name)}
	if err := os.MkdirAll(sp.records, 0o777); err != nil {
		t.Fatal(err)
	}
	hostDir := corev1.HostPathDirectory
	p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "test-records",
		VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: sp.records, Type: &hostDir}}})
	for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for i := range cs {
			cs[i].ImagePullPolicy = corev1.PullNever
			if !mounts(cs[i], "/run/vigil") {
				cs[i].VolumeMounts = append(cs[i].VolumeMounts, corev1.VolumeMount{Name: "test-records", MountPath: "/run/vigil"})
			}
		}
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(n.manifests, "."+p.Name+".tmp") // the kubelet ignores dot files
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, sp.manifest); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sp.delete()
		if err := sp.waitStopped(60 * time.Second); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("pod %s at the end: %s", p.Name, sp.describe())
			t.Logf("kubelet log, last lines:\n%s", grepLog(filepath.Join(n.dir, "kubelet.log"), p.Name, 40))
		}
	})
	return sp
}

func mounts(c corev1.Container, path string) bool {
	for _, m := range c.VolumeMounts {
		if m.MountPath == path {
			return true
		}
	}
	return false
}

// delete removes the manifest: that is how a static pod is deleted.
func (sp *staticPod) delete() {
	if sp.deleted.IsZero() {
		sp.deleted = time.Now()
	}
	os.Remove(sp.manifest)
}

// status is the pod as the kubelet lists it now, nil when not listed.
func (sp *staticPod) status() (*corev1.Pod, error) {
	pods, err := sp.n.pods()
	if err != nil {
		return nil, err
	}
	for i := range pods {
		if pods[i].Name == sp.name+"-"+nodeName {
			return &pods[i], nil
		}
	}
	return nil, nil
}

// waitPod waits until cond holds for the listed pod.
func (sp *staticPod) waitPod(d time.Duration, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	sp.t.Helper()
	var last *corev1.Pod
	err := waitFor(d, sp.name+": "+what, func() (bool, error) {
		p, err := sp.status()
		if err != nil || p == nil {
			return false, nil
		}
		last = p
		return cond(p), nil
	})
	if err != nil {
		sp.t.Fatalf("%v\nthe pod's status: %s", err, describe(last))
	}
	return last
}

// containerStatus finds a container's status, in the regular or the init
// containers' list (native sidecars are init containers).
func containerStatus(p *corev1.Pod, name string) *corev1.ContainerStatus {
	if p == nil {
		return nil
	}
	for _, l := range [][]corev1.ContainerStatus{p.Status.ContainerStatuses, p.Status.InitContainerStatuses} {
		for i := range l {
			if l[i].Name == name {
				return &l[i]
			}
		}
	}
	return nil
}

// terminated says whether the container has ended (and is not restarting).
func terminated(p *corev1.Pod, name string) *corev1.ContainerStateTerminated {
	if s := containerStatus(p, name); s != nil {
		return s.State.Terminated
	}
	return nil
}

// containerIDs are the pod's containers (and sandbox) in containerd.
func (sp *staticPod) containerIDs() ([]string, error) {
	out, err := sp.n.ctr("-n", "k8s.io", "containers", "ls", "-q", fmt.Sprintf(`labels."io.kubernetes.pod.name"==%s-%s`, sp.name, nodeName))
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}

// running lists which of the pod's containers have a running task.
func (sp *staticPod) running() ([]string, error) {
	ids, err := sp.containerIDs()
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	out, err := sp.n.ctr("-n", "k8s.io", "tasks", "ls")
	if err != nil {
		return nil, err
	}
	mine := map[string]bool{}
	for _, id := range ids {
		mine[id] = true
	}
	var run []string
	for line := range strings.SplitSeq(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && mine[f[0]] && f[2] == "RUNNING" {
			run = append(run, f[0])
		}
	}
	return run, nil
}

// waitStopped waits, after the pod's deletion, until none of its
// containers runs any more: the kubelet drops a static pod from /pods
// before its containers have stopped.
func (sp *staticPod) waitStopped(d time.Duration) error {
	return waitFor(d, sp.name+": every container stopped", func() (bool, error) {
		r, err := sp.running()
		return err == nil && len(r) == 0, nil
	})
}

// record reads a file the pod wrote on its records volume.
func (sp *staticPod) record(name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(sp.records, name))
	return string(b), err
}

// tombstone is the part of vigil's record the tests read.
type tombstone struct {
	State      string    `json:"state"`
	Class      string    `json:"class"`
	ExitStatus *int      `json:"exit_status"`
	Signal     string    `json:"signal"`
	EndedAt    time.Time `json:"ended_at"`
}

// waitTombstone waits for vigil's record at name to reach state.
func (sp *staticPod) waitTombstone(d time.Duration, name, state string) tombstone {
	sp.t.Helper()
	var ts tombstone
	var last string
	err := waitFor(d, fmt.Sprintf("%s: %s says %s", sp.name, name, state), func() (bool, error) {
		b, err := sp.record(name)
		if err != nil {
			return false, nil
		}
		last = b
		if err := json.Unmarshal([]byte(b), &ts); err != nil {
			return false, fmt.Errorf("%s: %w: %q", name, err, b)
		}
		return ts.State == state, nil
	})
	if err != nil {
		sp.t.Fatalf("%v\nlast record: %s\nthe pod's status: %s", err, last, sp.describe())
	}
	return ts
}

func (sp *staticPod) describe() string {
	p, err := sp.status()
	if err != nil {
		return err.Error()
	}
	if p == nil {
		return "(not listed)"
	}
	return describe(p)
}

// describe is the pod's phase and each container's state in one line each.
func describe(p *corev1.Pod) string {
	if p == nil {
		return "(not listed)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "phase %s %s", p.Status.Phase, p.Status.Message)
	for _, l := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, s := range l {
			fmt.Fprintf(&b, "\n  %s: restarts %d, %s; last %s", s.Name, s.RestartCount, state(s.State), state(s.LastTerminationState))
		}
	}
	return b.String()
}

func state(s corev1.ContainerState) string {
	switch {
	case s.Running != nil:
		return "running"
	case s.Waiting != nil:
		return "waiting " + s.Waiting.Reason + " " + s.Waiting.Message
	case s.Terminated != nil:
		return fmt.Sprintf("terminated %s, exit %d, message %q", s.Terminated.Reason, s.Terminated.ExitCode, s.Terminated.Message)
	}
	return "-"
}

// grepLog returns the last lines of a log that mention s.
func grepLog(path, s string, lines int) string {
	b, _ := os.ReadFile(path)
	var hits []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.Contains(line, s) {
			hits = append(hits, line)
		}
	}
	if len(hits) > lines {
		hits = hits[len(hits)-lines:]
	}
	return strings.Join(hits, "\n")
}

// port is a TCP port free on the host now, for a pod on the host's network.
func port(t *testing.T) string {
	t.Helper()
	p, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(p[0])
}

// The matrix: scenario × init → outcome, printed after the tests.
var (
	matrixMu sync.Mutex
	matrix   = map[[2]string]string{}
)

// outcome records what an init got in a scenario, for the matrix.
func outcome(scenario, init, what string) {
	matrixMu.Lock()
	defer matrixMu.Unlock()
	matrix[[2]string{scenario, init}] = what
}

func printMatrix(versions string) {
	matrixMu.Lock()
	defer matrixMu.Unlock()
	if len(matrix) == 0 {
		return
	}
	keys := make([][2]string, 0, len(matrix))
	for k := range matrix {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i][0] != keys[j][0] {
			return keys[i][0] < keys[j][0]
		}
		return keys[i][1] > keys[j][1] // vigil before tini
	})
	fmt.Printf("\nkubelet matrix (%s):\n", versions)
	for _, k := range keys {
		fmt.Printf("  %-52s %-26s %s\n", k[0], k[1], matrix[k])
	}
}
