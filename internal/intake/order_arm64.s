//go:build linux

#include "textflag.h"

// record is the handler of TSTP, TTIN, TTOU and CONT (see order.go). The
// kernel calls it with the C convention: R0 the signal, R1 the siginfo, R2
// the context, the restorer in the link register. It uses R8 to R13 only,
// which that convention leaves to the callee (R0 is put back after
// gettid), and jumps to the runtime's handler with the stack and the link
// register as the kernel left them.
TEXT record<>(SB),NOSPLIT|NOFRAME,$0-0
	MOVD	$·jobSeq(SB), R9
again:
	LDAXR	(R9), R10
	ADD	$1, R10, R11
	STLXR	R11, (R9), R12
	CBNZ	R12, again
	AND	$255, R10, R10
	MOVD	$·jobRing(SB), R11
	ADD	R10<<2, R11, R11
	MOVW	R0, (R11)
	MOVD	R0, R13
	MOVD	$178, R8 // SYS_gettid
	SVC
	MOVD	$·jobMain(SB), R9
	MOVD	(R9), R9
	CMP	R9, R0
	BEQ	main
	MOVD	$·jobFork(SB), R9
	MOVD	(R9), R9
	CMP	R9, R0
main:
	MOVD	R13, R0
	BEQ	chain
	// Not the main thread: CONT, TSTP, TTIN and TTOU (bits 17, 19, 20,
	// 21) join uc_sigmask, at offset 40 of the ucontext.
	MOVD	40(R2), R10
	MOVD	$0x3a0000, R11
	ORR	R11, R10, R10
	MOVD	R10, 40(R2)
chain:
	MOVD	$·jobNext(SB), R12
	MOVD	(R12), R12
	JMP	(R12)

// func recorder() uintptr
TEXT ·recorder(SB),NOSPLIT,$0-8
	MOVD	$record<>(SB), R0
	MOVD	R0, ret+0(FP)
	RET
