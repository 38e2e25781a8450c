//go:build !(linux && (amd64 || arm64))

package intake

import "syscall"

// Guarded lists the signals the runtime leaves to their default action
// that vigil survives. On this architecture there is no guard (see
// reserved.go): signals 32 and 34 end vigil when it is not PID 1.
func Guarded() []syscall.Signal { return nil }
