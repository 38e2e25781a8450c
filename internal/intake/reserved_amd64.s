//go:build linux

#include "textflag.h"

// noop is the handler of the guarded signals: it returns at once, to the
// restorer whose address the kernel pushed. It touches no register and no
// memory of Go's, so it is safe on any thread at any instruction.
TEXT noop<>(SB),NOSPLIT|NOFRAME,$0-0
	RET

// sigreturn is the restorer: rt_sigreturn(2) puts the interrupted thread
// back as it was.
TEXT sigreturn<>(SB),NOSPLIT|NOFRAME,$0-0
	MOVQ	$15, AX // SYS_rt_sigreturn
	SYSCALL
	INT	$3 // not reached

// func trampolines() (handler, restorer uintptr)
TEXT ·trampolines(SB),NOSPLIT,$0-16
	LEAQ	noop<>(SB), AX
	MOVQ	AX, handler+0(FP)
	LEAQ	sigreturn<>(SB), AX
	MOVQ	AX, restorer+8(FP)
	RET
