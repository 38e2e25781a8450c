package main

import (
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// env is the environment every init runs with. TINI_SUBREAPER makes tini
// behave as vigil and catatonit do when not PID 1 (become a subreaper)
// instead of printing a warning on every start; the others ignore it.
func (e *benchEnv) env() []string {
	return []string{"PATH=/usr/local/bin:/usr/bin:/bin", "TINI_SUBREAPER=1", helperEnv + "=1"}
}

// startup measures INIT -- /bin/true against /bin/true alone, round-robin:
// every iteration runs each program once, starting from a different one.
func (e *benchEnv) startup(progs []prog, res *Results) {
	e.logf("start-up: %d runs each", e.p.Startups)
	argvs := [][]string{{"/bin/true"}}
	for _, p := range progs {
		argvs = append(argvs, p.argv("/bin/true"))
	}
	null, _ := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	defer null.Close()
	attr := &syscall.ProcAttr{Env: e.env(), Files: []uintptr{null.Fd(), null.Fd(), null.Fd()}}
	times := make([][]float64, len(argvs))
	fails := make([]int, len(argvs))
	for i := 0; i < e.p.Startups+3; i++ { // three warm-up rounds
		for k := range argvs {
			j := (i + k) % len(argvs)
			t0 := time.Now()
			pid, err := syscall.ForkExec(argvs[j][0], argvs[j], attr)
			var ws syscall.WaitStatus
			if err == nil {
				_, err = syscall.Wait4(pid, &ws, 0, nil)
			}
			d := time.Since(t0)
			if err != nil || ws.ExitStatus() != 0 {
				fails[j]++
				continue
			}
			if i >= 3 {
				times[j] = append(times[j], float64(d.Nanoseconds())/1e6)
			}
		}
	}
	base := median(times[0])
	res.TrueMs = base
	for i := range progs {
		if fails[i+1] > 0 {
			e.logf("start-up: %s failed %d times", progs[i].Name, fails[i+1])
		}
		if len(times[i+1]) > 0 {
			res.Programs[i].set("startup_ms", median(times[i+1])-base)
		}
	}
}

// running is one init started for the resident measures, with the signal
// waiter as its child.
type running struct {
	cmd  *exec.Cmd
	fifo int
}

// startWaiters starts every init at once, each with a child that sleeps in
// sigtimedwait and writes to a FIFO, and waits until each child is ready.
// An init whose child does not come up is nil in the result and left out
// of the rest of the measure, not the whole run.
func (e *benchEnv) startWaiters(progs []prog, tag string) []*running {
	rs := make([]*running, len(progs))
	for i, p := range progs {
		fifo := filepath.Join(e.tmp, fmt.Sprintf("sig-%s-%d", tag, i))
		os.Remove(fifo)
		if err := unix.Mkfifo(fifo, 0o600); err != nil {
			e.logf("mkfifo: %v", err)
			continue
		}
		// O_RDWR: opening does not wait for the writer, and reads block.
		fd, err := unix.Open(fifo, unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			e.logf("open fifo: %v", err)
			continue
		}
		argv := p.argv(e.self, "sigwait", fifo)
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = e.env()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			e.logf("%s: %v", p.Name, err)
			unix.Close(fd)
			continue
		}
		rs[i] = &running{cmd: cmd, fifo: fd}
	}
	for i, r := range rs {
		if r == nil {
			continue
		}
		if _, err := readByte(r.fifo, 10*time.Second); err != nil {
			e.logf("%s: signal waiter not ready: %v", progs[i].Name, err)
			r.stop()
			rs[i] = nil
		}
	}
	return rs
}

// stop kills the init and its child, the child first: killing an init
// leaves its child behind.
func (r *running) stop() {
	for _, c := range children(r.cmd.Process.Pid) {
		unix.Kill(c, unix.SIGKILL)
	}
	r.cmd.Process.Kill()
	r.cmd.Wait()
	unix.Close(r.fifo)
}

// signalOnce sends SIGUSR1 to the init and returns how long it took to
// reach the child.
func (r *running) signalOnce() (time.Duration, error) {
	t0 := time.Now()
	if err := unix.Kill(r.cmd.Process.Pid, unix.SIGUSR1); err != nil {
		return 0, fmt.Errorf("kill: %v", err)
	}
	if _, err := readByte(r.fifo, 2*time.Second); err != nil {
		return 0, fmt.Errorf("signal not forwarded: %v", err)
	}
	return time.Since(t0), nil
}

// resident starts every init at once with the signal waiter as its child
// and measures them side by side: memory after they settle, then context
// switches over one idle window shared by all (and memory again after it,
// which includes whatever the Go runtime's periodic GC touched), then
// signal latency round-robin.
func (e *benchEnv) resident(progs []prog, res *Results, memory, idle, signal bool) {
	rs := e.startWaiters(progs, "resident")
	defer func() {
		for _, r := range rs {
			if r != nil {
				r.stop()
			}
		}
	}()
	time.Sleep(e.p.SettleTime)
	if memory {
		for i, r := range rs {
			if r != nil {
				e.sampleMemory(i, r.cmd.Process.Pid)
			}
		}
	}
	if idle {
		e.logf("idle: one window of %s for all", e.p.Idle)
		before := make([]int, len(rs))
		for i, r := range rs {
			if r != nil {
				before[i] = ctxSwitches(r.cmd.Process.Pid)
			}
		}
		t0 := time.Now()
		time.Sleep(e.p.Idle)
		mins := time.Since(t0).Minutes()
		for i, r := range rs {
			if r == nil {
				continue
			}
			res.Programs[i].set("idle_wakeups_per_min", float64(ctxSwitches(r.cmd.Process.Pid)-before[i])/mins)
			if memory {
				res.Programs[i].set("rss_after_idle_kb", float64(procStatus(r.cmd.Process.Pid)["VmRSS"]))
			}
		}
	}
	if signal {
		e.logf("signals: %d each, round-robin", e.p.Signals)
		lat := make([][]float64, len(rs))
		for n := 0; n < e.p.Signals+5; n++ { // five warm-up rounds
			for k := range rs {
				i := (n + k) % len(rs)
				if rs[i] == nil {
					continue
				}
				d, err := rs[i].signalOnce()
				if err != nil {
					e.logf("%s: %v", progs[i].Name, err)
					rs[i].stop()
					rs[i] = nil
					continue
				}
				if n >= 5 {
					lat[i] = append(lat[i], float64(d.Nanoseconds())/1e3)
				}
				// Let every init fall idle again: a signal in real life
				// finds it asleep, not still busy with the last one.
				time.Sleep(time.Millisecond)
			}
		}
		for i := range rs {
			if rs[i] == nil {
				continue
			}
			res.Programs[i].set("signal_p50_us", percentile(lat[i], 50))
			res.Programs[i].set("signal_p99_us", percentile(lat[i], 99))
		}
	}
}

// memoryKeys are the idle memory figures, from /proc/PID/status.
var memoryKeys = []struct{ key, field string }{
	{"rss_kb", "VmRSS"}, {"rss_anon_kb", "RssAnon"}, {"rss_file_kb", "RssFile"}, {"hwm_kb", "VmHWM"}, {"threads", "Threads"},
}

// sampleMemory records the idle memory of program i, running as pid.
func (e *benchEnv) sampleMemory(i, pid int) {
	if e.mem == nil {
		e.mem = map[int]map[string][]float64{}
	}
	if e.mem[i] == nil {
		e.mem[i] = map[string][]float64{}
	}
	st := procStatus(pid)
	for _, k := range memoryKeys {
		e.mem[i][k.key] = append(e.mem[i][k.key], float64(st[k.field]))
	}
}

// setMemory sets the idle memory figures: the median over every settled
// start, since one start varies by ±100 kB (how many threads the runtime
// happened to start, which heap spans each got).
func (e *benchEnv) setMemory(res *Results) {
	for i, byKey := range e.mem {
		for key, xs := range byKey {
			res.Programs[i].set(key, median(xs))
		}
		res.Programs[i].MemorySamples = len(byKey["rss_kb"])
	}
}

// firstSignal measures the first signal an init forwards after it has
// settled, the one that pays for whatever the init dropped from memory
// while idle (pages of its binary fault back in). Every round starts all
// the inits afresh, lets them settle, samples their memory (with memory
// true), and signals each once, in an order that rotates from round to
// round.
func (e *benchEnv) firstSignal(progs []prog, res *Results, memory bool) {
	e.logf("first signal: %d fresh starts each", e.p.FirstSignals)
	lat := make([][]float64, len(progs))
	for round := 0; round < e.p.FirstSignals; round++ {
		rs := e.startWaiters(progs, "first")
		time.Sleep(e.p.SettleTime)
		if memory {
			for i, r := range rs {
				if r != nil {
					e.sampleMemory(i, r.cmd.Process.Pid)
				}
			}
		}
		for k := range rs {
			i := (round + k) % len(rs)
			if rs[i] == nil {
				continue
			}
			d, err := rs[i].signalOnce()
			if err != nil {
				e.logf("%s: first signal: %v", progs[i].Name, err)
				continue
			}
			lat[i] = append(lat[i], float64(d.Nanoseconds())/1e3)
		}
		for _, r := range rs {
			if r != nil {
				r.stop()
			}
		}
	}
	for i := range progs {
		if len(lat[i]) > 0 {
			res.Programs[i].set("signal_first_us", median(lat[i]))
		}
	}
}

// readByte waits up to d for one byte on fd.
func readByte(fd int, d time.Duration) (byte, error) {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(pfd, int(d.Milliseconds()))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, fmt.Errorf("nothing within %s", d)
		}
		break
	}
	b := make([]byte, 1)
	if _, err := unix.Read(fd, b); err != nil {
		return 0, err
	}
	return b[0], nil
}

// ctxSwitches sums the voluntary and involuntary context switches of every
// thread of pid: each is a wake-up.
func ctxSwitches(pid int) int {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	n := 0
	for _, t := range tasks {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, t.Name()))
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "voluntary_ctxt_switches:") || strings.HasPrefix(l, "nonvoluntary_ctxt_switches:") {
				_, v, _ := strings.Cut(l, ":")
				n += atoi(v)
			}
		}
	}
	return n
}

// storm runs each init as PID 1 of a new PID namespace with the storm
// child, one after another, rotating the order every round. The bench
// samples the init's children from outside for the peak of unreaped
// orphans.
func (e *benchEnv) storm(progs []prog, res *Results) {
	e.logf("orphan storm: %d orphans, %d rounds each", e.p.Orphans, e.p.Storms)
	rates := make([][]float64, len(progs))
	peaks := make([]int, len(progs))
	left := make([]int, len(progs))
	hwm := make([]int, len(progs))
	before := make([]int, len(progs))
	anon, file := make([]int, len(progs)), make([]int, len(progs))
	ok := make([]bool, len(progs))
	for i := range ok {
		ok[i] = true
	}
	cg := newPidsCgroup(e.p.PidsMax)
	defer cg.remove()
	if cg.procs == "-" {
		e.logf("no pids cgroup: the storm is bounded only by pid_max")
	}
	for round := 0; round < e.p.Storms; round++ {
		for k := range progs {
			i := (round + k) % len(progs)
			if !ok[i] {
				continue
			}
			r, peak, err := e.stormOnce(progs[i], cg.procs)
			if err != nil {
				e.logf("%s: storm: %v", progs[i].Name, err)
				ok[i] = false
				continue
			}
			rates[i] = append(rates[i], float64(r.Orphans)/(float64(r.ElapsedNs)/1e9))
			peaks[i] = max(peaks[i], peak)
			left[i] = max(left[i], r.Left)
			hwm[i] = max(hwm[i], r.HWMkB)
			before[i] = max(before[i], r.BeforekB)
			anon[i], file[i] = max(anon[i], r.AnonkB), max(file[i], r.FilekB)
			e.logf("%s: %.0f orphans/s, peak %d unreaped, %d left, %d retries", progs[i].Name,
				rates[i][len(rates[i])-1], peak, r.Left, r.Retries)
		}
	}
	for i := range progs {
		if !ok[i] || len(rates[i]) == 0 {
			continue
		}
		res.Programs[i].set("orphans_per_s", median(rates[i]))
		res.Programs[i].set("peak_unreaped", float64(peaks[i]))
		res.Programs[i].set("left_after_storm", float64(left[i]))
		res.Programs[i].set("hwm_after_storm_kb", float64(hwm[i]))
		res.Programs[i].set("rss_before_storm_kb", float64(before[i]))
		// Not in the table: what the growth over the storm is made of.
		res.Programs[i].set("rss_anon_after_storm_kb", float64(anon[i]))
		res.Programs[i].set("rss_file_after_storm_kb", float64(file[i]))
	}
}

func (e *benchEnv) stormOnce(p prog, cgroupProcs string) (stormReport, int, error) {
	var r stormReport
	report := filepath.Join(e.tmp, "storm.json")
	os.Remove(report)
	argv := append([]string{e.self, "shim", cgroupProcs}, p.argv(e.self, "storm", strconv.Itoa(e.p.Orphans), report, e.p.SettleTime.String())...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = e.env()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWPID | unix.CLONE_NEWNS}
	if err := cmd.Start(); err != nil {
		return r, 0, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	peak := 0
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(5 * time.Minute)
	for {
		select {
		case err := <-done:
			if err != nil {
				return r, peak, fmt.Errorf("init: %v\n%s", err, stderr.String())
			}
			b, err := os.ReadFile(report)
			if err != nil {
				return r, peak, fmt.Errorf("no report: %v\n%s", err, stderr.String())
			}
			return r, peak, json.Unmarshal(b, &r)
		case <-tick.C:
			// Every child of the init but the storm child is an orphan
			// not yet reaped.
			if n := len(children(cmd.Process.Pid)) - 1; n > peak {
				peak = n
			}
		case <-timeout:
			cmd.Process.Kill()
			return r, peak, fmt.Errorf("did not finish within 5 minutes")
		}
	}
}

// pidsCgroup bounds the storm's processes, so that an init that falls
// behind makes the storm wait (EAGAIN) instead of exhausting the machine's
// pids for everyone else.
type pidsCgroup struct{ dir, procs string }

func newPidsCgroup(max int) pidsCgroup {
	name := fmt.Sprintf("vigil-bench-%d", os.Getpid())
	for _, parent := range []string{"/sys/fs/cgroup/pids", "/sys/fs/cgroup"} {
		dir := filepath.Join(parent, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, "pids.max"), []byte(strconv.Itoa(max)), 0o644); err != nil {
			os.Remove(dir)
			continue
		}
		return pidsCgroup{dir: dir, procs: filepath.Join(dir, "cgroup.procs")}
	}
	return pidsCgroup{procs: "-"}
}

func (c pidsCgroup) remove() {
	if c.dir != "" {
		os.Remove(c.dir)
	}
}

// Binary is the size of an init's executable and whether it is static.
type Binary struct {
	Bytes  int64 `json:"bytes"`
	Static bool  `json:"static"`
}

func binaryInfo(path string) Binary {
	var b Binary
	if fi, err := os.Stat(path); err == nil {
		b.Bytes = fi.Size()
	}
	f, err := elf.Open(path)
	if err != nil {
		return b
	}
	defer f.Close()
	b.Static = true
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b.Static = false
		}
	}
	return b
}

func median(xs []float64) float64 { return percentile(xs, 50) }

// percentile is the nearest-rank percentile of xs.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	k := int(p/100*float64(len(s))+0.5) - 1
	return s[min(max(k, 0), len(s)-1)]
}
