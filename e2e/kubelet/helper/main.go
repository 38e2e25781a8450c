// Command helper is the kubelet tests' program inside their pods, built
// static so that it runs in an image with no libc:
//
//	helper pause                 the pod sandbox: wait for TERM or INT, exit 0
//	helper slowstop DUR FILE     on TERM, spend DUR finishing, write FILE, exit 0
//	helper alloc BYTES           touch BYTES of memory, then wait to be killed
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: helper pause | slowstop DURATION FILE | alloc BYTES")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "pause":
		pause()
	case "slowstop":
		err = slowstop(os.Args[2:])
	case "alloc":
		err = alloc(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
}

// pause is the sandbox's process: PID 1 of the pod's namespaces, it also
// reaps whatever is reparented to it.
func pause() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}

// slowstop is an app that needs time to shut down: the record it writes
// says when the stop signal came and that the work after it was done.
func slowstop(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("slowstop DURATION FILE: got %q", args)
	}
	d, err := time.ParseDuration(args[0])
	if err != nil {
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	fmt.Println("slowstop: running")
	s := <-sig
	got := time.Now()
	fmt.Printf("slowstop: %v, finishing for %v\n", s, d)
	time.Sleep(d)
	rec := fmt.Sprintf("signal=%v finished_after=%v\n", s, time.Since(got).Round(time.Millisecond))
	if err := os.WriteFile(args[1], []byte(rec), 0o644); err != nil {
		return err
	}
	fmt.Print("slowstop: ", rec)
	return nil
}

// alloc touches memory until the cgroup's limit kills it.
func alloc(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("alloc BYTES: got %q", args)
	}
	n, err := strconv.Atoi(args[0])
	if err != nil {
		return err
	}
	var keep [][]byte
	for done := 0; done < n; done += 1 << 20 {
		b := make([]byte, 1<<20)
		for i := range b {
			b[i] = 1
		}
		keep = append(keep, b)
	}
	fmt.Printf("alloc: %d MiB touched and not killed\n", len(keep))
	for {
		time.Sleep(time.Hour)
	}
}
