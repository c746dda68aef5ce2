//go:build linux

package sandbox

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
	"kernel.org/pub/linux/libs/security/libcap/psx"
)

// capState is one thread's capabilities: the three sets capget reports
// (64 bits each, two words of 32), the bounding set and whether any ambient
// capability is raised.
type capState struct {
	effective, permitted, inheritable uint64
	bounding                          uint64
	ambient                           bool
}

func (c capState) holds() bool {
	return c.effective|c.permitted|c.inheritable != 0 || c.ambient
}

// readCaps reads the calling thread's capabilities.
func readCaps() (capState, error) {
	var c capState
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return c, fmt.Errorf("capget: %v", err)
	}
	c.effective = uint64(data[0].Effective) | uint64(data[1].Effective)<<32
	c.permitted = uint64(data[0].Permitted) | uint64(data[1].Permitted)<<32
	c.inheritable = uint64(data[0].Inheritable) | uint64(data[1].Inheritable)<<32
	// The kernel answers EINVAL past its last capability.
	for capNum := 0; capNum < 64; capNum++ {
		v, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(capNum), 0, 0, 0)
		if err != nil {
			break
		}
		if v == 1 {
			c.bounding |= 1 << capNum
		}
		if a, err := unix.PrctlRetInt(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_IS_SET, uintptr(capNum), 0, 0); err == nil && a == 1 {
			c.ambient = true
		}
	}
	return c, nil
}

// Securebits set and locked by dropCapabilities (linux/securebits.h): uid
// 0 gets no capabilities from exec or from a uid change, none are kept
// across one, and none can be raised into the ambient set.
const (
	secbitNoroot                = 1 << 0
	secbitNorootLocked          = 1 << 1
	secbitNoSetuidFixup         = 1 << 2
	secbitNoSetuidFixupLocked   = 1 << 3
	secbitKeepCapsLocked        = 1 << 5
	secbitNoCapAmbientRaise     = 1 << 6
	secbitNoCapAmbientRaiseLock = 1 << 7
	lockedSecurebits            = secbitNoroot | secbitNorootLocked | secbitNoSetuidFixup | secbitNoSetuidFixupLocked |
		secbitKeepCapsLocked | secbitNoCapAmbientRaise | secbitNoCapAmbientRaiseLock
)

// dropCapabilities empties the capabilities of every thread: effective,
// permitted, inheritable and ambient, with the securebits locked so that
// none comes back (which needs CAP_SETPCAP, so only a process that holds it
// can and does), and with bounding also the bounding set. capset and prctl
// act on the calling thread only, so each goes to every thread through psx,
// as Landlock's restriction does.
//
// The bounding set takes one all-thread round per capability (41 on Linux
// 6), about 2.6 ms here, where the rest takes two or three. With the other
// sets empty, no_new_privs and the securebits locked it cannot be used (it
// only caps what an exec could grant, and exec grants nothing then), so
// cmd/signstar pays for it where the threat is, on remote requests.
//
// A process that holds no capability (the signing user of the README) has
// nothing to drop and pays nothing: its bounding set stays as it is, which
// no_new_privs makes harmless, and it can exec nothing.
func dropCapabilities(bounding bool) error {
	before, err := readCaps()
	if err != nil {
		return err
	}
	if !before.holds() {
		return nil
	}
	setpcap := before.effective&(1<<unix.CAP_SETPCAP) != 0
	if setpcap && bounding {
		for capNum := 0; capNum < 64; capNum++ {
			if before.bounding&(1<<capNum) == 0 {
				continue
			}
			if _, _, errno := psx.Syscall6(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(capNum), 0, 0, 0, 0); errno != 0 {
				return fmt.Errorf("prctl(PR_CAPBSET_DROP, %d): %v", capNum, errno)
			}
		}
	}
	if setpcap {
		if _, _, errno := psx.Syscall6(unix.SYS_PRCTL, unix.PR_SET_SECUREBITS, lockedSecurebits, 0, 0, 0, 0); errno != 0 {
			return fmt.Errorf("prctl(PR_SET_SECUREBITS): %v", errno)
		}
	}
	if before.ambient {
		if _, _, errno := psx.Syscall6(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0, 0); errno != 0 {
			return fmt.Errorf("prctl(PR_CAP_AMBIENT_CLEAR_ALL): %v", errno)
		}
	}
	// Heap objects, so that their addresses stay valid while psx runs the
	// call on the other threads.
	hdr := &unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := new([2]unix.CapUserData)
	_, _, errno := psx.Syscall6(unix.SYS_CAPSET, uintptr(unsafe.Pointer(hdr)), uintptr(unsafe.Pointer(data)), 0, 0, 0, 0)
	runtime.KeepAlive(hdr)
	runtime.KeepAlive(data)
	if errno != 0 {
		return fmt.Errorf("capset to no capabilities: %v", errno)
	}
	after, err := readCaps()
	if err != nil {
		return err
	}
	if after.holds() || (setpcap && bounding && after.bounding != 0) {
		return fmt.Errorf("capabilities are still held after dropping them (effective %#x, permitted %#x, bounding %#x)", after.effective, after.permitted, after.bounding)
	}
	return nil
}
