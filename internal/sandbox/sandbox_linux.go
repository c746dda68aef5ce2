//go:build linux

package sandbox

import (
	"fmt"
	"os"
	"runtime"
	"slices"

	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
	"kernel.org/pub/linux/libs/security/libcap/psx"
)

// Harden makes the process unable to leave its memory behind: RLIMIT_CORE 0
// (soft and hard, so nothing can raise it again) and PR_SET_DUMPABLE 0 (no
// core dump even through a core_pattern pipe, no ptrace attach and no
// /proc/PID/mem for other processes of the same user), and it closes every
// descriptor above 2 inherited through exec, so nothing sshd or a wrapper
// leaked stays reachable. It is harmless to local admin commands and runs
// first thing in main for every mode.
func Harden() error {
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0}); err != nil {
		return fmt.Errorf("sandbox: cannot set RLIMIT_CORE to 0: %v", err)
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("sandbox: cannot clear the dumpable flag: %v", err)
	}
	closeInherited()
	return nil
}

// Check reports what this kernel offers and whether Enforce can be met. It
// changes nothing in the process.
func Check() CheckReport { return probe(0) }

// CheckSimulating is Check on a kernel without the given parts, for tests.
func CheckSimulating(missing Parts) CheckReport { return probe(missing) }

func probe(simulate Parts) CheckReport {
	var c CheckReport
	if simulate&Landlock == 0 {
		if v, err := ll.LandlockGetABIVersion(); err == nil && v > 0 {
			c.LandlockABI = v
		}
	}
	if simulate&Seccomp == 0 {
		probeSeccomp(&c)
	}
	if seccompProgram != nil {
		c.SeccompArch = runtime.GOARCH
	}
	if _, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); err == nil {
		c.NoNewPrivs = true
	}
	if f, err := os.Open("/proc/self/fd"); err == nil {
		f.Close()
		c.ProcFD = true
	}
	if cs, err := readCaps(); err == nil && cs.holds() {
		c.Capabilities = true
	}
	c.Missing = missingFor(c)
	return c
}

// Lockdown confines the process; see the package comment for what it
// applies. Call it once, after the key, audit log and backend socket or card
// are open and before stdin is read.
//
// In Enforce mode it first checks that the kernel offers every part and, if
// not, returns an *Error naming them and changes nothing. Once it has begun
// to apply, any failure is returned as an *Error in both modes, except that
// best-effort goes on without a Landlock or seccomp layer that fails, and
// lists it in Report.Missing. On error the caller must not sign.
func Lockdown(opts Options) (Report, error) {
	var r Report
	if opts.Mode != Enforce && opts.Mode != BestEffort {
		return r, &Error{Mode: opts.Mode, Missing: []Missing{{"mode", fmt.Sprintf("%q is not a mode: use %q or %q", opts.Mode, Enforce, BestEffort)}}}
	}
	caps := probe(opts.Simulate)
	if opts.Mode == Enforce && !caps.Enforceable() {
		return r, &Error{Mode: opts.Mode, Missing: caps.Missing}
	}
	fail := func(part string, err error) (Report, error) {
		return r, &Error{Mode: opts.Mode, Missing: append(r.Missing, Missing{part, err.Error()})}
	}

	if err := checkAppendOnly(opts.AppendFDs); err != nil {
		return fail("append", err)
	}
	if caps.ProcFD {
		if err := closeOthers(append(slices.Clone(opts.KeepFDs), opts.AppendFDs...), opts.KeepOwnSockets); err != nil {
			return fail("fds", err)
		}
		max := opts.MaxFDs
		if max == 0 {
			max = DefaultMaxFDs
		}
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: max, Max: max}); err != nil {
			return fail("fds", fmt.Errorf("setrlimit(RLIMIT_NOFILE, %d): %v", max, err))
		}
		r.FDsClosed = true
	} else {
		r.Missing = append(r.Missing, Missing{"fds", "/proc/self/fd cannot be listed"})
	}

	// Capabilities go on every thread in any mode: a signer started as
	// root, or with file capabilities, would otherwise keep them (create
	// namespaces, override file modes on what it holds).
	if err := dropCapabilities(opts.BoundingSet); err != nil {
		return fail("caps", err)
	}

	if caps.LandlockABI > 0 {
		abi, err := applyLandlock(caps.LandlockABI)
		if err != nil {
			if opts.Mode == Enforce {
				return fail("landlock", err)
			}
			r.Missing = append(r.Missing, Missing{"landlock", err.Error()})
		}
		r.LandlockABI = abi
	} else {
		r.Missing = append(r.Missing, Missing{"landlock", "the kernel offers no Landlock"})
	}

	// no_new_privs on every thread. A successful Landlock restriction has
	// set it on all of them already (go-landlock does so before
	// restricting); otherwise psx runs the prctl on each thread. It must
	// hold even when Landlock and seccomp are both missing. Each psx round
	// signals every thread, so the second one is skipped: it is a large
	// part of the lock-down time.
	if r.LandlockABI == 0 {
		if _, _, errno := psx.Syscall6(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0); errno != 0 {
			return fail("nnp", fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %v", errno))
		}
	}
	if v, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); err != nil || v != 1 {
		return fail("nnp", fmt.Errorf("no_new_privs is not set (%d, %v)", v, err))
	}
	r.NoNewPrivs = true

	// seccomp comes last: Landlock's all-thread setup (psx signals,
	// landlock_* calls) is not on the allow-list. It needs no_new_privs,
	// set above.
	if reason := seccompMissing(caps); reason != "" {
		r.Missing = append(r.Missing, Missing{"seccomp", reason})
	} else if err := loadSeccomp(); err != nil {
		if opts.Mode == Enforce {
			return fail("seccomp", err)
		}
		r.Missing = append(r.Missing, Missing{"seccomp", err.Error()})
	} else {
		r.Seccomp = true
	}
	return r, nil
}

// checkAppendOnly refuses a descriptor that could do more than append: it
// must be open write-only with O_APPEND.
func checkAppendOnly(fds []int) error {
	for _, fd := range fds {
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		if err != nil {
			return fmt.Errorf("descriptor %d to keep append-only is not open: %v", fd, err)
		}
		if fl&unix.O_ACCMODE != unix.O_WRONLY || fl&unix.O_APPEND == 0 {
			return fmt.Errorf("descriptor %d to keep append-only is not open O_WRONLY|O_APPEND (flags %#o)", fd, fl)
		}
	}
	return nil
}
