package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestHelpersStartWithDefaultSignals: whatever the shell that ran the
// suite ignored or blocked, what the tests start (a helper, and vigil's
// child through vigil, which passes its own start on) has no signal
// ignored and none blocked.
func TestHelpersStartWithDefaultSignals(t *testing.T) {
	out, err := exec.Command("/bin/cat", "/proc/self/status").Output()
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, opts{}, "--", "/bin/cat", "/proc/self/status")
	r.expect(0)
	for who, status := range map[string]string{"a helper": string(out), "vigil's child": r.stdout.String()} {
		if ign, blk := sigField(t, status, "SigIgn"), sigField(t, status, "SigBlk"); ign != 0 || blk != 0 {
			t.Errorf("%s starts with signals ignored (SigIgn %x) or blocked (SigBlk %x), want none", who, ign, blk)
		}
	}
}

// TestSuiteIsHermeticUnderNohupAndABlockedMask runs tests of this suite
// as a shell under nohup would start them (SIGHUP and SIGINT ignored) and
// with the common signals blocked: they pass as they do from a clean
// shell. TestSignalsReachChild hung for 30 s there before the suite reset
// its own start (and TestHookSeesHowTheChildEnded, TestThousandRunsExactStatus
// and TestJobControlFollowsTheChild failed: see the README's Guarantees).
func TestSuiteIsHermeticUnderNohupAndABlockedMask(t *testing.T) {
	const blocked = "HUP,INT,QUIT,USR1,USR2,PIPE,ALRM,TERM,CHLD,CONT,TSTP,TTIN,TTOU,WINCH,URG"
	cmd := exec.Command(self, "with-ignored", "HUP,INT", self, "with-blocked", blocked,
		"/usr/bin/env", "-u", "E2E_HELPER", self, "-test.count=1", "-test.v",
		"-test.run", "^(TestHelpersStartWithDefaultSignals|TestSignalsReachChild)$")
	cmd.Env = append(os.Environ(), "E2E_HELPER=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestHelpersStartWithDefaultSignals") {
		t.Errorf("the suite under nohup and a blocked mask: %v\n%s", err, out)
	}
}
