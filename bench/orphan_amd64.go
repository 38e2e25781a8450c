package main

// orphanPair leaves one orphan to PID 1 and returns the pid of the
// intermediate child, for the caller to reap; see orphan_amd64.s. The
// calling thread must have every signal blocked: a handler running in a
// child that shares the caller's memory would corrupt the runtime.
func orphanPair(flags uintptr) (pid uintptr, errno uintptr)

const haveOrphanPair = true
