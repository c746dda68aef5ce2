// Package testenv is shared by tests that need real peers (gpgv, sqv, sshd,
// gpg-agent, pacman, pcscd). Outside CI a missing peer skips the test with the
// Debian package to install; in CI (CI=true) it fails, because a green run
// that tested nothing is worse than a red one.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run in CI.
func InCI() bool { return os.Getenv("CI") == "true" }

// NeedTool returns the path of program, or skips (fails in CI) naming the
// Debian package that provides it.
func NeedTool(t testing.TB, program, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(program)
	if err != nil {
		Missing(t, program+" not found: apt-get install "+debianPackage)
	}
	return p
}

// Missing skips the test, or fails it in CI.
func Missing(t testing.TB, why string) {
	t.Helper()
	if InCI() {
		t.Fatalf("peer missing in CI: %s", why)
	}
	t.Skipf("peer missing: %s (CI=true makes this a failure)", why)
}

// NeedRoot skips (fails in CI) when the test is not run as root.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "this test needs root")
	}
}
