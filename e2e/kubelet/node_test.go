// Package kubelet runs vigil in real pods: a kubelet of a current release
// in standalone mode (static pods from a directory, no API server) on
// Debian's containerd with its CRI plugin, and images the tests build
// themselves, since no registry is reachable. One node serves every test
// of the package; it is started by the first test that needs it and torn
// down by TestMain, leaving no process, mount or cgroup behind.
package kubelet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// kubeletVersion is the release built and run; the staging modules in
// build/go.mod are replaced with the matching v0.x.y.
const kubeletVersion = "v1.34.4"

// nodeName is the kubelet's --hostname-override: a static pod named P is
// listed as P-vigil-node.
const nodeName = "vigil-node"

// Images the tests build: one layer with busybox, vigil, tini and the
// helper. The sandbox image is the same layer with the helper's pause.
const (
	testImage    = "docker.io/library/vigil-kubelet-test:1"
	exampleImage = "docker.io/library/vigil-example:1" // the name examples/kubernetes uses
	pauseImage   = "docker.io/library/vigil-kubelet-pause:1"
)

var (
	theNode  *node
	nodeErr  error
	nodeOnce sync.Once
	nodeMu   sync.Mutex // guards theNode for TestMain's teardown
)

func TestMain(m *testing.M) {
	code := m.Run()
	nodeMu.Lock()
	n := theNode
	nodeMu.Unlock()
	if n != nil {
		printMatrix(n.versions)
		if err := n.teardown(); err != nil {
			fmt.Fprintln(os.Stderr, "kubelet node teardown:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// needNode returns the running node, starting it on first use. It skips
// the test with the reason when the node cannot start here, and fails it
// when CI=true: CI runs as root with everything installed.
func needNode(t *testing.T) *node {
	t.Helper()
	nodeOnce.Do(func() {
		n, err := startNode()
		nodeMu.Lock()
		theNode, nodeErr = n, err
		nodeMu.Unlock()
	})
	if nodeErr != nil {
		var skip skipError
		if errors.As(nodeErr, &skip) && os.Getenv("CI") != "true" {
			t.Skip(nodeErr)
		}
		t.Fatal(nodeErr)
	}
	return theNode
}

// skipError is a reason the node cannot run here that is not a defect.
type skipError struct{ reason string }

func (e skipError) Error() string { return e.reason }

// node is one containerd and one kubelet under a directory of their own.
type node struct {
	dir        string // everything of the node, removed at teardown
	vigil      string // the vigil binary in the images
	kubelet    string // the kubelet binary
	sock       string // containerd's socket
	manifests  string // the kubelet's staticPodPath
	records    string // parent of the pods' hostPath volumes
	port       int    // the kubelet's read-only port: GET /pods
	vigilHelp  string // vigil --help, to gate on flags not yet merged
	versions   string // kubelet and containerd versions, for the log
	containerd *exec.Cmd
	kubeletCmd *exec.Cmd
	sysctls    map[string]string // kernel settings the kubelet changes, as they were
	varLogCtrs bool              // /var/log/containers was created by the kubelet here
	// hadCgroupParent: cgroupParent was there before the node started.
	hadCgroupParent bool
	// made: the fixed host paths the kubelet and containerd's shims use
	// that did not exist before the node started.
	made []string
}

// fixedPaths are the host paths the kubelet and containerd 1.6 use
// whatever their configuration: the device plugin socket under
// /var/lib/kubelet, the shims' sockets under /run/containerd/s.
var fixedPaths = []string{"/var/lib/kubelet", "/run/containerd"}

// cgroupParent is where containerd puts the pods' cgroups (in each v1
// hierarchy) when the kubelet names no parent (cgroupsPerQOS false).
const cgroupParent = "k8s.io"

// startNode builds what the node needs and starts containerd and the
// kubelet. On an error after something started, it tears down first.
func startNode() (*node, error) {
	if os.Geteuid() != 0 {
		return nil, skipError{"not root: containerd and the kubelet need root"}
	}
	for _, p := range []string{"containerd", "ctr", "runc"} {
		if _, err := exec.LookPath(p); err != nil {
			return nil, skipError{fmt.Sprintf("%s not installed (Debian docker.io brings containerd and runc)", p)}
		}
	}
	for _, p := range []string{"/usr/lib/cni/loopback", "/bin/busybox", "/usr/bin/tini-static"} {
		if _, err := os.Stat(p); err != nil {
			return nil, skipError{fmt.Sprintf("%s missing (.ci/install installs it): %v", p, err)}
		}
	}
	dir, err := os.MkdirTemp("", "vigil-kubelet-")
	if err != nil {
		return nil, err
	}
	n := &node{dir: dir, sock: filepath.Join(dir, "containerd.sock"),
		manifests: filepath.Join(dir, "manifests"), records: filepath.Join(dir, "records")}
	if err := n.start(); err != nil {
		if terr := n.teardown(); terr != nil {
			err = fmt.Errorf("%w; teardown: %v", err, terr)
		}
		return nil, err
	}
	return n, nil
}

func (n *node) start() error {
	for _, d := range []string{n.manifests, n.records, filepath.Join(n.dir, "bin")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	var err error
	if n.kubelet, err = kubeletBinary(); err != nil {
		return err
	}
	n.vigil = filepath.Join(n.dir, "bin", "vigil")
	helper := filepath.Join(n.dir, "bin", "helper")
	if err := goBuild(filepath.Join("..", ".."), n.vigil, "."); err != nil {
		return err
	}
	if err := goBuild(".", helper, "./helper"); err != nil {
		return err
	}
	help, err := exec.Command(n.vigil, "--help").CombinedOutput()
	if err != nil {
		return fmt.Errorf("vigil --help: %v\n%s", err, help)
	}
	n.vigilHelp = string(help)
	n.sysctls = map[string]string{}
	for _, k := range kubeletSysctls {
		b, err := os.ReadFile(sysctlPath(k))
		if err != nil {
			return err
		}
		n.sysctls[k] = strings.TrimSpace(string(b))
	}
	for _, p := range fixedPaths {
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			n.made = append(n.made, p)
		}
	}
	if ps, _ := filepath.Glob("/sys/fs/cgroup/*/" + cgroupParent); len(ps) > 0 {
		n.hadCgroupParent = true
	}
	if _, err := os.Lstat("/var/log/containers"); errors.Is(err, os.ErrNotExist) {
		n.varLogCtrs = true
	}
	if err := n.startContainerd(); err != nil {
		return err
	}
	if err := n.importImages(helper); err != nil {
		return err
	}
	if err := n.startKubelet(); err != nil {
		return err
	}
	kv, _ := exec.Command(n.kubelet, "--version").CombinedOutput()
	cv, _ := exec.Command("containerd", "--version").CombinedOutput()
	rv, _ := exec.Command("runc", "--version").CombinedOutput()
	runcVersion, _, _ := strings.Cut(string(rv), "\n")
	n.versions = fmt.Sprintf("%s; %s; %s; cgroup %s", strings.TrimSpace(string(kv)), strings.TrimSpace(string(cv)), runcVersion, cgroupVersion())
	return nil
}

// kubeletBinary returns the kubelet, built once per version into the user's
// cache directory: a cold build costs about 5 CPU-minutes, a warm run
// nothing. go install refuses k8s.io/kubernetes (its go.mod replaces the
// staging modules with local paths), so build/ is a module that requires
// it and replaces each staging module with its published version.
func kubeletBinary() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(cache, "vigil", "kubelet-"+kubeletVersion, "kubelet")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", err
	}
	tmp := fmt.Sprintf("%s.%d", bin, os.Getpid())
	defer os.Remove(tmp)
	start := time.Now()
	v := "k8s.io/component-base/version."
	major, minor, _ := strings.Cut(strings.TrimPrefix(kubeletVersion, "v"), ".")
	minor, _, _ = strings.Cut(minor, ".")
	ldflags := fmt.Sprintf("-X %sgitVersion=%s -X %sgitMajor=%s -X %sgitMinor=%s", v, kubeletVersion, v, major, v, minor)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags, "-o", tmp, "k8s.io/kubernetes/cmd/kubelet")
	cmd.Dir = "build"
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the kubelet %s (in e2e/kubelet/build): %v\n%s", kubeletVersion, err, out)
	}
	fmt.Fprintf(os.Stderr, "built the kubelet %s in %v into %s\n", kubeletVersion, time.Since(start).Round(time.Second), bin)
	return bin, os.Rename(tmp, bin)
}

// goBuild builds a static binary, as the images need.
func goBuild(dir, out, pkg string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s in %s: %v\n%s", pkg, dir, err, b)
	}
	return nil
}

func cgroupVersion() string {
	var st syscall.Statfs_t
	if err := syscall.Statfs("/sys/fs/cgroup", &st); err == nil && st.Type == 0x63677270 {
		return "v2"
	}
	return "v1"
}

// kubeletSysctls are the kernel settings the kubelet sets at start
// (protectKernelDefaults false); the node puts them back at teardown.
var kubeletSysctls = []string{"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops", "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes"}

func sysctlPath(k string) string { return "/proc/sys/" + k }

func (n *node) startContainerd() error {
	cni := filepath.Join(n.dir, "cni")
	if err := os.MkdirAll(cni, 0o755); err != nil {
		return err
	}
	// Only a loopback network: the pods use the host's network.
	lo := `{"cniVersion":"0.4.0","name":"lo","plugins":[{"type":"loopback"}]}`
	if err := os.WriteFile(filepath.Join(cni, "99-loopback.conflist"), []byte(lo), 0o644); err != nil {
		return err
	}
	// restrict_oom_score_adj: these machines run as root without
	// CAP_SYS_RESOURCE, and runc fails to give the sandbox the kubelet's
	// oom_score_adj of -998 ("can't get final child's PID from pipe").
	cfg := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.internal.v1.tracing"]
[grpc]
  address = %[3]q
[ttrpc]
  address = %[4]q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[5]q
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = %[8]q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %[6]q
[plugins."io.containerd.internal.v1.opt"]
  path = %[7]q
`, filepath.Join(n.dir, "containerd-root"), filepath.Join(n.dir, "containerd-state"), n.sock,
		n.sock+".ttrpc", pauseImage, cni, filepath.Join(n.dir, "opt"), filepath.Join(n.dir, "runc"))
	cfgPath := filepath.Join(n.dir, "containerd.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	var err error
	n.containerd, err = startLogged(filepath.Join(n.dir, "containerd.log"), "containerd", "--config", cfgPath)
	if err != nil {
		return err
	}
	return waitFor(30*time.Second, "containerd answering on "+n.sock, func() (bool, error) {
		_, err := n.ctr("version")
		return err == nil, nil
	})
}

// ctr runs containerd's client against this node's containerd.
func (n *node) ctr(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ctr", append([]string{"--address", n.sock}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (n *node) importImages(helper string) error {
	files := map[string]imageFile{
		"/bin/busybox":     {Src: "/bin/busybox", Mode: 0o755},
		"/vigil":           {Src: n.vigil, Mode: 0o755},
		"/tini":            {Src: "/usr/bin/tini-static", Mode: 0o755},
		"/helper":          {Src: helper, Mode: 0o755},
		"/etc/passwd":      {Data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"), Mode: 0o644},
		"/etc/group":       {Data: []byte("root:x:0:\nnogroup:x:65534:\n"), Mode: 0o644},
		"/www/index.html":  {Data: []byte("served from behind vigil\n"), Mode: 0o644},
		"/run/vigil":       {Dir: true, Mode: 0o755},
		"/tmp":             {Dir: true, Mode: 0o1777},
		"/root":            {Dir: true, Mode: 0o700},
		"/proc":            {Dir: true, Mode: 0o555},
		"/sys":             {Dir: true, Mode: 0o555},
		"/etc/hosts":       {Data: []byte("127.0.0.1 localhost\n"), Mode: 0o644},
		"/etc/resolv.conf": {Data: nil, Mode: 0o644},
		"/var/run":         {Link: "/run"},
	}
	out, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		return fmt.Errorf("busybox --list: %v", err)
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet != "busybox" {
			files["/bin/"+applet] = imageFile{Link: "busybox"}
		}
	}
	images := []imageSpec{
		{Names: []string{testImage, exampleImage}, Files: files,
			Entrypoint: []string{"/vigil", "--name=app", "--tombstone=/run/vigil/app.json", "--ready-on=tcp:127.0.0.1:8080", "--"},
			Cmd:        []string{"httpd", "-f", "-p", "8080", "-h", "/www"}},
		{Names: []string{pauseImage}, Files: files, Entrypoint: []string{"/helper", "pause"}},
	}
	for i, img := range images {
		var buf bytes.Buffer
		if err := ociTar(img, &buf); err != nil {
			return err
		}
		p := filepath.Join(n.dir, fmt.Sprintf("image-%d.tar", i))
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			return err
		}
		if _, err := n.ctr("-n", "k8s.io", "images", "import", "--snapshotter", "native", p); err != nil {
			return err
		}
		os.Remove(p)
	}
	return nil
}

// kubeletConfig is the part of KubeletConfiguration (kubelet.config.k8s.io/
// v1beta1) the node sets; the kubelet decodes it strictly.
type kubeletConfig struct {
	Kind                          string            `json:"kind"`
	APIVersion                    string            `json:"apiVersion"`
	StaticPodPath                 string            `json:"staticPodPath"`
	FileCheckFrequency            string            `json:"fileCheckFrequency"`
	SyncFrequency                 string            `json:"syncFrequency"`
	Address                       string            `json:"address"`
	Port                          int               `json:"port"`
	ReadOnlyPort                  int               `json:"readOnlyPort"`
	HealthzBindAddress            string            `json:"healthzBindAddress"`
	HealthzPort                   int               `json:"healthzPort"`
	CgroupDriver                  string            `json:"cgroupDriver"`
	CgroupsPerQOS                 bool              `json:"cgroupsPerQOS"`
	EnforceNodeAllocatable        []string          `json:"enforceNodeAllocatable"`
	FailSwapOn                    bool              `json:"failSwapOn"`
	FailCgroupV1                  bool              `json:"failCgroupV1"`
	ContainerRuntimeEndpoint      string            `json:"containerRuntimeEndpoint"`
	PodLogsDir                    string            `json:"podLogsDir"`
	EvictionHard                  map[string]string `json:"evictionHard"`
	ImageGCHighThresholdPercent   int               `json:"imageGCHighThresholdPercent"`
	ImageGCLowThresholdPercent    int               `json:"imageGCLowThresholdPercent"`
	Authentication                map[string]any    `json:"authentication"`
	Authorization                 map[string]any    `json:"authorization"`
	ResolvConf                    string            `json:"resolvConf"`
	ProtectKernelDefaults         bool              `json:"protectKernelDefaults"`
	LocalStorageCapacityIsolation bool              `json:"localStorageCapacityIsolation"`
}

func (n *node) startKubelet() error {
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	n.port = ports[0]
	cfg := kubeletConfig{
		Kind: "KubeletConfiguration", APIVersion: "kubelet.config.k8s.io/v1beta1",
		StaticPodPath:      n.manifests,
		FileCheckFrequency: "1s", // how soon a new or removed manifest is seen
		SyncFrequency:      "5s",
		Address:            "127.0.0.1", Port: ports[1], ReadOnlyPort: n.port,
		HealthzBindAddress: "127.0.0.1", HealthzPort: 0,
		CgroupDriver: "cgroupfs", CgroupsPerQOS: false, EnforceNodeAllocatable: []string{},
		FailSwapOn: false, FailCgroupV1: false,
		ContainerRuntimeEndpoint: "unix://" + n.sock,
		PodLogsDir:               filepath.Join(n.dir, "pod-logs"),
		// A busy shared disk must not evict the test's pods or its images.
		EvictionHard:                map[string]string{"memory.available": "1Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
		ImageGCHighThresholdPercent: 100, ImageGCLowThresholdPercent: 99,
		Authentication: map[string]any{"anonymous": map[string]any{"enabled": true}, "webhook": map[string]any{"enabled": false}},
		Authorization:  map[string]any{"mode": "AlwaysAllow"},
		// The host's resolv.conf is not the pods' business here: no DNS.
		ResolvConf: "",
		// false: the kubelet sets the kernel settings it wants (restored
		// at teardown) instead of refusing to start.
		ProtectKernelDefaults: false,
		// No ephemeral-storage accounting: nothing to evict a pod for.
		LocalStorageCapacityIsolation: false,
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(n.dir, "kubelet.json")
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		return err
	}
	n.kubeletCmd, err = startLogged(filepath.Join(n.dir, "kubelet.log"), n.kubelet,
		"--config="+cfgPath, "--root-dir="+filepath.Join(n.dir, "kubelet"), "--cert-dir="+filepath.Join(n.dir, "pki"),
		"--hostname-override="+nodeName, "--v=2")
	if err != nil {
		return err
	}
	return waitFor(60*time.Second, "the kubelet's read-only port answering /pods", func() (bool, error) {
		if n.kubeletCmd.ProcessState != nil {
			return false, fmt.Errorf("the kubelet exited: %s\n%s", n.kubeletCmd.ProcessState, tail(filepath.Join(n.dir, "kubelet.log"), 30))
		}
		_, err := n.pods()
		return err == nil, nil
	})
}

// startLogged starts a daemon with its output in a file. A goroutine
// waits for it, so that its ProcessState says when it died.
func startLogged(logPath, name string, args ...string) (*exec.Cmd, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// Pdeathsig: a test binary killed by its -timeout (TestMain's teardown
	// never runs) still stops the kubelet and containerd.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); f.Close(); close(done) }()
	daemons.Store(cmd, done)
	return cmd, nil
}

// daemons maps each started daemon to the channel closed when it exited.
var daemons sync.Map

// stopDaemon sends SIGTERM, and SIGKILL when it is not gone after d.
func stopDaemon(cmd *exec.Cmd, d time.Duration) error {
	if cmd == nil || cmd.Process == nil {
		return nil
	}
	v, _ := daemons.Load(cmd)
	done := v.(chan struct{})
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return nil
	case <-time.After(d):
	}
	cmd.Process.Kill()
	select {
	case <-done:
		return fmt.Errorf("%s did not stop on SIGTERM within %v: SIGKILLed", cmd.Path, d)
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) did not die of SIGKILL", cmd.Path, cmd.Process.Pid)
	}
}

func freePorts(k int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range k {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitFor polls cond until it holds, fails, or d has passed: each wait of
// these tests is for an observable effect and has a bound.
func waitFor(d time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(d)
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %v", what, d)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// pods is the kubelet's own list of its pods, with their status.
func (n *node) pods() ([]corev1.Pod, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://127.0.0.1:" + strconv.Itoa(n.port) + "/pods")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /pods: %s", resp.Status)
	}
	var list corev1.PodList
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, fmt.Errorf("GET /pods: %w", err)
	}
	return list.Items, nil
}

func tail(path string, lines int) string {
	b, _ := os.ReadFile(path)
	l := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}
