package pid1

import (
	"bufio"
	"fmt"
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
// passwd, as with Docker's --user). USER and GROUP are names or numbers. A
// numeric user missing from passwd runs with group 0, as Docker's --user
// does, unless GROUP is given. With GROUP, the child has that group only;
// without, its supplementary groups are those that list the user by name.
// Either way setgroups replaces vigil's own.
func lookupUser(spec, passwdPath, groupPath string) (*syscall.Credential, string, error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	if userPart == "" || (hasGroup && groupPart == "") {
		return nil, "", fmt.Errorf("--user %q: want USER[:GROUP]", spec)
	}
	passwd, _ := readColonFile(passwdPath, 7)
	groups, _ := readColonFile(groupPath, 4)

	var (
		uid, gid uint32
		name     string
		home     string
		found    bool
	)
	num, numErr := parseID(userPart)
	for _, f := range passwd {
		id, err := parseID(f[2])
		if err != nil {
			continue
		}
		if f[0] == userPart || (numErr == nil && id == num) {
			g, err := parseID(f[3])
			if err != nil {
				continue
			}
			uid, gid, name, home, found = id, g, f[0], f[5], true
			break
		}
	}
	if !found {
		if numErr != nil {
			return nil, "", fmt.Errorf("--user %q: no user %q in %s", spec, userPart, passwdPath)
		}
		uid, gid, home = num, 0, "/"
	}
	if hasGroup {
		g, err := lookupGroup(groupPart, groups)
		if err != nil {
			return nil, "", fmt.Errorf("--user %q: %w in %s", spec, err, groupPath)
		}
		gid = g
	}
	supp := []uint32{gid}
	if name != "" && !hasGroup {
		for _, f := range groups {
			g, err := parseID(f[2])
			if err != nil || g == gid {
				continue
			}
			for _, m := range strings.Split(f[3], ",") {
				if m == name {
					supp = append(supp, g)
					break
				}
			}
		}
	}
	return &syscall.Credential{Uid: uid, Gid: gid, Groups: supp}, home, nil
}

func lookupGroup(spec string, groups [][]string) (uint32, error) {
	num, numErr := parseID(spec)
	for _, f := range groups {
		if id, err := parseID(f[2]); err == nil && (f[0] == spec || (numErr == nil && id == num)) {
			return id, nil
		}
	}
	if numErr == nil {
		return num, nil
	}
	return 0, fmt.Errorf("no group %q", spec)
}

// parseID reads a uid or gid; 4294967295 is (uid_t)-1, which means "no
// change" to setuid and so is refused.
func parseID(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 1<<32-1 {
		return 0, fmt.Errorf("bad id %q", s)
	}
	return uint32(n), nil
}

// readColonFile reads /etc/passwd-style lines with at least n fields. A
// missing file (a scratch image) is no entries, not an error.
func readColonFile(path string, n int) ([][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		fields := strings.Split(line, ":")
		if len(fields) >= n {
			out = append(out, fields)
		}
	}
	return out, sc.Err()
}

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
