package notify

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func ptr[T any](v T) *T { return &v }

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want Message
	}{
		{"ready", "READY=1", Message{Ready: true, Phase: PhaseReady}},
		{"ready and status, trailing newline", "READY=1\nSTATUS=hello world\n",
			Message{Ready: true, Phase: PhaseReady, Status: ptr("hello world")}},
		{"systemd-notify's message", "READY=1\nSTATUS=hello", Message{Ready: true, Phase: PhaseReady, Status: ptr("hello")}},
		{"empty status", "STATUS=", Message{Status: ptr("")}},
		{"status with = and unicode", "STATUS=a=b ✓", Message{Status: ptr("a=b ✓")}},
		{"last status wins", "STATUS=a\nSTATUS=b", Message{Status: ptr("b")}},
		{"phase is the last flag", "STOPPING=1\nREADY=1",
			Message{Ready: true, Stopping: true, Phase: PhaseReady}},
		{"reloading then ready", "RELOADING=1\nREADY=1",
			Message{Ready: true, Reloading: true, Phase: PhaseReady}},
		{"stopping", "STOPPING=1", Message{Stopping: true, Phase: PhaseStopping}},
		{"pings counted", "WATCHDOG=1\nWATCHDOG=1", Message{Pings: 2}},
		{"trigger", "WATCHDOG=trigger", Message{WatchdogTrigger: true}},
		{"watchdog usec", "WATCHDOG_USEC=30000000", Message{WatchdogInterval: ptr(30 * time.Second)}},
		{"watchdog off", "WATCHDOG_USEC=0", Message{WatchdogInterval: ptr(time.Duration(0))}},
		{"extend", "EXTEND_TIMEOUT_USEC=1500", Message{ExtendTimeout: ptr(1500 * time.Microsecond)}},
		{"mainpid", "MAINPID=42", Message{MainPID: 42}},
		{"barrier", "BARRIER=1", Message{Barrier: true}},
		{"unknown keys", "ERRNO=2\nFDSTORE=1\nX_CUSTOM=", Message{Unknown: []string{"ERRNO", "FDSTORE", "X_CUSTOM"}}},
		{"bad lines refused, good ones kept", "READY=1\nnonsense\nSTATUS=ok",
			Message{Ready: true, Phase: PhaseReady, Status: ptr("ok"), Invalid: []string{"nonsense"}}},
		{"READY takes only 1", "READY=yes\nREADY=0\nREADY=", Message{Invalid: []string{"READY=yes", "READY=0", "READY="}}},
		{"STOPPING and RELOADING take only 1", "STOPPING=true\nRELOADING=2",
			Message{Invalid: []string{"STOPPING=true", "RELOADING=2"}}},
		{"WATCHDOG takes 1 or trigger", "WATCHDOG=0\nWATCHDOG=yes", Message{Invalid: []string{"WATCHDOG=0", "WATCHDOG=yes"}}},
		{"bad numbers", "WATCHDOG_USEC=-1\nWATCHDOG_USEC=1s\nEXTEND_TIMEOUT_USEC=\nWATCHDOG_USEC=+5\nWATCHDOG_USEC=18446744073709551615",
			Message{Invalid: []string{"WATCHDOG_USEC=-1", "WATCHDOG_USEC=1s", "EXTEND_TIMEOUT_USEC=", "WATCHDOG_USEC=+5",
				"WATCHDOG_USEC=18446744073709551615"}}},
		{"bad mainpid", "MAINPID=0\nMAINPID=-3\nMAINPID=2147483648\nMAINPID=x",
			Message{Invalid: []string{"MAINPID=0", "MAINPID=-3", "MAINPID=2147483648", "MAINPID=x"}}},
		{"no key", "=1", Message{Invalid: []string{"=1"}}},
		{"lower-case key is noise", "ready=1", Message{Invalid: []string{"ready=1"}}},
		{"key with a digit first", "1A=b", Message{Invalid: []string{"1A=b"}}},
		{"status must be UTF-8", "STATUS=\xff\xfe", Message{Invalid: []string{"STATUS=\uFFFD"}}},
		{"blank lines", "\n\nREADY=1\n\n", Message{Ready: true, Phase: PhaseReady}},
		{"carriage return is part of the value", "READY=1\r", Message{Invalid: []string{"READY=1\r"}}},
		{"long refused line is cut", "X" + strings.Repeat("y", 100),
			Message{Invalid: []string{"X" + strings.Repeat("y", invalidQuote-1) + "..."}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.in))
			if err != nil {
				t.Fatalf("Parse(%q): unexpected error %v", tc.in, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Parse(%q)\n got  %+v\n want %+v", tc.in, show(got), show(tc.want))
			}
		})
	}
}

// String names a Phase in a failure's %v.
func (p Phase) String() string {
	switch p {
	case PhaseReady:
		return "ready"
	case PhaseReloading:
		return "reloading"
	case PhaseStopping:
		return "stopping"
	}
	return "none"
}

// show makes a Message's pointers readable in a failure.
func show(m Message) string {
	s := strings.NewReplacer("\n", `\n`).Replace(m.Encode())
	return s + " unknown=" + strings.Join(m.Unknown, ",") + " invalid=" + strings.Join(m.Invalid, "|") +
		" phase=" + m.Phase.String()
}

func TestParseRefusesWhole(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrEmpty},
		{"NUL byte", []byte("READY=1\x00STATUS=x"), ErrNUL},
		{"one byte too large", []byte("STATUS=" + strings.Repeat("x", MaxMessage-len("STATUS=")+1)), ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Parse(%.40q...): error %v, want %v", tc.in, err, tc.want)
			}
			if !reflect.DeepEqual(got, Message{}) {
				t.Errorf("Parse(%.40q...) refused but returned %+v", tc.in, got)
			}
		})
	}
	largest := "STATUS=" + strings.Repeat("x", MaxMessage-len("STATUS="))
	if m, err := Parse([]byte(largest)); err != nil || m.Status == nil || len(*m.Status) != MaxMessage-len("STATUS=") {
		t.Errorf("Parse of a %d-byte message: %v, want it accepted", MaxMessage, err)
	}
}

func TestEncode(t *testing.T) {
	for _, tc := range []struct {
		m    Message
		want string
	}{
		{Message{}, ""},
		{Message{Ready: true, Phase: PhaseReady, Status: ptr("up"), Pings: 1}, "READY=1\nSTATUS=up\nWATCHDOG=1"},
		{Message{Ready: true, Stopping: true, Phase: PhaseReady}, "STOPPING=1\nREADY=1"},
		{Message{Ready: true, Stopping: true, Phase: PhaseStopping}, "READY=1\nSTOPPING=1"},
		{Message{Status: ptr("two\nlines\x00")}, "STATUS=two lines "},
		{Message{WatchdogInterval: ptr(2 * time.Second), ExtendTimeout: ptr(time.Millisecond), MainPID: 7, Barrier: true, WatchdogTrigger: true},
			"WATCHDOG=trigger\nWATCHDOG_USEC=2000000\nEXTEND_TIMEOUT_USEC=1000\nMAINPID=7\nBARRIER=1"},
	} {
		if got := tc.m.Encode(); got != tc.want {
			t.Errorf("Encode(%+v) = %q, want %q", tc.m, got, tc.want)
		}
	}
}
