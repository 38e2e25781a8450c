//go:build !amd64

package main

import "syscall"

// orphanPair is written in assembly for amd64 only; elsewhere the storm
// child falls back to fork and exec, which is slower for every init alike.
func orphanPair(uintptr) (uintptr, uintptr) { return 0, uintptr(syscall.ENOSYS) }

const haveOrphanPair = false
