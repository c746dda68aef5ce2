package main

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// clientGone reports whether the reader of stdout has gone away. When an
// SSH connection drops, sshd closes the session's stdout pipe before its
// stdin pipe, so an EOF on stdin that comes from a lost connection is seen
// here as POLLERR or POLLHUP on stdout, and a truncated upload is not signed.
func clientGone(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fds := []unix.PollFd{{Fd: int32(f.Fd()), Events: unix.POLLOUT}}
	n, err := unix.Poll(fds, 0)
	if err != nil || n == 0 {
		return false
	}
	return fds[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0
}

// closeInheritedFDs closes every descriptor above 2 that the process did
// not open itself: sshd or a wrapper may leak some, and nothing the client
// can influence should stay reachable. It keeps the Go runtime's own
// (epoll, eventfd, pidfd) descriptors.
func closeInheritedFDs() {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return
	}
	names, _ := d.Readdirnames(-1)
	self := int(d.Fd())
	var toClose []int
	for _, n := range names {
		fd, err := strconv.Atoi(n)
		if err != nil || fd <= 2 || fd == self {
			continue
		}
		target, err := os.Readlink("/proc/self/fd/" + n)
		if err != nil || strings.HasPrefix(target, "anon_inode:") {
			continue
		}
		toClose = append(toClose, fd)
	}
	d.Close()
	for _, fd := range toClose {
		unix.Close(fd)
	}
}
