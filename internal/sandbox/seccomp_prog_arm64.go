//go:build linux && !seccompgen

package sandbox

import (
	_ "embed"

	"golang.org/x/sys/unix"
)

// seccompProgram is the filter compiled for linux/arm64 by seccompgen.
//
//go:embed seccomp_arm64.bpf
var seccompProgram []byte

const seccompAuditArch = unix.AUDIT_ARCH_AARCH64
