package e2e

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/testsupport/sshtest"
)

// TestSignalsThroughSSH: SIGQUIT, on which the Go runtime would print a
// goroutine dump and exit 2, sent by the client over SSH (a "signal"
// channel request) and by a local process, mid-upload. sshd refuses the
// client's signal for a forced command, so in both README deployments the
// upload goes on and is signed; in the login shell without ForceCommand it
// arrives, and signstar ends the request as an audited failure: exit 1,
// one line on stderr, no trace. A local kill -QUIT does the same in every
// deployment.
func TestSignalsThroughSSH(t *testing.T) {
	for _, d := range append(deployments, sshtest.LoginShell) {
		t.Run(d.String(), func(t *testing.T) {
			e := newEnclave(t, enclaveOptions{deployment: d})
			for _, how := range []string{"client", "kill"} {
				t.Run(how, func(t *testing.T) {
					s := e.dial(t)
					s.upload(t, []byte("the first part\n"))
					pid := e.signstarPID(t)
					// Past signstar's 10 ms grace: it catches SIGTERM (and
					// with it SIGQUIT) instead of ignoring it.
					waitCaught(t, pid)
					if how == "client" {
						if err := s.Signal(ssh.SIGQUIT); err != nil {
							t.Fatal(err)
						}
					} else if err := syscall.Kill(pid, syscall.SIGQUIT); err != nil {
						t.Fatal(err)
					}
					time.Sleep(200 * time.Millisecond)
					// After a delivered signal the session may be over.
					s.stdin.Write([]byte("the rest\n"))
					code, stdout, stderr := s.finish(t)
					recs := e.records(t)
					if len(recs) == 0 {
						t.Fatalf("no record: exit %d, stderr %.300q", code, stderr)
					}
					rec := recs[len(recs)-1]
					delivered := how == "kill" || d == sshtest.LoginShell
					if !delivered {
						if code != 0 || rec.Outcome != audit.Signed || len(stderr) != 0 {
							t.Fatalf("sshd should have refused the signal: exit %d, record %s %q, stderr %q", code, rec.Outcome, rec.Reason, stderr)
						}
						e.verifySig(t, []byte("the first part\nthe rest\n"), stdout)
						return
					}
					want := "signstar: interrupted by quit while reading the artifact\n"
					if code != 1 || len(stdout) != 0 || string(stderr) != want {
						t.Errorf("exit %d, %d bytes out, stderr %.300q; want exit 1, %q", code, len(stdout), stderr, want)
					}
					if rec.Outcome != audit.Failed || rec.Reason != strings.TrimSuffix(strings.TrimPrefix(want, "signstar: "), "\n") {
						t.Errorf("record %s %q", rec.Outcome, rec.Reason)
					}
				})
			}
			e.verifyLog(t, len(e.records(t)))
		})
	}
}

// session is one x/crypto/ssh session running "sign": OpenSSH's client
// cannot send a signal request.
type session struct {
	*ssh.Session
	client         *ssh.Client
	stdin          interface{ Write([]byte) (int, error) }
	closeIn        func() error
	stdout, stderr bytes.Buffer
}

func (e *enclave) dial(t *testing.T) *session {
	t.Helper()
	pem, err := os.ReadFile(e.Key("client").Path)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	known, err := os.ReadFile(filepath.Join(e.Dir, "client", "known_hosts"))
	if err != nil {
		t.Fatal(err)
	}
	_, _, hostKey, _, _, err := ssh.ParseKnownHosts(known)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssh.Dial("tcp", net.JoinHostPort(e.Host, strconv.Itoa(e.Port)), &ssh.ClientConfig{
		User:            e.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(hostKey),
		Timeout:         15 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ss, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	s := &session{Session: ss, client: c}
	in, err := ss.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.stdin, s.closeIn = in, in.Close
	ss.Stdout, ss.Stderr = &s.stdout, &s.stderr
	if err := ss.Start("sign"); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *session) upload(t *testing.T, b []byte) {
	t.Helper()
	if _, err := s.stdin.Write(b); err != nil {
		t.Fatal(err)
	}
}

// finish closes stdin and returns the exit status and output.
func (s *session) finish(t *testing.T) (int, []byte, []byte) {
	t.Helper()
	s.closeIn()
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		t.Fatal("session did not end within a minute")
	}
	code := 0
	if ee, ok := err.(*ssh.ExitError); ok {
		code = ee.ExitStatus()
	} else if err != nil {
		t.Fatalf("session: %v (stderr %q)", err, s.stderr.Bytes())
	}
	return code, s.stdout.Bytes(), s.stderr.Bytes()
}

// signstarPID finds the one signstar process the signer runs.
func (e *enclave) signstarPID(t *testing.T) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		ents, _ := os.ReadDir("/proc")
		var found []int
		for _, ent := range ents {
			pid, err := strconv.Atoi(ent.Name())
			if err != nil {
				continue
			}
			if exe, err := os.Readlink("/proc/" + ent.Name() + "/exe"); err == nil && exe == e.bin {
				found = append(found, pid)
			}
		}
		if len(found) == 1 {
			return found[0]
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("no single signstar process found")
	return 0
}

// waitCaught waits until pid's grace is over: signstar first ignores
// SIGTERM (the runtime catches every signal from the start), then catches
// it again with SIGQUIT and the rest.
func waitCaught(t *testing.T, pid int) {
	t.Helper()
	bit := uint64(1) << (uint(syscall.SIGTERM) - 1)
	mask := func(field string) uint64 {
		status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(l, field+":"); ok {
				m, _ := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
				return m
			}
		}
		t.Fatalf("no %s in /proc/%d/status", field, pid)
		return 0
	}
	deadline := time.Now().Add(20 * time.Second)
	for mask("SigIgn")&bit == 0 {
		if time.Now().After(deadline) {
			t.Fatal("signstar never ignored SIGTERM")
		}
		time.Sleep(time.Millisecond)
	}
	for mask("SigIgn")&bit != 0 || mask("SigCgt")&bit == 0 {
		if time.Now().After(deadline) {
			t.Fatal("signstar never caught SIGTERM after its grace")
		}
		time.Sleep(time.Millisecond)
	}
}
