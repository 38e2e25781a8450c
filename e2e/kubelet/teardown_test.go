package kubelet

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// teardown stops the node and removes everything it made: the kubelet's
// pods (it stops their containers when their manifests go), containerd's
// tasks and shims, containerd, the mounts and cgroups they made, and the
// kernel settings the kubelet changed. It says what it could not undo.
func (n *node) teardown() error {
	var errs []error
	if n.kubeletCmd != nil {
		ms, _ := filepath.Glob(filepath.Join(n.manifests, "*"))
		for _, m := range ms {
			os.Remove(m)
		}
		if err := waitFor(90*time.Second, "the kubelet stopping every pod", func() (bool, error) {
			out, err := n.ctr("-n", "k8s.io", "tasks", "ls")
			return err == nil && !strings.Contains(out, "RUNNING"), nil
		}); err != nil {
			errs = append(errs, err)
		}
		if err := stopDaemon(n.kubeletCmd, 20*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	var ids []string
	if n.containerd != nil {
		out, _ := n.ctr("-n", "k8s.io", "containers", "ls", "-q")
		ids = strings.Fields(out)
		for _, id := range ids {
			n.ctr("-n", "k8s.io", "tasks", "kill", "-s", "SIGKILL", id)
		}
		for _, id := range ids {
			// The shim of a task exits once its task is deleted.
			waitFor(10*time.Second, "task "+id+" deleted", func() (bool, error) {
				out, err := n.ctr("-n", "k8s.io", "tasks", "rm", "-f", id)
				return err == nil || strings.Contains(out, "not found"), nil
			})
			n.ctr("-n", "k8s.io", "containers", "rm", id)
		}
		if err := stopDaemon(n.containerd, 20*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	// Shims a crashed containerd left: ours are the ones that name our socket.
	for _, pid := range processesNaming(n.sock) {
		errs = append(errs, fmt.Errorf("shim %d outlived containerd: killed", pid))
		unix.Kill(pid, unix.SIGKILL)
	}
	// The kubelet bind-mounts its root directory onto itself (to make it
	// a shared mount): that one is expected, any other is left over.
	unix.Unmount(filepath.Join(n.dir, "kubelet"), unix.MNT_DETACH)
	if err := unmountUnder(n.dir); err != nil {
		errs = append(errs, err)
	}
	if err := removeCgroups(ids); err != nil {
		errs = append(errs, err)
	}
	if !n.hadCgroupParent {
		// containerd's parent of the pods' cgroups, made on first use.
		ps, _ := filepath.Glob("/sys/fs/cgroup/*/" + cgroupParent)
		for _, p := range ps {
			// EBUSY: another containerd's pods are in it now.
			if err := unix.Rmdir(p); err != nil && !errors.Is(err, unix.EBUSY) {
				errs = append(errs, fmt.Errorf("rmdir %s: %w", p, err))
			}
		}
	}
	for k, v := range n.sysctls {
		if err := os.WriteFile(sysctlPath(k), []byte(v), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restoring %s=%s: %w", k, v, err))
		}
	}
	for _, p := range n.made {
		if err := removeMade(p); err != nil {
			errs = append(errs, err)
		}
	}
	if err := removeLogLinks(n.dir, n.varLogCtrs); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(n.dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// processesNaming lists the processes whose command line contains s.
func processesNaming(s string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), s) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// unmountUnder detaches every mount below dir, deepest first, and says
// how many there were: none should be left by a clean teardown.
func unmountUnder(dir string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			mounts = append(mounts, fields[4])
		}
	}
	var errs []error
	for i := len(mounts) - 1; i >= 0; i-- {
		if err := unix.Unmount(mounts[i], unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("umount %s: %w", mounts[i], err))
		}
	}
	if len(mounts) > 0 {
		errs = append(errs, fmt.Errorf("%d mounts were left under %s: %q", len(mounts), dir, mounts))
	}
	return errors.Join(errs...)
}

// removeCgroups removes the cgroups runc made for the containers ids, in
// every hierarchy, and says which were still there.
func removeCgroups(ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var left []string
	filepath.WalkDir("/sys/fs/cgroup", func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if want[d.Name()] {
			left = append(left, p)
			return filepath.SkipDir
		}
		return nil
	})
	var errs []error
	for _, p := range left {
		if err := unix.Rmdir(p); err != nil {
			errs = append(errs, fmt.Errorf("rmdir %s: %w", p, err))
		}
	}
	if len(left) > 0 {
		errs = append(errs, fmt.Errorf("%d cgroups were left: %q", len(left), left))
	}
	return errors.Join(errs...)
}

// removeMade removes a fixed path the node made: /var/lib/kubelet is the
// kubelet's alone; /run/containerd may be shared with another containerd
// started meanwhile, so only its empty directories go.
func removeMade(p string) error {
	if p == "/var/lib/kubelet" {
		return os.RemoveAll(p)
	}
	var dirs []string
	filepath.WalkDir(p, func(q string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, q)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		os.Remove(dirs[i]) // fails, as it should, when another's sockets are in it
	}
	return nil
}

// removeLogLinks removes the kubelet's symlinks in /var/log/containers
// that point into dir, and the directory when the kubelet created it.
func removeLogLinks(dir string, created bool) error {
	ents, err := os.ReadDir("/var/log/containers")
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	for _, e := range ents {
		p := filepath.Join("/var/log/containers", e.Name())
		if t, err := os.Readlink(p); err == nil && strings.HasPrefix(t, dir+"/") {
			os.Remove(p)
		}
	}
	if created {
		return os.Remove("/var/log/containers")
	}
	return nil
}
