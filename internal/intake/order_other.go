//go:build !(linux && (amd64 || arm64))

package intake

import "sync/atomic"

// On this architecture there is no recorder (see order.go): job-control
// signals that arrive close together keep the runtime's order, lowest
// number first.
var recording atomic.Bool

func recordJobControl() {}

func takeJobControl() {}

func saveStartMask() {}

// ForkMask is for a fork; on this architecture there is nothing to undo.
func ForkMask() (undo func()) { return func() {} }
