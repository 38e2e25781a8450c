package pid1

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestStoreWritesInPlaceOfTwoFilesWithTheirLock(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tomb.json")
	rec := func(n int) []byte { return []byte(fmt.Sprintf(`{"state":"running","restarts":%d}`+"\n", n)) }
	st, err := openStore(path, 8192, func(bool) []byte { return rec(0) })
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	inodes := map[uint64]bool{}
	for n := 1; n <= 20; n++ {
		if err := st.write(rec(n)); err != nil {
			t.Fatalf("write %d: %v", n, err)
		}
		b, lock, err := readRecordFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var ts Tombstone
		if err := json.Unmarshal(b, &ts); err != nil || ts.Restarts != n {
			t.Fatalf("after write %d the record is %q (%v)", n, b, err)
		}
		if st.locked && lock != lockHeld {
			t.Errorf("write %d: the record at PATH carries no lock (%d)", n, lock)
		}
		var s unix.Stat_t
		unix.Stat(path, &s)
		inodes[s.Ino] = true
	}
	if len(inodes) != 2 {
		t.Errorf("the records went to %d files, want the same 2 over and over", len(inodes))
	}
	// A reader that keeps the file at PATH open: the next write but one
	// would reuse that file, so it goes to a new one, and the reader's
	// copy never changes.
	held, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	before, _ := os.ReadFile(path)
	for n := 21; n <= 23; n++ {
		if err := st.write(rec(n)); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]byte, len(before)+100)
	k, _ := held.ReadAt(got, 0)
	if string(got[:k]) != string(before) {
		t.Errorf("a reader's open file changed under it: %q, was %q", got[:k], before)
	}
	st.close()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("after close the directory holds %d entries, want the record alone", len(entries))
	}
	if _, lock, _ := readRecordFile(path); lock == lockHeld {
		t.Error("the lock outlived the store")
	}
}

func TestStorePadsRatherThanShrinks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tomb.json")
	long := `{"state":"exited","status":"` + strings.Repeat("x", 500) + `"}` + "\n"
	st, err := openStore(path, 8192, func(bool) []byte { return []byte(long) })
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	st.write([]byte(long))
	st.write([]byte(`{"state":"running"}` + "\n")) // into the file that held the long one
	b, _ := os.ReadFile(path)
	var ts Tombstone
	if err := json.Unmarshal(b, &ts); err != nil || ts.State != "running" || len(b) != len(long) {
		t.Errorf("record %d bytes, %+v, %v; want the short record padded to %d", len(b), ts, err, len(long))
	}
}

func TestLivenessOf(t *testing.T) {
	for _, tt := range []struct {
		claims bool
		lock   lockState
		want   liveness
	}{
		{true, lockHeld, livenessLive}, {true, lockFree, livenessGone}, {true, lockUnknown, livenessUnknown},
		{false, lockFree, livenessUnknown}, {false, lockHeld, livenessUnknown},
	} {
		if got := livenessOf(tt.claims, tt.lock); got != tt.want {
			t.Errorf("livenessOf(%v, %d) = %d, want %d", tt.claims, tt.lock, got, tt.want)
		}
	}
}

func TestStoreMakesANewSpareWhenItsSpareWasReplaced(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tomb.json")
	st, err := openStore(path, 4096, func(bool) []byte { return []byte(`{"state":"starting"}` + "\n") })
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("keep me"), 0o600)
	os.Remove(st.spare)
	if err := os.Symlink(victim, st.spare); err != nil {
		t.Fatal(err)
	}
	if err := st.write([]byte(`{"state":"running"}` + "\n")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep me" {
		t.Errorf("the file behind a planted spare was written: %q", b)
	}
	var ts Tombstone
	if b, _ := os.ReadFile(path); json.Unmarshal(b, &ts) != nil || ts.State != "running" {
		t.Errorf("record %q, want running", b)
	}
}
