package sshenv

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signstar/signstar/internal/testsupport/sshtest"
)

// helperArg makes the test binary, started by sshd as the forced command,
// print what this package reads from the session.
const helperArg = "sshenv-helper"

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[len(os.Args)-1] == helperArg {
		fp, err := KeyFingerprint(os.Getenv)
		data, _ := os.ReadFile(os.Getenv("SSH_USER_AUTH"))
		fmt.Printf("client=%s\nkey=%s\nerr=%v\n---\n%s", Client(os.Getenv), fp, err, data)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestRealSSHD runs this package's functions inside a session of a real
// sshd, as the signer user, and compares with what the harness knows.
func TestRealSSHD(t *testing.T) {
	dir, err := sshtest.SafeTempDir("sshenv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	prog := filepath.Join(dir, "sshenv.test")
	if err := copyFile(self, prog, 0o755); err != nil {
		t.Fatal(err)
	}
	s := sshtest.New(t, sshtest.Config{Program: prog, Args: []string{"-test.run=^$", helperArg}, Keys: []string{"a", "b"}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, k := range []string{"a", "b"} {
		r, err := s.Run(ctx, nil, k, nil)
		if err != nil || r.ExitCode != 0 {
			t.Fatalf("ssh: %v, exit %d, stderr %q", err, r.ExitCode, r.Stderr)
		}
		out, capture, _ := strings.Cut(string(r.Stdout), "---\n")
		want := fmt.Sprintf("client=127.0.0.1\nkey=%s\nerr=<nil>\n", s.Key(k).Fingerprint)
		if out != want {
			t.Errorf("key %s: got\n%s\nwant\n%s", k, out, want)
		}
		if !strings.HasPrefix(capture, "publickey ssh-ed25519 ") {
			t.Errorf("ExposeAuthInfo file: %q", capture)
		}
	}
}

func copyFile(from, to string, mode os.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
