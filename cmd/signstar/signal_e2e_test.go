package main

import (
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/signstar/signstar/internal/audit"
)

// sigMask reads a signal mask line (SigIgn, SigCgt) of /proc/PID/status.
func sigMask(t *testing.T, pid int, field string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(procStatus(t, "/proc/"+strconv.Itoa(pid)+"/status")[field], 16, 64)
	if err != nil {
		t.Fatalf("%s: %v", field, err)
	}
	return v
}

func sigBit(s syscall.Signal) uint64 { return 1 << (uint(s) - 1) }

// TestSignalDuringUpload: the real binary, signing from a pipe that stalls,
// ignores SIGHUP, SIGINT, SIGTERM and the signals the Go runtime would dump
// on (SIGQUIT and the rest of dumpSignals) for its grace (a signal then
// changes nothing: the request is signed), and after it catches them: a
// signal ends the request with exit 1, nothing on stdout, one line on
// stderr (no goroutine dump) and a failed record naming it. SIGTERM's masks
// in /proc tell the phases apart: all of them change at once.
func TestSignalDuringUpload(t *testing.T) {
	dir := t.TempDir()
	bin := buildSignstar(t, dir, "-X main.signalGraceForTests=1s")
	cfg, _, logPath := sandboxSetup(t, dir, strictestMode())
	type tcase struct {
		sig   syscall.Signal
		grace bool // sent during the grace
	}
	cases := []tcase{{syscall.SIGTERM, true}, {syscall.SIGTERM, false}, {syscall.SIGHUP, false}, {syscall.SIGQUIT, true}}
	for _, s := range dumpSignals {
		cases = append(cases, tcase{s.(syscall.Signal), false})
	}
	for _, tc := range cases {
		name := tc.sig.String() + " after the grace"
		if tc.grace {
			name = tc.sig.String() + " in the grace"
		}
		t.Run(name, func(t *testing.T) {
			s := startSigning(t, bin, cfg)
			cmd, stdin, stdout, stderr := s.cmd, s.stdin, &s.stdout, &s.stderr
			stdin.Write([]byte("the first bytes of an upload that stalls\n"))
			pid := cmd.Process.Pid
			ignored := func() bool { return sigMask(t, pid, "SigIgn")&sigBit(syscall.SIGTERM) != 0 }
			waitFor := func(what string, cond func() bool) {
				deadline := time.Now().Add(20 * time.Second)
				for !cond() {
					if time.Now().After(deadline) {
						t.Fatalf("%v: not %s after 20s (stderr: %s)", tc.sig, what, stderr.String())
					}
					time.Sleep(time.Millisecond)
				}
			}
			waitFor("ignored", ignored)
			if !tc.grace {
				// Notify installs SIGTERM last (request's stopSignals):
				// SIGTERM caught means every stop signal is.
				waitFor("caught", func() bool { return !ignored() && sigMask(t, pid, "SigCgt")&sigBit(syscall.SIGTERM) != 0 })
			}
			if err := cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			if tc.grace {
				stdin.Write([]byte("and the rest\n"))
				stdin.Close()
			}
			err := s.wait()
			stdin.Close()
			rec := lastAuditRecord(t, logPath)
			if tc.grace {
				if err != nil || stdout.Len() == 0 || rec.Outcome != audit.Signed || stderr.Len() != 0 {
					t.Fatalf("%v in the grace: %v, %d bytes out, record %s %q (stderr: %s)", tc.sig, err, stdout.Len(), rec.Outcome, rec.Reason, stderr.String())
				}
				return
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != exitFailed {
				t.Fatalf("signstar after %v: %v, want exit %d (stderr: %.300s)", tc.sig, err, exitFailed, stderr.String())
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout has %d bytes", stdout.Len())
			}
			want := "interrupted by " + tc.sig.String()
			if rec.Outcome != audit.Failed || !strings.Contains(rec.Reason, want) || !strings.Contains(stderr.String(), want) {
				t.Errorf("record %s %q, stderr %q; want failed, %q", rec.Outcome, rec.Reason, stderr.String(), want)
			}
			if n := strings.Count(stderr.String(), "\n"); n != 1 || !strings.HasPrefix(stderr.String(), "signstar: ") {
				t.Errorf("stderr has %d lines, want one signstar: line: %.300q", n, stderr.String())
			}
		})
	}
}

// TestStalledUploadEnds: the real binary, reading a pipe from a client that
// stops sending but keeps the connection, ends the request after the idle
// timeout with exit 1 and a failed record (a blocking stdin would wait for
// ever, holding the process and, with a PIV profile, the card).
func TestStalledUploadEnds(t *testing.T) {
	dir := t.TempDir()
	bin := buildSignstar(t, dir, "-X main.idleTimeoutForTests=300ms")
	cfg, _, logPath := sandboxSetup(t, dir, strictestMode())
	s := startSigning(t, bin, cfg)
	cmd, stdin, stdout, stderr := s.cmd, s.stdin, &s.stdout, &s.stderr
	defer stdin.Close()
	stdin.Write([]byte("seventeen bytes.\n"))
	exited := make(chan error, 1)
	go func() { exited <- s.wait() }()
	var err error
	select {
	case err = <-exited:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-exited
		t.Fatal("signstar still waiting on a stalled upload after 30s; the idle timeout is 300ms")
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitFailed || stdout.Len() != 0 {
		t.Fatalf("signstar: %v, %d bytes out, want exit %d and none (stderr: %s)", err, stdout.Len(), exitFailed, stderr.String())
	}
	rec := lastAuditRecord(t, logPath)
	if want := "no data from the client for 300ms after 17 bytes"; rec.Outcome != audit.Failed || !strings.Contains(rec.Reason, want) || rec.Size != 17 {
		t.Errorf("record %s %q size %d; want failed, %q", rec.Outcome, rec.Reason, rec.Size, want)
	}
}
