package slim

import (
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// status reads a kB field of /proc/self/status.
func status(t *testing.T, key string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatalf("%s: %q", key, l)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/self/status", key)
	return 0
}

// written lives in the executable's data segment (a writable private
// mapping of the file) and is changed at run time: if the drop reached
// that mapping, it would read its initial value again.
var written = []int{1, 2, 3}

func TestDroppingExecutablePagesLowersRssFile(t *testing.T) {
	written[1] = 42
	// The test binary has run the testing package's start-up, reflect and
	// fmt: many of its pages are resident.
	_ = reflect.TypeOf(t).String()
	before := status(t, "RssFile")
	p, err := ExecutablePages()
	if err != nil {
		t.Fatal(err)
	}
	n, err := p.Drop()
	if err != nil {
		t.Fatal(err)
	}
	after := status(t, "RssFile")
	t.Logf("RssFile %d kB -> %d kB; %d kB of mappings advised", before, after, n>>10)
	if n == 0 {
		t.Fatalf("no mapping advised")
	}
	// The code run since the drop (reading the status file) has faulted
	// some pages back in, and the kernel maps a whole folio of the page
	// cache (up to 64 kB, or more with large folios) on each fault: a
	// quarter is a drop no noise explains.
	if drop := before - after; drop < before/4 {
		t.Errorf("RssFile went from %d kB to %d kB, want it down by at least a quarter", before, after)
	}
	if written[1] != 42 {
		t.Errorf("a variable the program wrote reads %d after the drop, want 42: a writable mapping was dropped", written[1])
	}
}

// TestPagesDropAgain: the pages found once are dropped again after the
// program has brought them back.
func TestPagesDropAgain(t *testing.T) {
	p, err := ExecutablePages()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Drop(); err != nil {
		t.Fatal(err)
	}
	_ = reflect.TypeOf(t).String() // code that brings pages back
	before := status(t, "RssFile")
	if _, err := p.Drop(); err != nil {
		t.Fatal(err)
	}
	after := status(t, "RssFile")
	t.Logf("RssFile %d kB -> %d kB", before, after)
	if after >= before {
		t.Errorf("RssFile went from %d kB to %d kB on the second drop, want it lower", before, after)
	}
}

func TestExeReadOnly(t *testing.T) {
	maps := `00400000-00611000 r-xp 00000000 fe:00 9978895                            /tmp/bx/vigil
00611000-00874000 r--p 00211000 fe:00 9978895                            /tmp/bx/vigil
00874000-00895000 rw-p 00474000 fe:00 9978895                            /tmp/bx/vigil
00895000-008cc000 rw-p 00000000 00:00 0 
00900000-00901000 r--s 00000000 fe:00 9978895                            /tmp/bx/vigil
00a00000-00a01000 r--p 00000000 fe:01 9978895                            /other/disk/same/inode
00b00000-00b01000 r--p 00000000 fe:00 9978896                            /tmp/bx/vigil (deleted)
7f62c7c4d000-7f62c7c4f000 r-xp 00000000 00:00 0                          [vdso]
`
	got, err := exeReadOnly([]byte(maps), 0xfe, 0, 9978895)
	if err != nil {
		t.Fatal(err)
	}
	want := []span{{0x400000, 0x611000}, {0x611000, 0x874000}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("exeReadOnly = %x, want %x (only r-xp and r--p of device fe:00 inode 9978895)", got, want)
	}
	for _, bad := range []string{
		"00400000 r-xp 00000000 fe:00 9978895 /x\n",
		"00400000-00611000 r-xp 00000000 fe00 9978895 /x\n",
		"00611000-00400000 r-xp 00000000 fe:00 9978895 /x\n",
	} {
		if _, err := exeReadOnly([]byte(bad), 0xfe, 0, 9978895); err == nil {
			t.Errorf("exeReadOnly(%q) = nil error, want one", bad)
		}
	}
}
