package main

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/signstar/signstar/internal/audit"
)

// TestCrashNeverReachesClient: the real binary, made to crash after its
// lock-down (-X main.crashForTests). A panic on the main goroutine is an
// audited failure with one line; a panic no recover reaches kills the
// process, and a remote client then sees nothing of the runtime's trace
// (file descriptor 2 is /dev/null, crash_linux.go). Locally the trace is
// there: the control that shows the remote case could fail.
func TestCrashNeverReachesClient(t *testing.T) {
	dir := t.TempDir()
	panicBin := buildSignstar(t, dir+"/panic", "-X main.crashForTests=panic")
	goBin := buildSignstar(t, dir+"/goroutine", "-X main.crashForTests=goroutine")
	cfg, _, logPath := sandboxSetup(t, dir, strictestMode())
	remote := []string{"SSH_CONNECTION=192.0.2.9 40000 192.0.2.1 22", "SSH_ORIGINAL_COMMAND=sign"}
	run := func(bin string, env []string) (code int, stdout, stderr string) {
		cmd := exec.Command(bin, "--config", cfg)
		if env == nil {
			cmd.Args = append(cmd.Args, "sign")
		}
		cmd.Env = env
		cmd.Stdin = strings.NewReader("an artifact\n")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), out.String(), errb.String()
	}

	code, out, errs := run(panicBin, remote)
	want := "signstar: internal error (crash for tests second line): please report it\n"
	if code != exitFailed || out != "" || errs != want {
		t.Errorf("panic, remote: exit %d, stdout %q, stderr %q; want exit 1, %q", code, out, errs, want)
	}
	if rec := lastAuditRecord(t, logPath); rec.Outcome != audit.Failed || !strings.HasPrefix(rec.Reason, "internal error (crash for tests") || rec.Signature != "" {
		t.Errorf("panic: record %s %q", rec.Outcome, rec.Reason)
	}

	code, out, errs = run(goBin, remote)
	if code == 0 || out != "" || errs != "" {
		t.Errorf("unrecovered panic, remote: exit %d, stdout %q, stderr %q; want a failure with nothing on either", code, out, errs)
	}
	code, _, errs = run(goBin, nil)
	if code == 0 || !strings.Contains(errs, "goroutine") {
		t.Errorf("control: unrecovered panic, local: exit %d, stderr %.200q; want the runtime's trace", code, errs)
	}
}
