//go:build linux

package sandbox

import (
	"errors"
	"fmt"
	"os"

	seccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// Denied system calls return EPERM rather than killing the process. A call
// the allow-list does not name gains the caller nothing either way, but EPERM
// lets the Go code that made it fail with an error, so signstar still writes
// its "failed" audit record and exits 1: the contract wants every request in
// the log, and a SIGSYS death would leave none. It also keeps a Go runtime or
// libc path that this list missed from crashing the process in the middle of
// a fsync. The exceptions:
//   - clone3 returns ENOSYS, so glibc's pthread_create (used by the Go runtime
//     when cgo is linked in) falls back to clone, whose flags a filter can
//     see; clone3 passes them in memory, out of the filter's reach.
//   - A system call of another ABI (i386 int 0x80, x32) kills the process: Go
//     never makes one, so it can only be injected code dodging this list.
var (
	denyAction    = seccomp.ActErrno.SetReturnCode(int16(unix.EPERM))
	enosysAction  = seccomp.ActErrno.SetReturnCode(int16(unix.ENOSYS))
	badArchAction = seccomp.ActKillProcess
)

// cond is an argument check: arg & mask == value.
type cond struct {
	arg         uint
	mask, value uint64
}

func eq(arg uint, value uint64) cond    { return cond{arg, ^uint64(0), value} }
func noBits(arg uint, bits uint64) cond { return cond{arg, bits, 0} }
func hasAll(arg uint, bits uint64) cond { return cond{arg, bits, bits} }

// rule allows a system call when all its conditions hold; several rules
// for one call are alternatives.
type rule struct {
	name  string
	conds []cond
}

// allowList is what the signing path needs once everything is open: I/O on
// descriptors it holds (audit log, stdin, stdout, stderr, agent or pcscd
// socket), and what the Go runtime and glibc need to run threads, memory,
// timers and signals. Anything that opens, creates or names something new
// (open*, socket, connect, bind, exec*, fork, mount, bpf, keyctl, ptrace,
// process_vm_*, kill, setrlimit, ...) is absent and so denied.
func allowList() []rule {
	var rules []rule
	allow := func(names ...string) {
		for _, n := range names {
			rules = append(rules, rule{name: n})
		}
	}
	allow(
		// I/O on held descriptors. write/pwrite need no filter: the only
		// writable descriptors left are stdout, stderr, the audit log
		// and a connected backend socket.
		"read", "readv", "pread64", "write", "writev",
		"lseek", "fstat", "fsync", "fdatasync", "flock", "close",
		// The audit log cuts a partly written record (EFBIG, ENOSPC).
		"ftruncate",
		// Backend sockets already connected: gpg-agent (Assuan) and
		// pcscd (libpcsclite). No socket, connect, bind or accept.
		"sendmsg", "recvmsg", "sendto", "recvfrom", "shutdown",
		"poll", "ppoll", "select", "pselect6",
		// Go netpoller, which may start late (a pipe on stdin).
		"epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd2",
		// Threads and scheduling.
		"futex", "set_robust_list", "rseq", "restart_syscall",
		"sched_yield", "sched_getaffinity", "getpid", "gettid",
		"getuid", "geteuid", "getgid", "getegid",
		// Memory (mmap and mprotect are below, without PROT_EXEC).
		"brk", "munmap", "madvise", "mremap",
		// Time and randomness.
		"nanosleep", "clock_nanosleep", "clock_gettime", "clock_getres", "gettimeofday", "time",
		"getrandom",
		// Signals: the runtime's handlers and preemption.
		"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack",
		"getrlimit",
		"exit", "exit_group",
	)
	const protExec = unix.PROT_EXEC
	rules = append(rules,
		// No new executable memory: shellcode stays data.
		rule{"mmap", []cond{noBits(2, protExec)}},
		rule{"mprotect", []cond{noBits(2, protExec)}},
		// Threads only: a clone without CLONE_THREAD is a fork.
		rule{"clone", []cond{hasAll(0, unix.CLONE_THREAD|unix.CLONE_VM)}},
		// Signals only to this process's own threads (preemption).
		rule{"tgkill", []cond{eq(0, uint64(os.Getpid()))}},
		// File status flags and close-on-exec; not F_DUPFD, F_SETLK.
		rule{"fcntl", []cond{eq(1, unix.F_GETFD)}},
		rule{"fcntl", []cond{eq(1, unix.F_SETFD)}},
		rule{"fcntl", []cond{eq(1, unix.F_GETFL)}},
		rule{"fcntl", []cond{eq(1, unix.F_SETFL)}},
		// Is stdin a terminal? Read-only; TIOCSTI and the rest stay out.
		rule{"ioctl", []cond{eq(1, unix.TCGETS)}},
		// The runtime names its anonymous mappings (Go 1.25+).
		rule{"prctl", []cond{eq(0, unix.PR_SET_VMA)}},
		// Reading our own limits; setting them is denied.
		rule{"prlimit64", []cond{eq(0, 0), eq(2, 0)}},
	)
	return rules
}

// loadSeccomp builds the filter and loads it on every thread (TSYNC). The
// caller has checked that the kernel supports TSYNC: libseccomp-golang
// silently drops TSYNC when the kernel lacks it.
func loadSeccomp() error {
	f, err := buildFilter()
	if err != nil {
		return err
	}
	defer f.Release()
	if err := f.Load(); err != nil {
		return fmt.Errorf("cannot load the seccomp filter: %v", err)
	}
	return nil
}

// archOptional are the allowed calls that newer architectures (arm64,
// riscv64) do not have; any other name that does not resolve is a mistake in
// allowList and fails the build of the filter.
var archOptional = map[string]bool{"select": true, "poll": true, "epoll_wait": true, "time": true, "getrlimit": true}

func buildFilter() (*seccomp.ScmpFilter, error) {
	f, err := seccomp.NewFilter(denyAction)
	if err != nil {
		return nil, fmt.Errorf("seccomp: %v", err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Release()
		}
	}()
	if err := f.SetBadArchAction(badArchAction); err != nil {
		return nil, fmt.Errorf("seccomp: bad-arch action: %v", err)
	}
	if err := f.SetNoNewPrivsBit(true); err != nil {
		return nil, fmt.Errorf("seccomp: no_new_privs: %v", err)
	}
	clone3, err := seccomp.GetSyscallFromName("clone3")
	if err == nil {
		if err := f.AddRule(clone3, enosysAction); err != nil {
			return nil, fmt.Errorf("seccomp: clone3: %v", err)
		}
	}
	for _, r := range allowList() {
		sc, err := seccomp.GetSyscallFromName(r.name)
		if (errors.Is(err, seccomp.ErrSyscallDoesNotExist) || (err == nil && sc < 0)) && archOptional[r.name] {
			continue
		}
		if err == nil && sc < 0 {
			err = seccomp.ErrSyscallDoesNotExist
		}
		if err != nil {
			return nil, fmt.Errorf("seccomp: %s: %v", r.name, err)
		}
		if len(r.conds) == 0 {
			err = f.AddRule(sc, seccomp.ActAllow)
		} else {
			conds := make([]seccomp.ScmpCondition, len(r.conds))
			for i, c := range r.conds {
				conds[i], err = seccomp.MakeCondition(c.arg, seccomp.CompareMaskedEqual, c.mask, c.value)
				if err != nil {
					return nil, fmt.Errorf("seccomp: %s: %v", r.name, err)
				}
			}
			err = f.AddRuleConditional(sc, seccomp.ActAllow, conds)
		}
		if err != nil {
			return nil, fmt.Errorf("seccomp: %s: %v", r.name, err)
		}
	}
	ok = true
	return f, nil
}
