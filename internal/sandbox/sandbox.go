// Package sandbox confines a signstar process to the one thing it is for:
// turning bytes on stdin into a signature, with the key, audit log and backend
// socket it opened beforehand.
//
// The order is fixed. Harden runs first thing in main, for every mode: no core
// files, not dumpable, so no key ever lands on disk or in another process.
// Lockdown runs once configuration, key, audit log and backend socket or card
// are open and before stdin is read. It closes every other descriptor, sets a
// small RLIMIT_NOFILE, sets no_new_privs on all threads, applies Landlock (no
// filesystem, no TCP, abstract-socket and signal scoping) to all threads and
// drops every capability (effective, permitted, inheritable, ambient, with
// the securebits locked, and on request the bounding set) on all threads,
// and loads a seccomp allow-list with
// TSYNC. Afterwards the process can read the descriptors it holds, append to
// the audit log, write stdout and its backend socket, compute, and exit; it
// cannot open a file, make a socket, start a program, touch another process,
// rewrite or truncate the log, or use a capability.
//
// Landlock and seccomp overlap on purpose: seccomp alone already denies
// open/socket/exec, Landlock still holds if a future allow-list entry or a
// kernel quirk lets one through.
package sandbox

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
)

// Modes, as in the [sandbox] mode configuration key.
const (
	// Enforce refuses to continue unless every part can be applied.
	Enforce = "enforce"
	// BestEffort applies what the kernel supports and says what is missing.
	BestEffort = "best-effort"
)

// Modes are the modes, for the configuration's [sandbox] mode.
var Modes = []string{Enforce, BestEffort}

// MinLandlockABI is the Landlock ABI that Enforce requires: 4 brings TCP
// bind/connect rules, 6 brings abstract UNIX socket and signal scoping.
const MinLandlockABI = 6

// DefaultMaxFDs is the RLIMIT_NOFILE set by Lockdown when Options.MaxFDs is 0:
// stdin, stdout, stderr, the audit log and its index (two descriptors each),
// a backend socket, the syslog socket, the Go runtime's cgroup file, epoll and eventfd, and some
// room for a late netpoll start.
const DefaultMaxFDs = 20

// Parts names sandbox layers, for Options.Simulate.
type Parts uint

// Parts of the sandbox that a kernel may lack.
const (
	Landlock Parts = 1 << iota
	Seccomp
)

// Options configures Lockdown.
type Options struct {
	// Mode is Enforce or BestEffort.
	Mode string
	// KeepFDs are the descriptors beyond 0, 1 and 2 that stay open: the
	// audit log, an agent socket, the pcscd socket. Every other descriptor
	// is closed, except the Go runtime's own (netpoll epoll and eventfd,
	// cgroup CPU limit files), which Lockdown recognises by what they are.
	KeepFDs []int
	// AppendFDs are kept too, and must be open O_WRONLY|O_APPEND: the
	// audit log's write descriptors. Lockdown refuses otherwise, and the
	// seccomp filter keeps every descriptor that has O_APPEND from losing
	// it (no fcntl F_SETFL without O_APPEND), and denies ftruncate,
	// fallocate, pwrite and shared mappings outright, so that held
	// descriptors can only append.
	AppendFDs []int
	// BoundingSet also empties the bounding set of every thread, when the
	// process may (CAP_SETPCAP): 41 all-thread calls, about 2.6 ms. The
	// other capability sets are always emptied (see dropCapabilities).
	BoundingSet bool
	// KeepOwnSockets also keeps the sockets the process opened itself
	// (close-on-exec set, which Go's net package and libpcsclite always
	// set and an inherited descriptor never has): the gpg-agent or pcscd
	// connection of a backend that does not hand out its descriptor.
	KeepOwnSockets bool
	// MaxFDs is the RLIMIT_NOFILE to set (soft and hard); 0 means
	// DefaultMaxFDs.
	MaxFDs uint64
	// Simulate makes Lockdown behave as on a kernel without these parts.
	// It is for tests: production callers leave it zero.
	Simulate Parts
}

// Missing is a part of the sandbox that was not (or could not be) applied.
type Missing struct {
	Part   string // "landlock", "seccomp", "nnp", "fds", "append", "caps"
	Reason string
}

func (m Missing) String() string { return m.Part + ": " + m.Reason }

// Report says what Lockdown enforced.
type Report struct {
	// LandlockABI is the Landlock ABI whose restrictions are in force; 0
	// when Landlock is not.
	LandlockABI int
	// Seccomp is true when the allow-list is loaded on all threads.
	Seccomp bool
	// NoNewPrivs is true when no_new_privs is set on all threads.
	NoNewPrivs bool
	// FDsClosed is true when every descriptor but 0, 1, 2, KeepFDs and
	// the runtime's own was closed and RLIMIT_NOFILE lowered.
	FDsClosed bool
	// Missing lists what was not applied, in best-effort mode.
	Missing []Missing
}

// String is the audit record's sandbox field: "landlock=7,seccomp,nnp" when
// all is in force; a part that is not reads "=none", e.g.
// "landlock=none,seccomp,nnp". Descriptors are named only when they could
// not be closed: ",fds=none".
func (r Report) String() string {
	var b strings.Builder
	if r.LandlockABI > 0 {
		b.WriteString("landlock=" + strconv.Itoa(r.LandlockABI))
	} else {
		b.WriteString("landlock=none")
	}
	if r.Seccomp {
		b.WriteString(",seccomp")
	} else {
		b.WriteString(",seccomp=none")
	}
	if r.NoNewPrivs {
		b.WriteString(",nnp")
	} else {
		b.WriteString(",nnp=none")
	}
	if !r.FDsClosed {
		b.WriteString(",fds=none")
	}
	return b.String()
}

// Error means the sandbox could not be applied as the mode requires: in
// Enforce mode, a part the kernel lacks or that failed to apply; in either
// mode, a step that must never fail (closing descriptors, limits,
// no_new_privs). The process must not go on to read stdin or sign.
type Error struct {
	Mode    string
	Missing []Missing
}

func (e *Error) Error() string {
	parts := make([]string, len(e.Missing))
	for i, m := range e.Missing {
		parts[i] = m.String()
	}
	return fmt.Sprintf("sandbox (mode %q) cannot be applied: %s", e.Mode, strings.Join(parts, "; "))
}

// Parts lists the names of the missing parts, e.g. ["landlock"].
func (e *Error) Parts() []string {
	out := make([]string, len(e.Missing))
	for i, m := range e.Missing {
		out[i] = m.Part
	}
	return out
}

// CheckReport is what this kernel offers, for `signstar sandbox check`.
type CheckReport struct {
	// LandlockABI is the kernel's Landlock ABI version, 0 when absent.
	LandlockABI int
	// Seccomp is true when the kernel can load seccomp filters with
	// seccomp(2).
	Seccomp bool
	// TSync is true when a filter can be applied to all threads at once.
	TSync bool
	// SeccompActions is true when the kernel offers the actions the
	// filter returns: SECCOMP_RET_ERRNO and SECCOMP_RET_KILL_PROCESS
	// (Linux 4.14).
	SeccompActions bool
	// SeccompArch is the architecture whose compiled filter this binary
	// carries (amd64, arm64); empty when it carries none.
	SeccompArch string
	// NoNewPrivs is true when prctl(PR_SET_NO_NEW_PRIVS) is available.
	NoNewPrivs bool
	// ProcFD is true when /proc/self/fd can be listed (to close
	// inherited descriptors).
	ProcFD bool
	// Capabilities is true when this process holds capabilities (run as
	// root, or with file capabilities): Lockdown drops them all.
	Capabilities bool
	// Missing is what keeps Enforce from being met; empty when it can be.
	Missing []Missing
}

// Enforceable reports whether mode "enforce" can be met on this kernel.
func (c CheckReport) Enforceable() bool { return len(c.Missing) == 0 }

// CanMeet reports whether mode can be met: best-effort always can.
func (c CheckReport) CanMeet(mode string) bool {
	return mode == BestEffort || (mode == Enforce && c.Enforceable())
}

// String is the report, one "name: value" line each.
func (c CheckReport) String() string {
	yes := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "no"
	}
	var b strings.Builder
	if c.LandlockABI > 0 {
		fmt.Fprintf(&b, "landlock: ABI %d%s\n", c.LandlockABI, landlockScope(c.LandlockABI))
	} else {
		b.WriteString("landlock: none\n")
	}
	fmt.Fprintf(&b, "seccomp: %s\n", yes(c.Seccomp))
	fmt.Fprintf(&b, "seccomp tsync: %s\n", yes(c.TSync))
	fmt.Fprintf(&b, "seccomp actions errno, kill-process: %s\n", yes(c.SeccompActions))
	if c.SeccompArch != "" {
		fmt.Fprintf(&b, "seccomp filter: compiled for %s\n", c.SeccompArch)
	} else {
		fmt.Fprintf(&b, "seccomp filter: none for %s/%s\n", runtime.GOOS, runtime.GOARCH)
	}
	fmt.Fprintf(&b, "no_new_privs: %s\n", yes(c.NoNewPrivs))
	fmt.Fprintf(&b, "close inherited descriptors: %s\n", yes(c.ProcFD))
	if c.Capabilities {
		b.WriteString("capabilities: held now (root?); lock-down drops them on every thread, bounding set too\n")
	} else {
		b.WriteString("capabilities: none held\n")
	}
	if c.Seccomp && c.SeccompArch != "" {
		b.WriteString("audit log append-only: O_WRONLY|O_APPEND descriptor; seccomp denies clearing O_APPEND, ftruncate, fallocate, pwrite, shared mappings\n")
	} else {
		b.WriteString("audit log append-only: O_WRONLY|O_APPEND descriptor only (no seccomp): keep chattr +a\n")
	}
	if c.Enforceable() {
		b.WriteString("enforce: can be met\n")
	} else {
		parts := make([]string, len(c.Missing))
		for i, m := range c.Missing {
			parts[i] = m.String()
		}
		fmt.Fprintf(&b, "enforce: cannot be met: %s\n", strings.Join(parts, "; "))
	}
	return b.String()
}

func landlockScope(abi int) string {
	switch {
	case abi >= 6:
		return " (filesystem, TCP bind/connect, abstract socket and signal scoping)"
	case abi >= 4:
		return " (filesystem, TCP bind/connect; no scoping)"
	default:
		return " (filesystem only)"
	}
}

// missingFor lists what keeps Enforce from being met on a kernel with these
// capabilities.
func missingFor(c CheckReport) []Missing {
	var out []Missing
	if c.LandlockABI < MinLandlockABI {
		out = append(out, Missing{"landlock", fmt.Sprintf("the kernel offers Landlock ABI %d, enforce needs %d (boot with lsm=...,landlock)", c.LandlockABI, MinLandlockABI)})
	}
	if reason := seccompMissing(c); reason != "" {
		out = append(out, Missing{"seccomp", reason})
	}
	if !c.NoNewPrivs {
		out = append(out, Missing{"nnp", "prctl(PR_SET_NO_NEW_PRIVS) is not available"})
	}
	if !c.ProcFD {
		out = append(out, Missing{"fds", "/proc/self/fd cannot be listed: mount /proc"})
	}
	return out
}

// seccompMissing is why the seccomp filter cannot be loaded with these
// capabilities; empty when it can.
func seccompMissing(c CheckReport) string {
	switch {
	case !c.Seccomp:
		return "the kernel cannot load seccomp filters (CONFIG_SECCOMP_FILTER)"
	case !c.TSync:
		return "the kernel cannot apply a seccomp filter to all threads (no TSYNC)"
	case !c.SeccompActions:
		return "the kernel lacks the seccomp actions the filter returns: SECCOMP_RET_ERRNO and SECCOMP_RET_KILL_PROCESS (Linux 4.14)"
	case c.SeccompArch == "":
		return "signstar has no compiled seccomp filter for " + runtime.GOOS + "/" + runtime.GOARCH + " (only linux/amd64 and linux/arm64)"
	}
	return ""
}
