package pid1

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// lookupUser resolves --user USER[:GROUP] against the image's passwd and
// group files, the way gosu and su-exec do, into the credential the child
// runs with and its home directory ("/" when the user is not in passwd, as
// with Docker's --user). USER and GROUP are
// names or numbers. A numeric user missing from passwd runs with group 0,
// as Docker's --user does, unless GROUP is given. Supplementary groups are
// those that list the user by name, so setgroups always replaces root's.
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
	if name != "" {
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
