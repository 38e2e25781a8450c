package notify

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParse: a datagram is refused whole only when it is empty, too
// large or holds a NUL; otherwise what Parse understood, encoded again,
// is no longer than the datagram and reads back as the same message.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"READY=1", "READY=1\nSTATUS=hello", "STOPPING=1\nREADY=1\n", "WATCHDOG=1\nWATCHDOG=trigger",
		"WATCHDOG_USEC=0007", "EXTEND_TIMEOUT_USEC=9223372036854775", "MAINPID=1", "BARRIER=1",
		"FDSTORE=1\nFDNAME=x", "=", "\n", "READY=1\x00", "STATUS=\xff", "a=b\nREADY=1\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		whole := len(b) == 0 || len(b) > MaxMessage || strings.IndexByte(string(b), 0) >= 0
		if err != nil {
			if !whole {
				t.Fatalf("Parse(%q) refused the whole datagram: %v", b, err)
			}
			if !reflect.DeepEqual(m, Message{}) {
				t.Fatalf("Parse(%q) refused with %v but returned %+v", b, err, m)
			}
			return
		}
		if whole {
			t.Fatalf("Parse(%q) accepted a datagram it must refuse", b)
		}
		if m.Status != nil && !utf8.ValidString(*m.Status) {
			t.Fatalf("Parse(%q): status %q is not UTF-8", b, *m.Status)
		}
		for _, l := range m.Invalid {
			if !utf8.ValidString(l) || len(l) > invalidQuote+len("...") {
				t.Fatalf("Parse(%q): refused line quoted as %q", b, l)
			}
		}
		enc := m.Encode()
		if len(enc) > len(b) {
			t.Fatalf("Parse(%q) encodes to %q, longer than the datagram", b, enc)
		}
		if enc == "" {
			return
		}
		again, err := Parse([]byte(enc))
		m.Unknown, m.Invalid = nil, nil
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("Parse(%q) = %s; encoded as %q it reads back as %s, %v", b, show(m), enc, show(again), err)
		}
	})
}
