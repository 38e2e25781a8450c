//go:build linux && (amd64 || arm64)

package intake

import (
	"syscall"
	"unsafe"
)

// The Go runtime installs no handler for signals 32 and 34: they are the
// C library's (glibc's thread cancellation, musl's synchronous calls), so
// they keep their default action, which ends the process. Without the
// guard below, `kill -34 <vigil>` (34 is what `kill -l` calls SIGRTMIN)
// would end vigil when it is not PID 1 and leave its child unsupervised.
// (33 gets a handler of the runtime's own and is dropped there.)
//
// os/signal cannot catch them, and neither ignoring nor blocking them
// would do: an ignored disposition survives exec into the child, and a
// blocked mask is passed on by fork (the runtime unblocks them on every
// thread anyway). A handler is what exec resets to the default, so the
// child starts as if vigil were not there. The handler is the smallest
// one possible, in assembly (reserved_*.s): it returns at once, on the
// thread's alternate signal stack, through a restorer that calls
// rt_sigreturn. It cannot be the runtime's own trampoline, which kills the
// process for a signal the runtime is not handling. Such a signal is not
// forwarded: there is nothing vigil's Go code could learn of it.
//
// A disposition other than the default at start (ignored, or a handler
// of the C library's in a cgo build) is left as it is.

// Flags of the kernel's struct sigaction, the same on amd64 and arm64.
const (
	saRestorer = 0x04000000
	saOnstack  = 0x08000000
	saRestart  = 0x10000000
)

// kernelSigaction is the kernel's struct sigaction on amd64 and arm64.
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

// guarded lists the signals the no-op handler was installed for: those
// the runtime leaves to their default action that vigil survives.
var guarded []syscall.Signal

func init() { guardReserved() }

func guardReserved() {
	handler, restorer := trampolines()
	for _, sig := range []syscall.Signal{32, 34} {
		var old kernelSigaction
		if rtSigaction(sig, nil, &old) != nil || old.handler != 0 { // 0 is SIG_DFL
			continue
		}
		sa := kernelSigaction{
			handler:  handler,
			flags:    saOnstack | saRestorer | saRestart,
			restorer: restorer,
			mask:     ^uint64(0), // nothing interrupts it (it does nothing)
		}
		if rtSigaction(sig, &sa, nil) == nil {
			guarded = append(guarded, sig)
		}
	}
}

func rtSigaction(sig syscall.Signal, act, old *kernelSigaction) error {
	_, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig),
		uintptr(unsafe.Pointer(act)), uintptr(unsafe.Pointer(old)), 8, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// trampolines returns the addresses of the handler and the restorer.
func trampolines() (handler, restorer uintptr)
