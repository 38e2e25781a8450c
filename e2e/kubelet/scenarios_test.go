package kubelet

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Each scenario runs under vigil and, where tini can do the same, under
// tini-static beside it; the outcomes go into the matrix TestMain prints.

// A native sidecar whose startupProbe is vigil --probe ready: gates the
// main container, whose exit code and vigil's --termination-log message
// reach the pod's status.
func TestNativeSidecarGatesMainAndStatusShowsItsEnd(t *testing.T) {
	n := needNode(t)
	t.Parallel()
	const scenario = "sidecar startupProbe gates main; exit code+message"
	for _, init := range []string{"vigil", "tini"} {
		t.Run(init, func(t *testing.T) {
			t.Parallel()
			p := port(t)
			// httpd comes up two seconds late: main's single wget
			// succeeds only if the kubelet waited for the probe.
			late := "sleep 2; exec httpd -f -p 127.0.0.1:" + p + " -h /www"
			work := "wget -qO- http://127.0.0.1:" + p + "/ && exit 3"
			pod := newPod("gate-"+init, 10)
			switch init {
			case "vigil":
				side := sidecar(container("proxy", "/vigil", "--name=proxy", "--tombstone=/run/vigil/proxy.json",
					"--ready-on=tcp:127.0.0.1:"+p, "--grace=5s", "--", "sh", "-c", late))
				side.StartupProbe = execProbe(1, 30, "/vigil", "--probe", "ready:/run/vigil/proxy.json")
				pod.Spec.InitContainers = []corev1.Container{side}
				pod.Spec.Containers = []corev1.Container{container("main", "/vigil", "--termination-log=/dev/termination-log", "--", "sh", "-c", work)}
			case "tini":
				side := sidecar(container("proxy", "/tini", "--", "sh", "-c", late))
				side.StartupProbe = execProbe(1, 30, "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:"+p+"/")
				pod.Spec.InitContainers = []corev1.Container{side}
				pod.Spec.Containers = []corev1.Container{container("main", "/tini", "--", "sh", "-c", work)}
			}
			sp := n.run(t, pod)
			st := sp.waitPod(60*time.Second, "main terminated", func(p *corev1.Pod) bool { return terminated(p, "main") != nil })
			term := terminated(st, "main")
			outcome(scenario, init, fmt.Sprintf("exit %d (%s), message %q", term.ExitCode, term.Reason, strings.TrimSpace(term.Message)))
			if term.ExitCode != 3 {
				t.Errorf("main: exit code %d, want 3 (1 means it started before the sidecar was ready)\n%s", term.ExitCode, describe(st))
			}
			if init == "vigil" && !strings.Contains(term.Message, "exit status 3") {
				t.Errorf("main: termination message %q, want vigil's summary with exit status 3", term.Message)
			}
		})
	}
}
