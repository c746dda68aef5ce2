package sshtest

import (
	"testing"

	"github.com/signstar/signstar/internal/testsupport/testenv"
)

// New starts a server for a test: it skips (fails in CI) without root,
// sshd or ssh, fails the test when sshd does not start, and closes the
// server in t.Cleanup, printing sshd's log when the test failed.
func New(t testing.TB, cfg Config) *Server {
	t.Helper()
	testenv.NeedRoot(t)
	SSHD = testenv.NeedTool(t, SSHD, "openssh-server")
	testenv.NeedTool(t, SSH, "openssh-client")
	testenv.NeedTool(t, SSHKeygen, "openssh-client")
	testenv.NeedTool(t, "useradd", "passwd")
	s, err := Start(cfg)
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sshd log:\n%s", s.Log())
		}
		if err := s.Close(); err != nil {
			t.Errorf("sshtest close: %v", err)
		}
	})
	return s
}
