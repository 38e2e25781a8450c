package manifests

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// kinds maps apiVersion/kind to the API type a document decodes into. A
// manifest of another kind fails the test: add its type here.
var kinds = map[string]func() any{
	"v1/Pod":                        func() any { return new(corev1.Pod) },
	"v1/Service":                    func() any { return new(corev1.Service) },
	"v1/ConfigMap":                  func() any { return new(corev1.ConfigMap) },
	"v1/Secret":                     func() any { return new(corev1.Secret) },
	"v1/ServiceAccount":             func() any { return new(corev1.ServiceAccount) },
	"apps/v1/Deployment":            func() any { return new(appsv1.Deployment) },
	"apps/v1/StatefulSet":           func() any { return new(appsv1.StatefulSet) },
	"apps/v1/DaemonSet":             func() any { return new(appsv1.DaemonSet) },
	"batch/v1/Job":                  func() any { return new(batchv1.Job) },
	"batch/v1/CronJob":              func() any { return new(batchv1.CronJob) },
	"policy/v1/PodDisruptionBudget": func() any { return new(policyv1.PodDisruptionBudget) },
}

// exampleImage is the image built by this directory's Dockerfile; a
// container of it without command: runs the Dockerfile's ENTRYPOINT.
const exampleImage = "vigil-example"

// splitDocuments splits a YAML stream at its "---" lines and drops the
// documents that hold nothing but comments.
func splitDocuments(data []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	flush := func() {
		for line := range strings.SplitSeq(cur.String(), "\n") {
			if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
				docs = append(docs, bytes.Clone(cur.Bytes()))
				break
			}
		}
		cur.Reset()
	}
	for line := range bytes.Lines(data) {
		if t := bytes.TrimRight(line, " \t\r\n"); string(t) == "---" || bytes.HasPrefix(t, []byte("--- ")) {
			flush()
			continue
		}
		cur.Write(line)
	}
	flush()
	return docs
}

// decode decodes one document strictly into its API type, as the API
// server's strict field validation does: an unknown field, a field in the
// wrong case or a duplicate key is an error.
func decode(doc []byte) (any, error) {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, err
	}
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := json.Unmarshal(j, &tm); err != nil {
		return nil, err
	}
	newObject := kinds[tm.APIVersion+"/"+tm.Kind]
	if newObject == nil {
		return nil, fmt.Errorf("unknown kind %q of apiVersion %q (add its type to kinds)", tm.Kind, tm.APIVersion)
	}
	obj := newObject()
	strict, err := kjson.UnmarshalStrict(j, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return nil, err
	}
	if err := errors.Join(strict...); err != nil {
		return nil, fmt.Errorf("%s %s: %w", tm.APIVersion, tm.Kind, err)
	}
	return obj, nil
}

// podSpec returns the pod a workload runs, if it runs one.
func podSpec(obj any) (name string, spec *corev1.PodSpec) {
	switch o := obj.(type) {
	case *corev1.Pod:
		return "Pod " + o.Name, &o.Spec
	case *appsv1.Deployment:
		return "Deployment " + o.Name, &o.Spec.Template.Spec
	case *appsv1.StatefulSet:
		return "StatefulSet " + o.Name, &o.Spec.Template.Spec
	case *appsv1.DaemonSet:
		return "DaemonSet " + o.Name, &o.Spec.Template.Spec
	case *batchv1.Job:
		return "Job " + o.Name, &o.Spec.Template.Spec
	case *batchv1.CronJob:
		return "CronJob " + o.Name, &o.Spec.JobTemplate.Spec.Template.Spec
	}
	return "", nil
}

// image is what a Dockerfile says a container runs by default.
type image struct {
	Entrypoint, Cmd, Healthcheck []string
}

// parseDockerfile reads the exec-form ENTRYPOINT, CMD and HEALTHCHECK CMD of
// the final stage. A shell form is an error: it would make sh, not vigil,
// PID 1.
func parseDockerfile(data []byte) (image, error) {
	var img image
	var logical []string
	var cur strings.Builder
	for line := range strings.SplitSeq(string(data), "\n") {
		t := strings.TrimSpace(line)
		if cur.Len() == 0 && (t == "" || strings.HasPrefix(t, "#")) {
			continue
		}
		if strings.HasSuffix(t, `\`) {
			cur.WriteString(strings.TrimSuffix(t, `\`) + " ")
			continue
		}
		cur.WriteString(t)
		logical = append(logical, cur.String())
		cur.Reset()
	}
	for _, l := range logical {
		instr, rest, _ := strings.Cut(l, " ")
		rest = strings.TrimSpace(rest)
		var dst *[]string
		switch strings.ToUpper(instr) {
		case "FROM":
			img = image{} // a new stage
			continue
		case "ENTRYPOINT":
			dst = &img.Entrypoint
		case "CMD":
			dst = &img.Cmd
		case "HEALTHCHECK":
			for strings.HasPrefix(rest, "--") { // options
				_, rest, _ = strings.Cut(rest, " ")
				rest = strings.TrimSpace(rest)
			}
			if rest == "NONE" {
				continue
			}
			c, ok := strings.CutPrefix(rest, "CMD ")
			if !ok {
				return img, fmt.Errorf("HEALTHCHECK %q: want CMD [...]", rest)
			}
			rest, dst = strings.TrimSpace(c), &img.Healthcheck
		default:
			continue
		}
		if err := json.Unmarshal([]byte(rest), dst); err != nil {
			return img, fmt.Errorf("%s %s: want the exec form, a JSON array: %w", instr, rest, err)
		}
	}
	return img, nil
}

// checker checks manifests against vigil's real flag set and the example
// image.
type checker struct {
	flags *flagSet
	image image
}

// checkFile decodes every document of one YAML file and checks each pod.
func (c *checker) checkFile(data []byte) []error {
	docs := splitDocuments(data)
	if len(docs) == 0 {
		return []error{errors.New("no document")}
	}
	var errs []error
	for i, doc := range docs {
		obj, err := decode(doc)
		if err != nil {
			errs = append(errs, fmt.Errorf("document %d: %w", i+1, err))
			continue
		}
		if name, spec := podSpec(obj); spec != nil {
			for _, err := range c.checkPod(spec) {
				errs = append(errs, fmt.Errorf("document %d, %s: %w", i+1, name, err))
			}
		}
	}
	return errs
}

// vigilRun is one command line of vigil found in a pod.
type vigilRun struct {
	container *corev1.Container
	where     string // "container sidecar", "container sidecar, startupProbe"
	inv       *invocation
}

// checkPod checks every vigil command line of a pod: its flags and
// variables, the stop budget of each container that runs vigil, and that
// the records one container waits for are written where it can read them.
func (c *checker) checkPod(spec *corev1.PodSpec) []error {
	var errs []error
	var runs []vigilRun // containers whose process is vigil
	var uses []vigilRun // every vigil command line: containers, probes, hooks
	containers := make([]*corev1.Container, 0, len(spec.InitContainers)+len(spec.Containers))
	for i := range spec.InitContainers {
		containers = append(containers, &spec.InitContainers[i])
	}
	for i := range spec.Containers {
		containers = append(containers, &spec.Containers[i])
	}
	for _, ctr := range containers {
		where := "container " + ctr.Name
		env := map[string]string{}
		for _, e := range ctr.Env {
			if e.ValueFrom != nil && strings.HasPrefix(e.Name, "VIGIL_") {
				errs = append(errs, fmt.Errorf("%s: %s comes from valueFrom, which this test cannot check", where, e.Name))
			}
			env[e.Name] = e.Value
		}
		argv, err := c.argv(ctr)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		if isVigil(argv) {
			inv, err := c.flags.parseArgs(argv[1:], env)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
			} else {
				runs = append(runs, vigilRun{ctr, where, inv})
				uses = append(uses, vigilRun{ctr, where, inv})
			}
		}
		for _, h := range execHandlers(ctr) {
			if !isVigil(h.argv) {
				continue
			}
			inv, err := c.flags.parseArgs(h.argv[1:], env)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s, %s: %w", where, h.what, err))
				continue
			}
			uses = append(uses, vigilRun{ctr, where + ", " + h.what, inv})
		}
	}
	if len(runs) == 0 {
		return errs
	}

	// The budget: vigil must end the child and write its records before
	// the kubelet's SIGKILL, so its drain and grace together stay below the
	// pod's termination grace period, set here rather than left to the
	// default.
	stops := map[*corev1.Container]time.Duration{} // each vigil's --drain + --grace
	if spec.TerminationGracePeriodSeconds == nil {
		errs = append(errs, errors.New("terminationGracePeriodSeconds is not set: set it, and --grace below it"))
	} else {
		period := time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
		for _, r := range runs {
			if _, ok := r.inv.lookup("probe"); ok {
				continue
			}
			grace, explicit, err := r.inv.duration(c.flags, "grace")
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: --grace: %w", r.where, err))
				continue
			}
			drain, _, err := r.inv.duration(c.flags, "drain")
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: --drain: %w", r.where, err))
				continue
			}
			switch {
			case !explicit:
				errs = append(errs, fmt.Errorf("%s: no --grace: give it explicitly, below terminationGracePeriodSeconds (%v)", r.where, period))
			case drain+grace >= period:
				errs = append(errs, fmt.Errorf("%s: --drain %v + --grace %v = %v, not below terminationGracePeriodSeconds %v: the kubelet's SIGKILL would come before vigil's records", r.where, drain, grace, drain+grace, period))
			}
			stops[r.container] = drain + grace
		}
		errs = append(errs, sidecarBudget(spec, stops, period)...)
	}

	// Records: a tombstone: or ready: target must be a record some vigil
	// of this pod writes, on a volume both containers mount.
	for _, u := range uses {
		for _, s := range u.inv.Flags {
			if s.Spec.Placeholder != "TARGET" {
				continue
			}
			kind, p, _ := strings.Cut(s.Value, ":")
			if kind != "tombstone" && kind != "ready" {
				continue
			}
			if err := recordReachable(runs, u, p); err != nil {
				errs = append(errs, fmt.Errorf("%s: %s: %w", u.where, s.From, err))
			}
		}
	}
	return errs
}

// sidecarBudget checks the stop budget of native sidecars (init containers
// with restartPolicy Always). On a deletion the kubelet stops them only
// once every main container has ended, and the later sidecars before the
// earlier ones, and each gets what is left of the pod's period (the
// kubelet's floor is 2s): so the longest stop of a main container plus
// the stops of the sidecars up to and including this one must stay below
// the period.
func sidecarBudget(spec *corev1.PodSpec, stops map[*corev1.Container]time.Duration, period time.Duration) []error {
	var mainStop time.Duration
	for i := range spec.Containers {
		mainStop = max(mainStop, stops[&spec.Containers[i]])
	}
	var errs []error
	used := mainStop
	for i := len(spec.InitContainers) - 1; i >= 0; i-- {
		c := &spec.InitContainers[i]
		if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
			continue
		}
		stop, ok := stops[c]
		if !ok {
			continue
		}
		used += stop
		if used >= period {
			errs = append(errs, fmt.Errorf("sidecar %s: stopped after the main containers (their longest --drain + --grace: %v) and any later sidecar, its own %v makes %v, not below terminationGracePeriodSeconds %v: the kubelet gives a sidecar only what is left of the period", c.Name, mainStop, stop, used, period))
		}
	}
	return errs
}

// recordReachable says whether the record at p, which u reads, is written
// by a vigil of the pod where u's container can read it.
func recordReachable(runs []vigilRun, u vigilRun, p string) error {
	for _, w := range runs {
		t, ok := w.inv.lookup("tombstone")
		if !ok || t.Value != p {
			continue
		}
		if w.container == u.container {
			return nil
		}
		wv, rv := volumeOf(w.container, p), volumeOf(u.container, p)
		if wv == "" || wv != rv {
			return fmt.Errorf("%s writes %s, but not on a volume both containers mount there", w.where, p)
		}
		return nil
	}
	return fmt.Errorf("no vigil in this pod writes a tombstone at %s", p)
}

// volumeOf names the volume (and the file's place in it) that holds p in
// a container: the mount with the longest path above p.
func volumeOf(ctr *corev1.Container, p string) string {
	best, rel := -1, ""
	for i, m := range ctr.VolumeMounts {
		mp := strings.TrimSuffix(m.MountPath, "/")
		if r, ok := strings.CutPrefix(p, mp+"/"); ok && (best < 0 || len(mp) > len(ctr.VolumeMounts[best].MountPath)) {
			best, rel = i, r
		}
	}
	if best < 0 {
		return ""
	}
	m := ctr.VolumeMounts[best]
	return m.Name + ":" + path.Join(m.SubPath, rel)
}

// argv is what a container runs, as the kubelet puts it together:
// command: replaces the image's ENTRYPOINT, args: its CMD.
func (c *checker) argv(ctr *corev1.Container) ([]string, error) {
	if len(ctr.Command) > 0 {
		return append(ctr.Command[:len(ctr.Command):len(ctr.Command)], ctr.Args...), nil
	}
	repo, _, _ := strings.Cut(ctr.Image, ":")
	if repo != exampleImage {
		return nil, fmt.Errorf("no command: and image %q is not %s, whose ENTRYPOINT this test knows", ctr.Image, exampleImage)
	}
	if len(ctr.Args) > 0 {
		return append(c.image.Entrypoint[:len(c.image.Entrypoint):len(c.image.Entrypoint)], ctr.Args...), nil
	}
	return append(c.image.Entrypoint[:len(c.image.Entrypoint):len(c.image.Entrypoint)], c.image.Cmd...), nil
}

// handler is a command a container's probe or lifecycle hook runs.
type handler struct {
	what string // "startupProbe", "preStop", …
	argv []string
}

// execHandlers are the exec commands of a container's probes and
// lifecycle hooks.
func execHandlers(ctr *corev1.Container) []handler {
	var out []handler
	probes := []struct {
		what string
		p    *corev1.Probe
	}{{"startupProbe", ctr.StartupProbe}, {"readinessProbe", ctr.ReadinessProbe}, {"livenessProbe", ctr.LivenessProbe}}
	for _, p := range probes {
		if p.p != nil && p.p.Exec != nil {
			out = append(out, handler{p.what, p.p.Exec.Command})
		}
	}
	if l := ctr.Lifecycle; l != nil {
		hooks := []struct {
			what string
			h    *corev1.LifecycleHandler
		}{{"postStart", l.PostStart}, {"preStop", l.PreStop}}
		for _, h := range hooks {
			if h.h != nil && h.h.Exec != nil {
				out = append(out, handler{h.what, h.h.Exec.Command})
			}
		}
	}
	return out
}

func isVigil(argv []string) bool {
	return len(argv) > 0 && path.Base(argv[0]) == "vigil"
}
