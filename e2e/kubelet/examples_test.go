package kubelet

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// The manifests of examples/kubernetes, run as the kubelet runs a static
// pod. What a static pod on this node needs is changed, and nothing else:
// the pod uses the host's network, so each port the example names is
// moved to a free one; an emptyDir becomes a host directory the test can
// read; images are never pulled.
const examplesDir = "../../examples/kubernetes"

// examplePod reads the pod template of the workload kind in file.
func examplePod(t *testing.T, file, kind string) *corev1.Pod {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(examplesDir, file))
	if err != nil {
		t.Fatal(err)
	}
	for doc := range strings.SplitSeq(string(data), "\n---\n") {
		var tm struct{ Kind string }
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if tm.Kind != kind {
			continue
		}
		var tmpl corev1.PodTemplateSpec
		switch kind {
		case "Job":
			var j batchv1.Job
			if err := yaml.UnmarshalStrict([]byte(doc), &j); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			tmpl = j.Spec.Template
		case "Deployment":
			var d appsv1.Deployment
			if err := yaml.UnmarshalStrict([]byte(doc), &d); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			tmpl = d.Spec.Template
		default:
			t.Fatalf("examplePod: kind %s", kind)
		}
		p := newPod(strings.TrimSuffix(file, filepath.Ext(file)), 0)
		p.Labels, p.Spec = tmpl.Labels, tmpl.Spec
		return p
	}
	t.Fatalf("%s: no %s", file, kind)
	return nil
}

var portWord = regexp.MustCompile(`\b80[89][0-9]\b`)

// asStaticPod makes p runnable on this node (see examplesDir) and returns
// the ports it moved: example port -> host port.
func (n *node) asStaticPod(t *testing.T, p *corev1.Pod) map[string]string {
	t.Helper()
	p.Spec.HostNetwork = true
	moved := map[string]string{}
	move := func(s string) string {
		return portWord.ReplaceAllStringFunc(s, func(w string) string {
			if moved[w] == "" {
				moved[w] = port(t)
			}
			return moved[w]
		})
	}
	for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for i := range cs {
			c := &cs[i]
			for j := range c.Command {
				c.Command[j] = move(c.Command[j])
			}
			for j := range c.Args {
				c.Args[j] = move(c.Args[j])
			}
			for _, pr := range []*corev1.Probe{c.StartupProbe, c.ReadinessProbe, c.LivenessProbe} {
				if pr != nil && pr.Exec != nil {
					for j := range pr.Exec.Command {
						pr.Exec.Command[j] = move(pr.Exec.Command[j])
					}
				}
			}
			for j := range c.Ports {
				var hp int32
				fmt.Sscan(move(fmt.Sprint(c.Ports[j].ContainerPort)), &hp)
				c.Ports[j].ContainerPort = hp
			}
		}
	}
	dir := corev1.HostPathDirectoryOrCreate
	for i := range p.Spec.Volumes {
		if v := &p.Spec.Volumes[i]; v.EmptyDir != nil {
			v.VolumeSource = corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
				Path: filepath.Join(n.records, p.Name), Type: &dir}}
		}
	}
	return moved
}

// exitZeroOnStop says whether the container's vigil is told to end 0
// when the kubelet's stop signal ends its child.
func exitZeroOnStop(c corev1.Container) bool {
	for _, a := range c.Command {
		if a == "--" {
			break
		}
		if a == "--exit-zero-on-stop" {
			return true
		}
	}
	for _, e := range c.Env {
		if e.Name == "VIGIL_EXIT_ZERO_ON_STOP" && e.Value != "" {
			return true
		}
	}
	return false
}

// Both Job examples complete: the native sidecar's and the volume-based one.
func TestExampleJobsComplete(t *testing.T) {
	n := needNode(t)
	t.Parallel()
	for _, file := range []string{"job-with-native-sidecar.yaml", "job-with-sidecar.yaml"} {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			pod := examplePod(t, file, "Job")
			n.asStaticPod(t, pod)
			sp := n.run(t, pod)
			st := sp.waitPod(90*time.Second, "the pod succeeded and every container ended", func(p *corev1.Pod) bool {
				for _, c := range append(p.Spec.InitContainers, p.Spec.Containers...) {
					if terminated(p, c.Name) == nil {
						return false
					}
				}
				return p.Status.Phase == corev1.PodSucceeded
			})
			var ends []string
			for _, c := range append(st.Spec.InitContainers, st.Spec.Containers...) {
				term := terminated(st, c.Name)
				ends = append(ends, fmt.Sprintf("%s %s/%d", c.Name, term.Reason, term.ExitCode))
				want := int32(0)
				if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways && !exitZeroOnStop(c) {
					want = 143 // a native sidecar whose child died of the kubelet's TERM
				}
				if term.ExitCode != want {
					t.Errorf("%s: %s, exit %d, want %d\n%s", c.Name, term.Reason, term.ExitCode, want, describe(st))
				}
				if !strings.Contains(term.Message, "exit status") {
					t.Errorf("%s: termination message %q, want vigil's summary", c.Name, term.Message)
				}
			}
			outcome("example "+file, "vigil", fmt.Sprintf("pod %s; %s", st.Status.Phase, strings.Join(ends, ", ")))
		})
	}
}

// The Deployment examples serve, and go on serving while a deleted pod
// drains; the proxy sidecar stops only after the server has ended.
func TestExampleDeploymentsServeAndStopInOrder(t *testing.T) {
	n := needNode(t)
	t.Parallel()
	for _, file := range []string{"deployment-with-proxy-sidecar.yaml", "deployment-with-drain.yaml"} {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			pod := examplePod(t, file, "Deployment")
			moved := n.asStaticPod(t, pod)
			url := "http://127.0.0.1:" + moved["8080"] + "/"
			sp := n.run(t, pod)
			sp.waitPod(90*time.Second, "the pod ready", func(p *corev1.Pod) bool {
				for _, c := range p.Status.Conditions {
					if c.Type == corev1.PodReady {
						return c.Status == corev1.ConditionTrue
					}
				}
				return false
			})
			if body, err := get(url); err != nil || body != "served from behind vigil\n" {
				t.Fatalf("GET %s: %q, %v", url, body, err)
			}
			sp.delete()
			// --drain 5s: the pod answers on for about that long after
			// the deletion. Asked until the first refusal (bounded).
			var lastOK time.Time
			for time.Since(sp.deleted) < 20*time.Second {
				if body, err := get(url); err != nil || body != "served from behind vigil\n" {
					break
				}
				lastOK = time.Now()
				time.Sleep(200 * time.Millisecond)
			}
			served := lastOK.Sub(sp.deleted)
			if served < 4*time.Second {
				t.Errorf("the pod answered for %v after its deletion, want the --drain of 5s", served.Round(100*time.Millisecond))
			}
			if err := sp.waitStopped(40 * time.Second); err != nil {
				t.Fatal(err)
			}
			took := time.Since(sp.deleted)
			what := fmt.Sprintf("served, and for %.1fs after the deletion; stopped after %.1fs", served.Seconds(), took.Seconds())
			if file == "deployment-with-proxy-sidecar.yaml" {
				web := sp.waitTombstone(5*time.Second, "web.json", "exited")
				proxy := sp.waitTombstone(5*time.Second, "proxy.json", "exited")
				what += fmt.Sprintf("; web %s/%d, then proxy %s/%d %.1fs later", web.Class, *web.ExitStatus, proxy.Class, *proxy.ExitStatus, proxy.EndedAt.Sub(web.EndedAt).Seconds())
				if proxy.EndedAt.Before(web.EndedAt) {
					t.Errorf("the proxy ended at %v, before the server (%v)", proxy.EndedAt, web.EndedAt)
				}
			}
			outcome("example "+file, "vigil", what)
		})
	}
}

func get(url string) (string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = io.Copy(&b, resp.Body)
	return b.String(), err
}
