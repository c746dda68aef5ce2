//go:build !testhooks

package main

import "github.com/signstar/signstar/internal/sandbox"

// The test hooks exist only in a binary built with -tags testhooks
// (hooks_testhooks.go). Here they are constants: nothing in the release
// binary can switch a sandbox part off or change a timeout, and no symbol
// is left for -ldflags -X to set. Check a binary with
//
//	go tool nm bin/signstar | grep -c -e ForTests -e sandboxSimulate   # 0
//	go version -m bin/signstar | grep -c testhooks                     # 0
const (
	sandboxSimulate     = ""
	idleTimeoutForTests = ""
	signalGraceForTests = ""
	crashForTests       = ""
	// refusalLimitsForTests: see hooks_testhooks.go.
	refusalLimitsForTests = ""
)

// lockdownForTests is not reached without the tag (crashForTests is ""),
// and the compiler leaves it out.
func lockdownForTests(o sandbox.Options) (sandbox.Report, error) { return sandbox.Lockdown(o) }
