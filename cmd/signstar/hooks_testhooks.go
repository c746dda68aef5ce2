//go:build testhooks

package main

import "github.com/signstar/signstar/internal/sandbox"

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
	// crashForTests makes a sign request crash once its sandbox is up:
	// "panic" panics on the main goroutine, "goroutine" panics on another
	// one, which no recover reaches.
	crashForTests string
	// refusalLimitsForTests, "PER_CLIENT/IN_WINDOW/SPACING" (e.g.
	// "3/100/400ms"), replaces policy's limits on refusals so that a test
	// reaches them quickly (throttle.go).
	refusalLimitsForTests string
)

// lockdownForTests is sandbox.Lockdown, followed by the crash that
// crashForTests asks for.
func lockdownForTests(o sandbox.Options) (sandbox.Report, error) {
	rep, err := sandbox.Lockdown(o)
	crashIfTesting()
	return rep, err
}

func crashIfTesting() {
	switch crashForTests {
	case "panic":
		panic("crash for tests\nsecond line")
	case "goroutine":
		done := make(chan struct{})
		go func() {
			defer close(done)
			panic("crash for tests on another goroutine")
		}()
		<-done
	}
}
