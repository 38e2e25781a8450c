//go:build linux

#include "textflag.h"

// noop is the handler of the guarded signals: it returns at once, to the
// restorer the kernel put in the link register. It touches no register
// and no memory of Go's, so it is safe on any thread at any instruction.
TEXT noop<>(SB),NOSPLIT|NOFRAME,$0-0
	RET

// sigreturn is the restorer: rt_sigreturn(2) puts the interrupted thread
// back as it was.
TEXT sigreturn<>(SB),NOSPLIT|NOFRAME,$0-0
	MOVD	$139, R8 // SYS_rt_sigreturn
	SVC
	UNDEF // not reached

// func trampolines() (handler, restorer uintptr)
TEXT ·trampolines(SB),NOSPLIT,$0-16
	MOVD	$noop<>(SB), R0
	MOVD	R0, handler+0(FP)
	MOVD	$sigreturn<>(SB), R0
	MOVD	R0, restorer+8(FP)
	RET
