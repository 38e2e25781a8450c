package pid1

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// lookupUser resolves --user USER[:GROUP] against the image's passwd and
// group files, the way runc, gosu and su-exec do, into the credential the
// child runs with and its home directory ("/" when the user is not in
// passwd or its entry names none, as with Docker's --user). USER and GROUP
// are names or numbers. A numeric user missing from passwd runs with group
// 0, as Docker's --user does, unless GROUP is given. With GROUP, the child
// has that group only; without, its supplementary groups are those that
// list the user by name, as initgroups(3) finds them. Either way setgroups
// replaces vigil's own. Both files are read as the C library reads them
// (see readEntries); a line longer than maxLine is an error.
func lookupUser(spec, passwdPath, groupPath string) (*syscall.Credential, string, error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	if userPart == "" || (hasGroup && groupPart == "") {
		return nil, "", fmt.Errorf("--user %q: want USER[:GROUP]", spec)
	}
	var (
		uid, gid uint32
		name     string
		home     string
		found    bool
	)
	num, numErr := parseID(userPart)
	err := readEntries(passwdPath, 7, true, func(f [][]byte) bool {
		if len(f) < 4 || isNIS(f[0]) {
			return true
		}
		id, ok := fileID(f[2])
		g, gok := fileID(f[3])
		if !ok || !gok {
			return true
		}
		if string(f[0]) == userPart || (numErr == nil && id == num) {
			uid, gid, name, found = id, g, string(f[0]), true
			if len(f) > 5 {
				home = string(f[5])
			}
			return false
		}
		return true
	})
	if err != nil {
		return nil, "", fmt.Errorf("--user %q: %w", spec, err)
	}
	switch {
	case !found && numErr != nil:
		return nil, "", fmt.Errorf("--user %q: no user %q in %s", spec, userPart, passwdPath)
	case !found:
		uid, gid = num, 0
	case uid == noID || gid == noID:
		return nil, "", fmt.Errorf("--user %q: %s gives %s uid %d and gid %d; %d means no change to setuid and setgid",
			spec, passwdPath, name, uid, gid, uint32(noID))
	}
	if home == "" {
		home = "/"
	}
	if hasGroup {
		g, err := lookupGroup(groupPart, groupPath)
		if err != nil {
			return nil, "", fmt.Errorf("--user %q: %w", spec, err)
		}
		gid = g
	}
	supp := []uint32{gid}
	if name != "" && !hasGroup {
		seen := map[uint32]bool{gid: true}
		err := readEntries(groupPath, 4, false, func(f [][]byte) bool {
			g, ok := memberGID(f)
			if !ok || seen[g] || g == noID || !isMember(f[3], name) {
				return true
			}
			seen[g] = true
			supp = append(supp, g)
			// The kernel takes no more (NGROUPS_MAX); initgroups stops there too.
			return len(supp) < ngroupsMax
		})
		if err != nil {
			return nil, "", fmt.Errorf("--user %q: %w", spec, err)
		}
	}
	return &syscall.Credential{Uid: uid, Gid: gid, Groups: supp}, home, nil
}

// noID is (uid_t)-1, which means "no change" to setuid and setgid.
const noID = 1<<32 - 1

// ngroupsMax is the kernel's limit on supplementary groups.
const ngroupsMax = 65536

// lookupGroup finds GROUP as getgrnam and getgrgid do: the first entry of
// that name or number, skipping NIS entries; a number not in the file is
// used as it is.
func lookupGroup(spec, path string) (uint32, error) {
	num, numErr := parseID(spec)
	var (
		gid   uint32
		found bool
	)
	err := readEntries(path, 4, true, func(f [][]byte) bool {
		if len(f) < 3 || isNIS(f[0]) {
			return true
		}
		if id, ok := fileID(f[2]); ok && (string(f[0]) == spec || (numErr == nil && id == num)) {
			gid, found = id, true
			return false
		}
		return true
	})
	switch {
	case err != nil:
		return 0, err
	case found && gid == noID:
		return 0, fmt.Errorf("group %q in %s has gid %d, which means no change to setgid", spec, path, gid)
	case found:
		return gid, nil
	case numErr == nil:
		return num, nil
	}
	return 0, fmt.Errorf("no group %q in %s", spec, path)
}

// parseID reads a uid or gid given to --user; 4294967295 is (uid_t)-1,
// which means "no change" to setuid and so is refused.
func parseID(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == noID {
		return 0, fmt.Errorf("bad id %q", s)
	}
	return uint32(n), nil
}

// maxLine bounds one line of passwd or group. The C library has no bound
// (it grows its buffer until the line fits); real lines are far shorter:
// a group listing 100,000 members is about 1 MiB. A longer line is an
// error naming the file and the line, never read in part: vigil would
// otherwise disagree with the C library without a word. Memory stays
// bounded by one line, whatever the size of the file.
const maxLine = 16 << 20

// readEntries calls fn with the colon-separated fields of each line of
// path, at most nfields, until fn returns false. A missing file (a scratch image) has no
// lines. Lines are read as glibc's files backend reads them (checked with
// getent, id and setpriv --init-groups, TestLookupUserAsTheCLibrary): any
// length up to maxLine, cut at the newline and at a NUL byte, and never
// trimmed at the end (a "\r" stays). As for getpwnam and getgrnam, lookup
// skips leading white space and then empty and comment lines. The scan
// for supplementary groups (initgroups) takes every line as it is, so a
// "#" or a space is part of the group's name there, as in glibc.
func readEntries(path string, nfields int, lookup bool, fn func(fields [][]byte) bool) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	var long []byte // a line longer than r's buffer, gathered
	var fields [][]byte
	for n := 1; ; n++ {
		line, err := r.ReadSlice('\n')
		for err == bufio.ErrBufferFull {
			if len(long)+len(line) > maxLine {
				return fmt.Errorf("%s: line %d is longer than %d MiB", path, n, maxLine>>20)
			}
			long = appendDoubling(long, line)
			line, err = r.ReadSlice('\n')
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("reading %s: %w", path, err)
		}
		if len(long) > 0 {
			line = appendDoubling(long, line)
			long = line[:0]
		}
		line = bytes.TrimSuffix(line, []byte("\n"))
		if len(line) > maxLine {
			return fmt.Errorf("%s: line %d is longer than %d MiB", path, n, maxLine>>20)
		}
		if i := bytes.IndexByte(line, 0); i >= 0 {
			line = line[:i]
		}
		for lookup && len(line) > 0 && isSpace(line[0]) {
			line = line[1:]
		}
		if !lookup || (len(line) > 0 && line[0] != '#') {
			fields = splitFields(fields[:0], line, nfields)
			if !fn(fields) {
				return nil
			}
		}
		if err == io.EOF {
			return nil
		}
	}
}

// appendDoubling is append growing by doubling: append grows a large
// slice by a quarter, which for a 16 MiB line allocates about 80 MiB in all.
func appendDoubling(dst, b []byte) []byte {
	if len(dst)+len(b) > cap(dst) {
		grown := make([]byte, len(dst), max(2*cap(dst), len(dst)+len(b)))
		copy(grown, dst)
		dst = grown
	}
	return append(dst, b...)
}

// splitFields splits line at its first n-1 colons: the last field keeps
// the rest, colons included, as the C library reads the shell of passwd
// and the members of group.
func splitFields(dst [][]byte, line []byte, n int) [][]byte {
	for len(dst) < n-1 {
		i := bytes.IndexByte(line, ':')
		if i < 0 {
			break
		}
		dst = append(dst, line[:i])
		line = line[i+1:]
	}
	return append(dst, line)
}

// memberGID is the gid of a group line as initgroups reads it, when the
// line is valid and has a member list: a NIS name ("+" or "-" first) with
// an empty gid field is gid 0 there.
func memberGID(f [][]byte) (uint32, bool) {
	if len(f) < 4 {
		return 0, false // no member list: nothing to match
	}
	if isNIS(f[0]) && len(f[2]) == 0 {
		return 0, true
	}
	return fileID(f[2])
}

// isMember reports whether the member list (the rest of a group line
// after the gid, colons included) names user. Members are separated by
// commas; each loses its leading white space, never its trailing.
func isMember(list []byte, user string) bool {
	for len(list) > 0 {
		m := list
		if i := bytes.IndexByte(list, ','); i >= 0 {
			m, list = list[:i], list[i+1:]
		} else {
			list = nil
		}
		for len(m) > 0 && isSpace(m[0]) {
			m = m[1:]
		}
		if string(m) == user {
			return true
		}
	}
	return false
}

// isNIS reports a NIS compat entry ("+name", "-name"), which getpwnam,
// getpwuid, getgrnam and getgrgid of the files backend never return.
func isNIS(name []byte) bool { return len(name) > 0 && (name[0] == '+' || name[0] == '-') }

// fileID reads a uid or gid field as glibc's files backend does (strtoul,
// then a check that the value fits 32 bits): white space, a sign, at least
// one digit and nothing after. A negative number is taken modulo 2^64, so
// "-0" is 0 and "-18446744073709551615" is 1; any other negative, a value
// over 4294967295, or an empty field makes the line invalid.
func fileID(b []byte) (uint32, bool) {
	i := 0
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	neg := false
	if i < len(b) && (b[i] == '+' || b[i] == '-') {
		neg = b[i] == '-'
		i++
	}
	start := i
	var n uint64
	overflow := false
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		d := uint64(b[i] - '0')
		if n > (math.MaxUint64-d)/10 {
			overflow = true
		}
		n = n*10 + d
	}
	if i == start || i != len(b) || overflow {
		return 0, false
	}
	if neg {
		n = -n
	}
	if n > noID {
		return 0, false
	}
	return uint32(n), true
}

// isSpace is isspace(3) in the C locale.
func isSpace(c byte) bool { return c == ' ' || c >= '\t' && c <= '\r' }

// identity is who a process runs as, for deciding what --user changes.
type identity struct {
	uid, gid uint32
	groups   []uint32 // supplementary
	setuid   bool     // holds CAP_SETUID
	setgid   bool     // holds CAP_SETGID (setgroups needs it)
}

// currentIdentity is vigil's own identity.
func currentIdentity() (identity, error) {
	id := identity{uid: uint32(unix.Geteuid()), gid: uint32(unix.Getegid())}
	gs, err := unix.Getgroups()
	if err != nil {
		return id, fmt.Errorf("getgroups: %w", err)
	}
	for _, g := range gs {
		id.groups = append(id.groups, uint32(g))
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return id, fmt.Errorf("capget: %w", err)
	}
	id.setgid = data[0].Effective&(1<<unix.CAP_SETGID) != 0
	id.setuid = data[0].Effective&(1<<unix.CAP_SETUID) != 0
	return id, nil
}

// childCredential decides the credential the child is started with when
// --user asks for want and vigil runs as cur. Nothing to change (vigil runs
// as that user already, the way an image's USER and vigil -u often say the
// same) gives nil: no setgroups, setgid or setuid at all, which would fail
// for an unprivileged vigil. When only the supplementary groups differ and
// vigil may not set them, the child keeps vigil's: it is that user already.
// A change of user or group that vigil lacks the capability for is an
// error here, rather than a failed exec blamed on the command.
func childCredential(want *syscall.Credential, cur identity) (*syscall.Credential, error) {
	if want == nil {
		return nil, nil
	}
	sameIDs := want.Uid == cur.uid && want.Gid == cur.gid
	if sameIDs && sameGroups(want.Groups, cur.groups) {
		return nil, nil
	}
	switch {
	case want.Uid != cur.uid && !cur.setuid:
		return nil, fmt.Errorf("--user: vigil runs as uid %d without CAP_SETUID and cannot start the command as uid %d", cur.uid, want.Uid)
	case want.Gid != cur.gid && !cur.setgid:
		return nil, fmt.Errorf("--user: vigil runs as gid %d without CAP_SETGID and cannot start the command as gid %d", cur.gid, want.Gid)
	}
	c := *want
	if !cur.setgid {
		c.NoSetGroups = true
	}
	return &c, nil
}

// sameGroups compares two lists of gids as sets: the kernel sorts them.
func sameGroups(a, b []uint32) bool {
	has := func(list []uint32, g uint32) bool { return slices.Contains(list, g) }
	for _, g := range a {
		if !has(b, g) {
			return false
		}
	}
	for _, g := range b {
		if !has(a, g) {
			return false
		}
	}
	return true
}
