//go:build linux

#include "textflag.h"

// record is the handler of TSTP, TTIN, TTOU and CONT (see order.go). The
// kernel calls it with the C convention: DI the signal, SI the siginfo, DX
// the context, a return address to the restorer on the stack. It uses AX,
// CX and R11 only, which that convention leaves to the callee (gettid
// changes no other), and jumps to the runtime's handler with the stack as
// the kernel left it.
TEXT record<>(SB),NOSPLIT|NOFRAME,$0-0
	MOVQ	$1, AX
	LOCK
	XADDQ	AX, ·jobSeq(SB)
	ANDQ	$255, AX
	LEAQ	·jobRing(SB), CX
	MOVL	DI, (CX)(AX*4)
	MOVQ	$186, AX // SYS_gettid
	SYSCALL
	CMPQ	AX, ·jobMain(SB)
	JEQ	chain
	CMPQ	AX, ·jobFork(SB)
	JEQ	chain
	// Not the main thread: CONT, TSTP, TTIN and TTOU (bits 17, 19, 20,
	// 21) join uc_sigmask, at offset 296 of the ucontext.
	ORQ	$0x3a0000, 296(DX)
chain:
	MOVQ	·jobNext(SB), AX
	JMP	AX

// func recorder() uintptr
TEXT ·recorder(SB),NOSPLIT,$0-8
	LEAQ	record<>(SB), AX
	MOVQ	AX, ret+0(FP)
	RET
