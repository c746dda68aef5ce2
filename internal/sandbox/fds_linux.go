//go:build linux

package sandbox

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// closeOthers closes every descriptor above 2 that is not in keep and not the
// Go runtime's own. Inherited descriptors (from sshd or whatever started us)
// and any the program forgot to close all go.
//
// The runtime's descriptors cannot be named by number, so they are recognised
// by what they are, and only when close-on-exec is set (the runtime always
// sets it; an inherited descriptor never has it, or it would not have
// survived exec): the netpoller's epoll and eventfd, and the cgroup CPU limit
// files it rereads to adjust GOMAXPROCS. Closing those would break the runtime
// (epoll) or let a later descriptor be read in their place.
func closeOthers(keep []int, ownSockets bool) error {
	fds, err := openFDs()
	if err != nil {
		return err
	}
	for _, fd := range fds {
		if slices.Contains(keep, fd) || keepOwn(fd, ownSockets) {
			continue
		}
		if err := unix.Close(fd); err != nil && err != unix.EBADF {
			return fmt.Errorf("cannot close descriptor %d: %v", fd, err)
		}
	}
	for _, fd := range keep {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return fmt.Errorf("descriptor %d to keep is not open: %v", fd, err)
		}
	}
	return nil
}

// closeInherited closes every descriptor above 2 that came in through exec,
// from sshd or a wrapper: an inherited descriptor lacks close-on-exec (or exec
// would have closed it), while everything the runtime opened has it. It is
// best effort: without /proc/self/fd it does nothing, and Lockdown reports
// the missing part.
func closeInherited() {
	fds, err := openFDs()
	if err != nil {
		return
	}
	for _, fd := range fds {
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && flags&unix.FD_CLOEXEC == 0 {
			unix.Close(fd)
		}
	}
}

// openFDs lists the open descriptors above 2, without the one used to list
// them.
func openFDs() ([]int, error) {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return nil, err
	}
	names, err := d.Readdirnames(-1)
	dirFD := int(d.Fd())
	d.Close()
	if err != nil {
		return nil, fmt.Errorf("cannot list /proc/self/fd: %v", err)
	}
	var fds []int
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil {
			return nil, fmt.Errorf("unexpected entry %q in /proc/self/fd", name)
		}
		if fd > 2 && fd != dirFD {
			fds = append(fds, fd)
		}
	}
	return fds, nil
}

// keepOwn reports whether fd is one of the process's own descriptors to
// keep: the runtime's, and its sockets when ownSockets is set.
func keepOwn(fd int, ownSockets bool) bool {
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC == 0 {
		return false
	}
	target, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return false
	}
	if ownSockets && strings.HasPrefix(target, "socket:[") {
		return true
	}
	switch target {
	case "anon_inode:[eventpoll]", "anon_inode:[eventfd]":
		return true
	}
	for _, f := range []string{"/cpu.max", "/cpu.cfs_quota_us", "/cpu.cfs_period_us"} {
		if strings.HasSuffix(target, f) {
			return true
		}
	}
	return false
}
