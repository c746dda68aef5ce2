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

// prepareStdin readies a pipe or socket on stdin for the upload. A pipe is
// grown to 1 MiB (the unprivileged maximum), so that sshd can keep writing
// while a chunk is being hashed instead of stalling on a full 64 KiB pipe
// (failure only costs speed). Both are switched to non-blocking mode and
// handed to Go's poller: os.Stdin as the runtime opens it is a blocking
// descriptor, which takes no read deadline, so neither the idle timeout nor
// a signal could end a read from a client that stalls. A regular file is
// returned as it is (it never stalls). The result must not be asked for
// its Fd, which would make it blocking again.
func prepareStdin(f *os.File) *os.File {
	fi, err := f.Stat()
	if err != nil {
		return f
	}
	fd := int(f.Fd())
	switch {
	case fi.Mode()&os.ModeNamedPipe != 0:
		unix.FcntlInt(uintptr(fd), unix.F_SETPIPE_SZ, 1<<20)
	case fi.Mode()&os.ModeSocket != 0:
	default:
		return f
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return f
	}
	return os.NewFile(uintptr(fd), f.Name())
}
