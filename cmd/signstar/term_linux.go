package main

import (
	"os"

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

// growPipe enlarges a pipe on stdin to 1 MiB (the unprivileged maximum), so
// that sshd can keep writing while a chunk is being hashed instead of
// stalling on a full 64 KiB pipe. Failure only costs speed.
func growPipe(f *os.File) {
	if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeNamedPipe != 0 {
		unix.FcntlInt(f.Fd(), unix.F_SETPIPE_SZ, 1<<20)
	}
}
