//go:build linux && !seccompgen

package sandbox

import (
	_ "embed"

	"golang.org/x/sys/unix"
)

// seccompProgram is the filter compiled for linux/amd64 by seccompgen.
//
//go:embed seccomp_amd64.bpf
var seccompProgram []byte

const seccompAuditArch = unix.AUDIT_ARCH_X86_64
