package pid1

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// The tombstone on disk. Three promises shape it:
//
//   - A reader never sees half a record: each record is written to a file
//     that is not at PATH and then renamed there.
//   - A record never fails later for lack of room: the room for it is
//     taken at start, when a full disk is one line and exit 2. vigil keeps
//     two files, the one at PATH and a spare beside it (.NAME.spare), each
//     with its room reserved (fallocate, FALLOC_FL_KEEP_SIZE). A record is
//     written into the spare, which is then exchanged with PATH
//     (renameat2 RENAME_EXCHANGE): the file that was at PATH becomes the
//     spare, and nothing is allocated. A file is only written again once
//     no one else has it open (a write lease, F_SETLEASE, is granted only
//     then), so a reader that opened it while it was at PATH never sees it
//     change; when someone still does, a new spare is made, which needs
//     room as any file does.
//   - A reader can tell a live vigil from one that is gone: both files
//     carry an open-file-description lock (F_OFD_SETLK) for vigil's life,
//     which the kernel drops when vigil dies, however it dies. The record
//     says "locked": true when they do; a reader asks with F_OFD_GETLK.
//
// Where the file system cannot do one of these (no RENAME_EXCHANGE, no
// leases, no fallocate, no locks: some network and FUSE file systems),
// vigil does what it can and the README says what is lost.

// tombstoneRoom is what is reserved for a record beyond its name: the
// fixed fields, and the status and error, each cut to tombstoneTextMax
// bytes, at six bytes a byte when JSON escapes every one.
const (
	tombstoneTextMax = 1024
	tombstoneRoom    = 4096 + 2*6*tombstoneTextMax
)

// store is the tombstone's two files; only the record writer uses it.
type store struct {
	path, spare string
	cur, next   *os.File // at path, and at spare (nil: none yet)
	room        int64
	locked      bool // both files carry vigil's lock
}

// openStore proves at start that records can be written at path, with
// room, and writes first there. A failure is a usage error naming the
// path: nothing has started yet.
func openStore(path string, room int64, first func(locked bool) []byte) (*store, error) {
	const flag = "--tombstone"
	if err := checkRecordPath(flag, path, true); err != nil {
		return nil, err
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	st := &store{path: path, spare: filepath.Join(dir, "."+base+".spare"), room: room}
	tmp := filepath.Join(dir, fmt.Sprintf(".%s.%d.tmp", base, os.Getpid()))
	f, locked, err := st.create(tmp)
	if err != nil {
		return nil, fail(ExitUsage, "%s %q: %v", flag, path, unwrapPath(err))
	}
	st.locked = locked
	err = st.fill(f, first(locked))
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		f.Close()
		_ = unix.Unlink(tmp)
		return nil, fail(ExitUsage, "%s %q: %v", flag, path, unwrapPath(err))
	}
	st.cur = f
	syncDir(dir)
	if st.next, _, err = st.create(st.spare); err != nil {
		st.close()
		return nil, fail(ExitUsage, "%s %q: the spare %s: %v", flag, path, st.spare, unwrapPath(err))
	}
	return st, nil
}

// create makes a new file at name with the room reserved and vigil's lock
// on it, and says whether the lock was taken.
func (st *store) create(name string) (*os.File, bool, error) {
	_ = unix.Unlink(name) // a leftover of a vigil that died
	fd, err := unix.Open(name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, false, &os.PathError{Op: "open", Path: name, Err: err}
	}
	f := os.NewFile(uintptr(fd), name)
	err = f.Chmod(0o644) // whatever the umask
	if err == nil {
		err = reserve(fd, st.room)
	}
	if err != nil {
		f.Close()
		_ = unix.Unlink(name)
		return nil, false, err
	}
	return f, lockFile(fd) == nil, nil
}

// reserve takes room for size bytes in the file without changing its
// size. A file system without fallocate gets the bytes written instead:
// the room is then proven and held, and records are padded to it.
func reserve(fd int, size int64) error {
	err := unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, 0, size)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		_, err = unix.Pwrite(fd, []byte(strings.Repeat(" ", int(size))), 0)
	}
	if err != nil {
		return fmt.Errorf("no room for its records (%d bytes): %w", size, err)
	}
	return nil
}

// lockFile takes vigil's lock on the whole file, for as long as the open
// file description lives.
func lockFile(fd int) error {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0}
	return unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &lk)
}

// fill writes data over the start of f in one call, padded with spaces
// (JSON's white space) to the file's size, so that the file never
// shrinks: truncating would give back the room reserved.
func (st *store) fill(f *os.File, data []byte) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if pad := int(fi.Size()) - len(data); pad > 0 {
		data = append(data, strings.Repeat(" ", pad)...)
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		return err
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil && !errors.Is(err, unix.EINVAL) {
		return err
	}
	return nil
}

// write puts data at path: into the spare, then exchanged with path.
func (st *store) write(data []byte) error {
	f := st.next
	st.next = nil
	switch {
	case f == nil:
	case !isAt(f, st.spare):
		// Someone moved or replaced the spare: the exchange is by name.
		f.Close()
		f = nil
	case !unused(f):
		// Someone holds it open, a reader of the record it held: write
		// elsewhere, so that reader never sees it change.
		f.Close()
		f = nil
	}
	if f == nil {
		var err error
		if f, _, err = st.create(st.spare); err != nil {
			return err
		}
	}
	err := st.fill(f, data)
	_, _ = unix.FcntlInt(f.Fd(), unix.F_SETLEASE, unix.F_UNLCK)
	if err != nil {
		st.next = f
		return err
	}
	switch err := unix.Renameat2(unix.AT_FDCWD, st.spare, unix.AT_FDCWD, st.path, unix.RENAME_EXCHANGE); {
	case err == nil:
		st.next, st.cur = st.cur, f
		syncDir(filepath.Dir(st.path))
		return nil
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EOPNOTSUPP):
		// PATH was removed, or no exchange here: a plain rename, and the
		// next record needs a new spare.
		if err := os.Rename(st.spare, st.path); err != nil {
			f.Close()
			return err
		}
		st.cur.Close()
		st.cur = f
		syncDir(filepath.Dir(st.path))
		return nil
	default:
		st.next = f
		return &os.LinkError{Op: "exchange", Old: st.spare, New: st.path, Err: err}
	}
}

// isAt reports whether name is f, not followed if a symlink.
func isAt(f *os.File, name string) bool {
	var a, b unix.Stat_t
	return unix.Fstat(int(f.Fd()), &a) == nil && unix.Lstat(name, &b) == nil && a.Dev == b.Dev && a.Ino == b.Ino
}

// unused reports whether no one but vigil has f open, and keeps it so
// while vigil writes: the write lease is granted only then, and any open
// during it waits for vigil to let go (a non-blocking one fails). Without
// leases it cannot be known: the file counts as used.
func unused(f *os.File) bool {
	_, err := unix.FcntlInt(f.Fd(), unix.F_SETLEASE, unix.F_WRLCK)
	return err == nil
}

// close lets go of both files and removes the spare: vigil's lock goes
// with them, and the record at path stays.
func (st *store) close() {
	if st == nil {
		return
	}
	if st.next != nil {
		st.next.Close()
		_ = unix.Unlink(st.spare)
	}
	if st.cur != nil {
		st.cur.Close()
	}
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the rename durable; not every file system can
		d.Close()
	}
}

// liveness is what the lock on a record file says of its writer.
type liveness uint8

const (
	livenessUnknown liveness = iota // the record claims no lock, or the lock cannot be asked
	livenessLive                    // vigil holds its lock: it runs
	livenessGone                    // the record claims a lock that no one holds: its vigil is gone
)

// lockState is what F_OFD_GETLK says of a file.
type lockState uint8

const (
	lockUnknown lockState = iota // the file system cannot say
	lockHeld
	lockFree
)

// lockOf asks whether anyone holds a lock on the file open at fd.
func lockOf(fd int) lockState {
	lk := unix.Flock_t{Type: unix.F_RDLCK, Whence: 0}
	if err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_GETLK, &lk); err != nil {
		return lockUnknown
	}
	if lk.Type == unix.F_UNLCK {
		return lockFree
	}
	return lockHeld
}

// livenessOf is what a record's lock says of its writer: a record that
// claims a lock that no one holds was left by a vigil that is gone.
func livenessOf(claimsLock bool, lock lockState) liveness {
	switch {
	case !claimsLock || lock == lockUnknown:
		return livenessUnknown
	case lock == lockFree:
		return livenessGone
	}
	return livenessLive
}
