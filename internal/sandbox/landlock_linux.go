//go:build linux

package sandbox

import (
	"github.com/landlock-lsm/go-landlock/landlock"
)

// newestLandlock is the newest Landlock ABI go-landlock knows; kernels that
// offer more are enforced at this level.
const newestLandlock = 11

// applyLandlock restricts every thread, at the kernel's ABI (at most
// newestLandlock), to nothing: every filesystem access right is handled and
// none is granted, TCP bind and connect (and UDP from ABI 10) are handled with
// no port allowed, and abstract UNIX sockets and signals are scoped to the
// process's own domain. Descriptors opened before keep working: Landlock checks
// access when a file is opened, not when an open descriptor is used.
//
// The one exception is not ours: on kernels before ABI 8, go-landlock applies
// the ruleset to each thread through libpsx, which then lists
// /proc/PID/task; go-landlock grants read-dir on that one directory so the
// call succeeds (go-landlock issue 39). Seccomp denies openat afterwards, so
// it cannot be used.
//
// It returns the ABI whose restrictions are in force.
func applyLandlock(kernelABI int) (int, error) {
	// BestEffort only downgrades to what the kernel offers; Lockdown has
	// already refused in Enforce mode when that is below MinLandlockABI.
	if err := landlock.V11.BestEffort().Restrict(); err != nil {
		return 0, err
	}
	return min(kernelABI, newestLandlock), nil
}
