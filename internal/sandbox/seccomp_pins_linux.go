//go:build linux && (amd64 || arm64)

package sandbox

import "golang.org/x/sys/unix"

// seccompgen builds the programs for amd64 and arm64 on one machine, with
// that machine's values of the unix constants in allowList and the actions.
// Each line below fails to compile unless a constant has the value given
// (golang.org/x/sys/unix has them in zerrors_linux.go or, for TCGETS and
// ENOSYS, in zerrors_linux_amd64.go and zerrors_linux_arm64.go), so a build
// for either architecture proves they are the same on both. The seccompgen
// tests build this package for arm64 on an amd64 machine, and for amd64 on
// any other.
var (
	_ [0]struct{} = [unix.PROT_EXEC ^ 0x4]struct{}{}
	_ [0]struct{} = [unix.CLONE_THREAD ^ 0x10000]struct{}{}
	_ [0]struct{} = [unix.CLONE_VM ^ 0x100]struct{}{}
	_ [0]struct{} = [unix.F_GETFD ^ 0x1]struct{}{}
	_ [0]struct{} = [unix.F_SETFD ^ 0x2]struct{}{}
	_ [0]struct{} = [unix.F_GETFL ^ 0x3]struct{}{}
	_ [0]struct{} = [unix.F_SETFL ^ 0x4]struct{}{}
	_ [0]struct{} = [unix.O_APPEND ^ 0x400]struct{}{}
	_ [0]struct{} = [unix.MAP_SHARED ^ 0x1]struct{}{}
	_ [0]struct{} = [cloneNewNS ^ 0x7e020000]struct{}{}
	_ [0]struct{} = [unix.TCGETS ^ 0x5401]struct{}{}
	_ [0]struct{} = [unix.PR_SET_VMA ^ 0x53564d41]struct{}{}
	_ [0]struct{} = [uintptr(unix.EPERM) ^ 0x1]struct{}{}
	_ [0]struct{} = [uintptr(unix.ENOSYS) ^ 0x26]struct{}{}
)
