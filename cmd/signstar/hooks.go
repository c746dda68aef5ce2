//go:build !testhooks

package main

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
)
