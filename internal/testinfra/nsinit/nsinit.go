// Package nsinit turns a process that was cloned into new PID and mount
// namespaces into a launcher for the init under test: the e2e tests and
// the benchmark both run vigil (and its peers) as PID 1 that way.
package nsinit

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Exec mounts a /proc for the new PID namespace (after making the mount
// namespace private, so the host's /proc is untouched), moves the process
// into the cgroup whose cgroup.procs file is cgroupProcs (none if ""), and
// execs argv with env, keeping the pid: the program becomes PID 1. It
// returns only on failure.
func Exec(argv, env []string, cgroupProcs string) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	if cgroupProcs != "" {
		if err := os.WriteFile(cgroupProcs, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			return fmt.Errorf("join cgroup: %w", err)
		}
	}
	return fmt.Errorf("exec %s: %w", argv[0], unix.Exec(argv[0], argv, env))
}
