package pid1

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

// event encodes one inotify event as the kernel writes it: the header,
// then the name padded with NULs.
func event(wd int32, mask uint32, name string) []byte {
	n := 0
	if name != "" {
		n = (len(name) + 1 + 15) / 16 * 16
	}
	b := make([]byte, unix.SizeofInotifyEvent+n)
	binary.NativeEndian.PutUint32(b[0:], uint32(wd))
	binary.NativeEndian.PutUint32(b[4:], mask)
	binary.NativeEndian.PutUint32(b[12:], uint32(n))
	copy(b[unix.SizeofInotifyEvent:], name)
	return b
}

func TestWatchesConcernOnlyTheirNames(t *testing.T) {
	w := watches{names: map[int32]map[string]bool{1: {"main.json": true}, 2: {"shared": true}}, files: map[int32]bool{3: true}}
	cat := func(evs ...[]byte) []byte {
		var b []byte
		for _, e := range evs {
			b = append(b, e...)
		}
		return b
	}
	tests := []struct {
		name string
		buf  []byte
		want bool
	}{
		{"another name in the directory", event(1, unix.IN_CREATE, "other.log"), false},
		{"many other names", cat(event(1, unix.IN_CREATE, ".main.json.7.tmp"), event(1, unix.IN_MOVED_TO, "other.json"), event(2, unix.IN_CREATE, "tmp")), false},
		{"the target's name among others", cat(event(1, unix.IN_CREATE, "x"), event(1, unix.IN_MOVED_TO, "main.json")), true},
		{"the next step down in an ancestor", event(2, unix.IN_CREATE, "shared"), true},
		{"a write to the record file itself", event(3, unix.IN_MODIFY, ""), true},
		{"the name in another directory", event(2, unix.IN_CREATE, "main.json"), false},
		{"a watched directory went", event(1, unix.IN_DELETE_SELF, ""), true},
		{"a watch was dropped", event(9, unix.IN_IGNORED, ""), true},
		{"the queue overflowed", event(-1, unix.IN_Q_OVERFLOW, ""), true},
		{"an unknown watch", event(9, unix.IN_CREATE, "main.json"), false},
		{"a batch cut short", event(1, unix.IN_CREATE, "other.log")[:unix.SizeofInotifyEvent+4], true},
	}
	for _, tt := range tests {
		if got := w.concerns(tt.buf); got != tt.want {
			t.Errorf("%s: concerns = %v, want %v", tt.name, got, tt.want)
		}
	}
}
