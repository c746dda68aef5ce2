//go:build linux

package sandbox

// The seccomp policy as data. This file imports neither cgo nor libseccomp:
// seccompgen (go generate) compiles it with libseccomp into
// seccomp_amd64.bpf and seccomp_arm64.bpf, and the binary only loads the
// program for its architecture (seccomp_load_linux.go). After a change here,
// run go generate ./internal/sandbox; a test fails until the programs match.

//go:generate go run -tags seccompgen ./seccompgen

import (
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
//
// The actions are SECCOMP_RET_* values, as the filter returns them.
const (
	denyAction    = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	enosysAction  = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	badArchAction = unix.SECCOMP_RET_KILL_PROCESS
)

// pidSentinel stands for this process's pid in the compiled program (the
// tgkill rule): the pid is only known at run time, so the loader puts it in
// the place of the sentinel, which it requires to occur exactly once. Pids
// are below 2^22, so the value cannot be a real one, and it is none of the
// program's syscall numbers, architectures, actions or other constants.
const pidSentinel = 0x5eca1d00

// SeccompCond is an argument check: arg & mask == value.
type SeccompCond struct {
	Arg         uint
	Mask, Value uint64
}

type cond = SeccompCond

func eq(arg uint, value uint64) cond    { return cond{arg, ^uint64(0), value} }
func noBits(arg uint, bits uint64) cond { return cond{arg, bits, 0} }
func hasAll(arg uint, bits uint64) cond { return cond{arg, bits, bits} }

// SeccompRule allows a system call when all its conditions hold; several
// rules for one call are alternatives.
type SeccompRule struct {
	Name  string
	Conds []SeccompCond
}

type rule = SeccompRule

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
			rules = append(rules, rule{Name: n})
		}
	}
	allow(
		// I/O on held descriptors. write needs no filter: the only
		// writable descriptors left are stdout, stderr, the audit log's
		// O_APPEND one, a connected backend socket and the connected
		// syslog socket. pwrite, ftruncate, fallocate, copy_file_range
		// and the like are absent: the audit log is only ever appended
		// to (Options.AppendFDs).
		"read", "readv", "pread64", "write", "writev",
		"lseek", "fstat", "fsync", "fdatasync", "flock", "close",
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
		// No new executable memory: shellcode stays data. No shared
		// mapping either (MAP_SHARED, and MAP_SHARED_VALIDATE, which has
		// its bit): a writable one of the audit log would write past
		// O_APPEND. The Go runtime maps MAP_PRIVATE|MAP_ANON only.
		rule{"mmap", []cond{noBits(2, protExec), noBits(3, unix.MAP_SHARED)}},
		rule{"mprotect", []cond{noBits(2, protExec)}},
		// Threads only: a clone without CLONE_THREAD is a fork, and one
		// with a CLONE_NEW* flag a thread in a new namespace.
		// (One masked comparison: libseccomp takes one per argument.)
		rule{"clone", []cond{{0, unix.CLONE_THREAD | unix.CLONE_VM | cloneNewNS, unix.CLONE_THREAD | unix.CLONE_VM}}},
		// Signals only to this process's own threads (preemption). The
		// loader puts os.Getpid() in the place of the sentinel.
		rule{"tgkill", []cond{eq(0, pidSentinel)}},
		// File status flags and close-on-exec; not F_DUPFD, F_SETLK.
		rule{"fcntl", []cond{eq(1, unix.F_GETFD)}},
		rule{"fcntl", []cond{eq(1, unix.F_SETFD)}},
		rule{"fcntl", []cond{eq(1, unix.F_GETFL)}},
		// Setting file status flags only with O_APPEND among them: the
		// audit log's descriptor cannot lose it.
		rule{"fcntl", []cond{eq(1, unix.F_SETFL), hasAll(2, unix.O_APPEND)}},
		// Is stdin a terminal? Read-only; TIOCSTI and the rest stay out.
		rule{"ioctl", []cond{eq(1, unix.TCGETS)}},
		// The runtime names its anonymous mappings (Go 1.25+).
		rule{"prctl", []cond{eq(0, unix.PR_SET_VMA)}},
		// Reading our own limits; setting them is denied.
		rule{"prlimit64", []cond{eq(0, 0), eq(2, 0)}},
	)
	return rules
}

// cloneNewNS are clone's namespace flags. CLONE_NEWTIME is not among them:
// its bit is part of the exit signal in clone, and only clone3 and unshare
// take it (both denied).
const cloneNewNS = unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
	unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET

// archOptional are the allowed calls that newer architectures (arm64,
// riscv64) do not have; any other name that does not resolve is a mistake in
// allowList and fails the build of the filter.
var archOptional = map[string]bool{"select": true, "poll": true, "epoll_wait": true, "time": true, "getrlimit": true}

// SeccompPolicy is the filter as data, for seccompgen to compile. Actions
// are SECCOMP_RET_* values.
type SeccompPolicy struct {
	// DefaultAction answers a call that no rule allows: EPERM.
	DefaultAction uint32
	// BadArchAction answers a call of another ABI: kill the process.
	BadArchAction uint32
	// Clone3Action answers clone3: ENOSYS.
	Clone3Action uint32
	// Allow are the allow rules, in order.
	Allow []SeccompRule
	// ArchOptional are the allowed calls an architecture may lack.
	ArchOptional map[string]bool
	// PIDSentinel is the value the tgkill rule compares arg 0 with, in
	// place of the pid; it must occur exactly once in a compiled program.
	PIDSentinel uint32
}

// SeccompRules returns the seccomp policy, for seccompgen. The binary does
// not use it: it loads the program compiled from it.
func SeccompRules() SeccompPolicy {
	opt := make(map[string]bool, len(archOptional))
	for n := range archOptional {
		opt[n] = true
	}
	return SeccompPolicy{
		DefaultAction: denyAction,
		BadArchAction: badArchAction,
		Clone3Action:  enosysAction,
		Allow:         allowList(),
		ArchOptional:  opt,
		PIDSentinel:   pidSentinel,
	}
}
