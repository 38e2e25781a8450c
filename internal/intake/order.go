//go:build linux && (amd64 || arm64)

package intake

import (
	"runtime"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// The Go runtime hands signals to os/signal as a bit set, read lowest
// number first: TSTP (20) and CONT (18) that arrive close together come out
// as CONT then TSTP, and a child told to go on is left stopped (one pair in
// seven when vigil signals itself). The order is known only in the signal
// handler, so for the four job-control signals a recorder runs first: an
// assembly stub (order_*.s) that takes a sequence number, writes the
// signal into a ring and jumps on to the runtime's own handler, with every
// register the handler reads untouched. The relay then reads the order from
// the ring, not from the channel, which only wakes it.
//
// The ring's order is the kernel's only if one thread takes these signals:
// two threads may each take one at once and write the ring in the other
// order (about one pair in a hundred from a shell's kill). So the stub, on
// any thread but the main one, blocks the four on that thread from the
// moment its handler returns (in the saved context's mask, which
// rt_sigreturn installs): after each thread's first, the kernel gives them
// to the main thread alone. A forked child would inherit the forking
// thread's mask: ForkMask puts the four back as vigil found them for the
// fork. exec resets the handler, and the runtime resets it to the default
// in a forked child before exec (it handles these signals), so the child
// never runs it. When vigil started with any of the four blocked, the only
// thread that takes them is the runtime's signal thread, so nothing is
// installed and the runtime's order stays.

// jobRingSize is a power of two; the stubs mask with jobRingSize-1.
const jobRingSize = 256

var (
	jobSeq  uint64              // taken by the stub, one per signal
	jobRing [jobRingSize]uint32 // the signals, by sequence number
	//lint:ignore U1000 read by order_*.s
	jobNext uintptr // the runtime's handler the stub jumps to
	//lint:ignore U1000 read by order_*.s
	jobMain uint64 // the main thread's id (the pid): the one left to take them
	//lint:ignore U1000 read by order_*.s
	jobFork uint64 // a thread forking under ForkMask: the stub leaves its mask alone

	startBlocked uint64      // the signal mask vigil started with (signal n is bit n-1)
	jobTaken     uint64      // the relay's read position
	recording    atomic.Bool // the stub is installed
)

// recordJobControl installs the stub in front of the runtime's handler of
// TSTP, TTIN, TTOU and CONT. It is called once those signals are caught;
// if the runtime's handler is not one and the same for the four, or any
// call fails, nothing is installed and the channel's order is used.
func recordJobControl() {
	if startBlocked&jobBits != 0 {
		return
	}
	sigs := [...]syscall.Signal{syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGCONT}
	var old [len(sigs)]kernelSigaction
	for i, sig := range sigs {
		if rtSigaction(sig, nil, &old[i]) != nil || old[i].handler <= 1 || old[i].handler != old[0].handler {
			return
		}
	}
	jobNext = old[0].handler
	jobMain = uint64(syscall.Getpid())
	for i, sig := range sigs {
		sa := old[i]
		sa.handler = recorder()
		if rtSigaction(sig, &sa, nil) != nil {
			// Those already installed record into the ring; the relay reads
			// it for all four or for none, so put the runtime's back.
			for j := range i {
				_ = rtSigaction(sigs[j], &old[j], nil)
			}
			return
		}
	}
	recording.Store(true)
}

// The how of rt_sigprocmask(2).
const (
	sigBlock   = 0
	sigUnblock = 1
	sigSetmask = 2
)

// jobBits are CONT, TSTP, TTIN and TTOU in a signal mask.
const jobBits = 1<<(syscall.SIGCONT-1) | 1<<(syscall.SIGTSTP-1) | 1<<(syscall.SIGTTIN-1) | 1<<(syscall.SIGTTOU-1)

// saveStartMask keeps the mask vigil started with; it runs in the
// package's init, on the main thread, which the runtime has not changed for
// these signals.
func saveStartMask() {
	var old uint64
	if rtSigprocmask(sigBlock, nil, &old) == nil {
		startBlocked = old
	}
}

// ForkMask gives the calling goroutine, until undo is called, a thread
// whose mask holds the job-control signals as vigil started with them, so
// that a child forked there inherits the mask vigil was given. Call it
// around every fork.
func ForkMask() (undo func()) {
	if !recording.Load() {
		return func() {}
	}
	runtime.LockOSThread()
	atomic.StoreUint64(&jobFork, uint64(syscall.Gettid()))
	var old uint64
	set := uint64(jobBits) &^ startBlocked
	if rtSigprocmask(sigUnblock, &set, &old) != nil {
		atomic.StoreUint64(&jobFork, 0)
		runtime.UnlockOSThread()
		return func() {}
	}
	return func() {
		_ = rtSigprocmask(sigSetmask, &old, nil)
		atomic.StoreUint64(&jobFork, 0)
		runtime.UnlockOSThread()
	}
}

func rtSigprocmask(how int, set, old *uint64) error {
	_, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, uintptr(how),
		uintptr(unsafe.Pointer(set)), uintptr(unsafe.Pointer(old)), 8, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// takeJobControl queues the job-control signals recorded since the last
// call, in the order the handler saw them. A slot still zero belongs to a
// handler that has not finished writing it: its own wake-up comes later.
// Only the relay calls it.
func takeJobControl() {
	seq := atomic.LoadUint64(&jobSeq)
	if seq-jobTaken > jobRingSize {
		// Overwritten before they were read (a storm while the relay could
		// not run): the oldest are gone; the newest, which decide, are not.
		jobTaken = seq - jobRingSize
	}
	for ; jobTaken < seq; jobTaken++ {
		slot := &jobRing[jobTaken%jobRingSize]
		sig := atomic.SwapUint32(slot, 0)
		if sig == 0 {
			return
		}
		queue.Put(syscall.Signal(sig))
	}
}

// recorder returns the address of the stub.
func recorder() uintptr
