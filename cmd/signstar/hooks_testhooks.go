//go:build testhooks

package main

// Test hooks, set with -ldflags -X in a binary built with -tags testhooks
// (the cmd/signstar e2e tests' buildSignstar); `make build` leaves them out
// (hooks.go). Nothing a user or client sends can reach them.
var (
	// sandboxSimulate names sandbox parts ("landlock", "seccomp",
	// comma-separated) to treat as missing from the kernel.
	sandboxSimulate string
	// idleTimeoutForTests replaces request.IdleTimeout.
	idleTimeoutForTests string
	// signalGraceForTests replaces request.SignalGrace, so that a test can
	// see both phases.
	signalGraceForTests string
)
