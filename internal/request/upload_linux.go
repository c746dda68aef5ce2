package request

import (
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
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

// uploadReader reads the artifact from stdin. Every read of a pipe or
// socket first waits in poll(2) for data, for at most idle, and for the
// wake eventfd that stopOnSignal writes: a client that stalls, or a
// signal, ends the read with os.ErrDeadlineExceeded. stdin itself stays a
// blocking descriptor read by the thread that waits: Go's poller (a
// non-blocking stdin and read deadlines) would put a park and a wake-up on
// every read that finds the pipe empty, which over ssh cost a tenth of the
// transfer time. A regular file never stalls and is read directly.
type uploadReader struct {
	f      *os.File
	fd     int
	wake   int  // eventfd, written once by stopOnSignal
	stream bool // a pipe or socket: poll before reading
	idle   time.Duration
	// sig is the signal that asked us to stop, once one has.
	sig atomic.Value
}

// newUploadReader prepares stdin, to be read with idle as the longest
// stall. A pipe is grown to 1 MiB (the unprivileged
// maximum), so that sshd can keep writing while a chunk is being hashed
// instead of stalling on a full 64 KiB pipe; failure only costs speed. It
// must run before the lock-down (it opens the eventfd, which is never
// closed: a late signal must not write to a descriptor number reused).
func newUploadReader(f *os.File, idle time.Duration) (*uploadReader, error) {
	u := &uploadReader{f: f, fd: int(f.Fd()), idle: idle}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("cannot create an eventfd: %v", err)
	}
	u.wake = wake
	if fi, err := f.Stat(); err == nil {
		switch {
		case fi.Mode()&os.ModeNamedPipe != 0:
			unix.FcntlInt(uintptr(u.fd), unix.F_SETPIPE_SZ, 1<<20)
			u.stream = true
		case fi.Mode()&(os.ModeSocket|os.ModeCharDevice) != 0:
			u.stream = true
		}
	}
	return u, nil
}

func (u *uploadReader) Read(p []byte) (int, error) {
	if u.interrupted() != nil {
		return 0, os.ErrDeadlineExceeded
	}
	if u.stream {
		if err := u.wait(); err != nil {
			return 0, err
		}
	}
	return u.f.Read(p)
}

// wait returns when stdin has data, an end or an error to read, or with
// os.ErrDeadlineExceeded after idle without any, or once stopOnSignal ran.
func (u *uploadReader) wait() error {
	deadline := time.Now().Add(u.idle)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return os.ErrDeadlineExceeded
		}
		ms := int((left + time.Millisecond - 1) / time.Millisecond)
		fds := []unix.PollFd{{Fd: int32(u.fd), Events: unix.POLLIN}, {Fd: int32(u.wake), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, ms)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.SyscallError{Syscall: "poll", Err: err}
		}
		if fds[1].Revents != 0 || u.interrupted() != nil {
			return os.ErrDeadlineExceeded
		}
		if n > 0 {
			return nil // readable, or POLLHUP/POLLERR for the read to report
		}
	}
}

// interrupted is the signal that stopped the upload, nil when none did.
func (u *uploadReader) interrupted() os.Signal {
	s, _ := u.sig.Load().(os.Signal)
	return s
}

// DumpSignals are the signals whose default in a Go program is a goroutine
// dump and exit 2 (the runtime's sigtable). The command line ignores them
// from its first line; after SignalGrace they stop the upload like SIGTERM.
// Ignoring a synchronous one (SIGSEGV, SIGBUS, SIGFPE...) through os/signal
// ignores it only when another process sent it: a real fault still panics.
var DumpSignals = []os.Signal{
	syscall.SIGQUIT, syscall.SIGILL, syscall.SIGTRAP, syscall.SIGABRT,
	syscall.SIGBUS, syscall.SIGFPE, syscall.SIGSEGV, unix.SIGSTKFLT, syscall.SIGSYS,
}

// stopSignals in the order Notify installs them: SIGTERM last, so that once
// /proc shows SIGTERM caught every other one is caught too (the runtime
// keeps its own handler for the synchronous ones, so /proc cannot show
// those).
var stopSignals = append(append([]os.Signal{}, DumpSignals...), syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)

// stopOnSignal turns SIGHUP, SIGINT, SIGTERM and DumpSignals into the end of the upload
// (a read error), so that the request is audited as failed instead of
// vanishing. Catching them starts os/signal's threads; sign calls it only
// once a request has run for SignalGrace.
func (u *uploadReader) stopOnSignal() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, stopSignals...)
	go func() {
		s := <-ch
		u.sig.Store(s)
		var one [8]byte
		one[0] = 1 // eventfd counters are host-endian; any nonzero value wakes poll
		unix.Write(u.wake, one[:])
	}()
}
