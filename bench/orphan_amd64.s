#include "textflag.h"

// func orphanPair(flags uintptr) (pid uintptr, errno uintptr)
//
// Two nested clones with CLONE_VM|CLONE_VFORK: the first child (A) starts
// the second (B), which exits at once; then A exits too, leaving B's
// zombie to PID 1. Both children run on the caller's stack while it is
// suspended, so they use registers only: no call, no push, no store,
// nothing the suspended caller could find changed. SYSCALL clobbers AX, CX
// and R11 only, so DI still holds the flags for the second clone.
TEXT ·orphanPair(SB),NOSPLIT,$0-24
	MOVQ	flags+0(FP), DI
	MOVQ	$0, SI
	MOVQ	$0, DX
	MOVQ	$0, R10
	MOVQ	$0, R8
	MOVQ	$56, AX // SYS_clone
	SYSCALL
	CMPQ	AX, $0
	JNE	parent
	// A: start B.
	MOVQ	$56, AX
	SYSCALL
	CMPQ	AX, $0
	JEQ	b
	// A, after B has exited: exit 0, or 1 if B could not be started.
	MOVQ	$0, DI
	CMPQ	AX, $0
	JGT	aexit
	MOVQ	$1, DI
aexit:
	MOVQ	$231, AX // SYS_exit_group
	SYSCALL
b:
	MOVQ	$0, DI
	MOVQ	$231, AX
	SYSCALL
parent:
	CMPQ	AX, $0xfffffffffffff001
	JLS	ok
	NEGQ	AX
	MOVQ	$0, pid+8(FP)
	MOVQ	AX, errno+16(FP)
	RET
ok:
	MOVQ	AX, pid+8(FP)
	MOVQ	$0, errno+16(FP)
	RET
