//go:build linux

package sandbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The program is libseccomp's output for the policy in seccomp_rules_linux.go,
// compiled at go generate time and embedded for GOARCH (seccompProgram,
// seccompAuditArch in seccomp_prog_*.go); on an architecture without one,
// seccompProgram is nil and Check reports seccomp missing. Loading it needs
// neither cgo nor libseccomp.

// bpfMaxInsns is the kernel's limit on a classic BPF program (BPF_MAXINSNS).
const bpfMaxInsns = 4096

// seccompFilter decodes prog, a struct sock_filter array as libseccomp's
// seccomp_export_bpf writes it (little-endian on amd64 and arm64), checks that
// it tests for the architecture arch first, and puts pid in the place of
// pidSentinel, which must occur exactly once, as the operand of a comparison.
func seccompFilter(prog []byte, arch uint32, pid int) ([]unix.SockFilter, error) {
	if len(prog) == 0 || len(prog)%8 != 0 || len(prog)/8 > bpfMaxInsns {
		return nil, fmt.Errorf("the compiled seccomp program has %d bytes, not 1 to %d instructions of 8", len(prog), bpfMaxInsns)
	}
	if pid <= 0 || pid > 1<<22 {
		return nil, fmt.Errorf("pid %d is out of range", pid)
	}
	f := make([]unix.SockFilter, len(prog)/8)
	for i := range f {
		b := prog[8*i:]
		f[i] = unix.SockFilter{
			Code: binary.LittleEndian.Uint16(b[0:]),
			Jt:   b[2],
			Jf:   b[3],
			K:    binary.LittleEndian.Uint32(b[4:]),
		}
	}
	// libseccomp starts with "ld [4]" (seccomp_data.arch) and "jeq #arch":
	// a program for another architecture would kill the process at its
	// next system call.
	if len(f) < 2 || f[0] != (unix.SockFilter{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 4}) ||
		f[1].Code != unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K || f[1].K != arch {
		return nil, fmt.Errorf("the compiled seccomp program does not begin with a test for architecture %#x", arch)
	}
	at := -1
	for i, in := range f {
		if in.K != pidSentinel {
			continue
		}
		if at >= 0 {
			return nil, fmt.Errorf("the pid placeholder %#x occurs more than once in the compiled seccomp program (instructions %d and %d)", pidSentinel, at, i)
		}
		at = i
	}
	if at < 0 {
		return nil, fmt.Errorf("the pid placeholder %#x does not occur in the compiled seccomp program", pidSentinel)
	}
	if f[at].Code != unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K {
		return nil, fmt.Errorf("the pid placeholder in the compiled seccomp program is the operand of opcode %#x, not of jeq", f[at].Code)
	}
	f[at].K = uint32(pid)
	return f, nil
}

// loadSeccomp loads the compiled filter on every thread: seccomp(2) with
// SECCOMP_FILTER_FLAG_TSYNC. no_new_privs must be set already (Lockdown
// sets it first); without it the kernel refuses.
func loadSeccomp() error {
	if seccompProgram == nil {
		return errors.New("signstar has no compiled seccomp filter for linux/" + runtime.GOARCH)
	}
	f, err := seccompFilter(seccompProgram, seccompAuditArch, os.Getpid())
	if err != nil {
		return err
	}
	prog := unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]}
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(f)
	switch {
	case errno != 0:
		return fmt.Errorf("cannot load the seccomp filter: %v", errno)
	case r != 0:
		// With TSYNC, a positive result is a thread that could not
		// take the filter (it has one of its own); none was loaded.
		return fmt.Errorf("cannot load the seccomp filter on every thread: thread %d cannot be synchronised", r)
	}
	return nil
}

// probeSeccomp fills in what the kernel offers for the compiled filter:
// seccomp(2) with TSYNC and the filter's actions. It loads nothing.
func probeSeccomp(c *CheckReport) {
	// PR_GET_SECCOMP fails with EINVAL on a kernel built without seccomp.
	if _, err := unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0); err != nil {
		return
	}
	// The kernel checks the flags before it reads the program: with a
	// NULL program, EFAULT means seccomp(2) exists (Linux 3.17) and knows
	// TSYNC, EINVAL that it does not know TSYNC, ENOSYS that there is no
	// seccomp(2).
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, 0)
	switch errno {
	case unix.EFAULT:
		c.Seccomp, c.TSync = true, true
	case unix.EINVAL:
		c.Seccomp = true
	default:
		return
	}
	// SECCOMP_GET_ACTION_AVAIL (Linux 4.14, like KILL_PROCESS) for each
	// action the filter returns; EINVAL on older kernels.
	c.SeccompActions = true
	for _, a := range []uint32{denyAction, enosysAction, badArchAction} {
		a &= unix.SECCOMP_RET_ACTION_FULL
		if _, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_GET_ACTION_AVAIL, 0, uintptr(unsafe.Pointer(&a))); errno != 0 {
			c.SeccompActions = false
		}
	}
}
