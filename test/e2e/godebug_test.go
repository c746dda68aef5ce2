package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signstar/signstar/internal/testsupport/sshtest"
)

// TestGODEBUGFromClient: a client that sends GODEBUG (inittrace, gctrace,
// schedtrace would each add lines to stderr, inittrace before signstar's
// main runs) gets a signature and an empty stderr: the drop-in's
// "AcceptEnv none" keeps the variable out. The control, the drop-in with
// AcceptEnv GODEBUG, shows the lines arrive, so the check can fail.
func TestGODEBUGFromClient(t *testing.T) {
	opts := []string{"-o", "SetEnv=GODEBUG=inittrace=1,gctrace=1,schedtrace=1"}
	data := []byte("an artifact\n")
	e := newEnclave(t, enclaveOptions{deployment: sshtest.ForceCommand})
	r := e.ssh(t, "client", data, opts, "sign")
	if r.ExitCode != 0 || len(r.Stderr) != 0 {
		t.Fatalf("exit %d, stderr %.300q; want a signature and nothing on stderr", r.ExitCode, r.Stderr)
	}
	e.verifySig(t, data, r.Stdout)
	e.Close()

	src, err := os.ReadFile(repoFile(t, "configs/sshd_config.d/signstar.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(src, []byte("\tAcceptEnv none\n")) {
		t.Fatal("the drop-in has no AcceptEnv none")
	}
	loose := filepath.Join(t.TempDir(), "loose.conf")
	if err := os.WriteFile(loose, bytes.Replace(src, []byte("\tAcceptEnv none\n"), []byte("\tAcceptEnv GODEBUG\n"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	c := newEnclave(t, enclaveOptions{deployment: sshtest.ForceCommand, dropIn: loose})
	r = c.ssh(t, "client", data, opts, "sign")
	if !strings.Contains(string(r.Stderr), "init ") {
		t.Fatalf("control: with AcceptEnv GODEBUG, inittrace lines should reach the client: exit %d, stderr %.300q", r.ExitCode, r.Stderr)
	}
}
