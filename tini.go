package main

import (
	"log/slog"
	"os"
)

// tini's variables are read as tini reads them, so that an environment
// written for docker run --init means the same with vigil: tini tests
// TINI_SUBREAPER and TINI_KILL_PROCESS_GROUP with getenv(3) alone and reads
// TINI_VERBOSITY with atoi(3) into an unsigned int. None of them is ever an
// error. vigil's own VIGIL_* variables keep their strict rules.

// tiniSet reports whether tini would take the variable as set: present in
// the environment, whatever its value, empty and "0" included.
func tiniSet(name string) bool {
	_, ok := os.LookupEnv(name)
	return ok
}

// tiniLevel maps TINI_VERBOSITY to a log level. tini prints fatal errors
// always, warnings from 1 (its default), then info (2), debug (3) and
// trace (4 and up); vigil's levels below debug are for -vv.
func tiniLevel(v string) slog.Level {
	switch n := tiniAtoi(v); n {
	case 0:
		return slog.LevelError
	case 1:
		return slog.LevelWarn
	case 2:
		return slog.LevelInfo
	case 3:
		return slog.LevelDebug
	default:
		return slog.LevelDebug - 4
	}
}

// tiniAtoi is the verbosity tini ends up with for v: glibc's atoi is
// strtol(v, NULL, 10) cast to int, which tini stores in an unsigned int.
// So leading white space (isspace in the C locale) is skipped, a sign is
// taken, the digits are read up to the first other byte ("3abc" is 3,
// "0x2" is 0, "" and "abc" are 0), an overflow saturates at the range of
// a 64-bit long, and the low 32 bits are kept: "-1" is 4294967295.
func tiniAtoi(v string) uint32 {
	i := 0
	for i < len(v) && (v[i] == ' ' || v[i] >= '\t' && v[i] <= '\r') {
		i++
	}
	neg := false
	if i < len(v) && (v[i] == '+' || v[i] == '-') {
		neg = v[i] == '-'
		i++
	}
	// The magnitude saturates at 2^63: LONG_MAX for a positive number,
	// LONG_MIN for a negative one.
	const limit = uint64(1) << 63
	var mag uint64
	for ; i < len(v) && v[i] >= '0' && v[i] <= '9'; i++ {
		d := uint64(v[i] - '0')
		if mag > (limit-d)/10 {
			mag = limit
		} else {
			mag = mag*10 + d
		}
	}
	var n int64
	switch {
	case !neg && mag == limit:
		n = 1<<63 - 1
	case neg:
		n = int64(-mag) // two's complement: -2^63 when mag is 2^63
	default:
		n = int64(mag)
	}
	return uint32(n)
}
