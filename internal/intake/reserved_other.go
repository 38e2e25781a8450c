//go:build !(linux && (amd64 || arm64))

package intake

// On this architecture there is no guard (see reserved.go): signals 32
// and 34 end vigil when it is not PID 1.
