//go:build !linux

package sandbox

import (
	"errors"
	"runtime"
)

// errUnsupported: signstar's sandbox is Linux-only (Landlock, seccomp).
var errUnsupported = errors.New("sandbox: not supported on " + runtime.GOOS)

// Harden fails: without it keys could end in a core file.
func Harden() error { return errUnsupported }

// Check reports that nothing is available.
func Check() CheckReport {
	c := CheckReport{}
	c.Missing = missingFor(c)
	return c
}

// CheckSimulating is Check; nothing is available to take away.
func CheckSimulating(Parts) CheckReport { return Check() }

// Lockdown refuses in Enforce mode; in best-effort it applies nothing and
// the Report says so.
func Lockdown(opts Options) (Report, error) {
	c := Check()
	if opts.Mode != BestEffort {
		return Report{}, &Error{Mode: opts.Mode, Missing: c.Missing}
	}
	return Report{Missing: c.Missing}, nil
}
