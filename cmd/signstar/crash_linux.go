package main

import (
	"fmt"
	"os"
	"os/signal"

	"golang.org/x/sys/unix"

	"github.com/signstar/signstar/internal/request"
)

// No stack trace ever reaches a client. Three things see to it:
//
//  1. The signals on which the Go runtime prints a goroutine dump and exits
//     2 (dumpSignals) are ignored from the first line of Main, and caught
//     once a sign request has run for signalGrace, with SIGHUP, SIGINT and
//     SIGTERM: sent by a client (in a login shell without ForceCommand; with
//     ForceCommand sshd refuses client signals) or by a local process, they
//     end the request as an audited failure, exit 1, one line. Ignoring a
//     synchronous signal (SIGSEGV, SIGBUS, SIGFPE...) through os/signal only
//     ignores it when another process sent it; a real fault still panics.
//  2. A panic on the main goroutine is recovered by Main and ends the
//     request as an audited failure ("internal error"), exit 1, one line.
//  3. Whatever the runtime prints itself (a panic elsewhere, a fatal error
//     such as running out of memory, a signal dump, GODEBUG traces) goes to
//     file descriptor 2, and a remote process points that at /dev/null
//     before it reads anything: its own messages go to a private duplicate
//     of the original stderr (quietRuntime). debug.SetTraceback("none")
//     cannot do this: the runtime never prints less than GOTRACEBACK's
//     default, "single".
//
// A local process keeps its stderr as it is: an administrator may see a
// crash in full. Before Main runs (the runtime's and the packages' start-up,
// about a millisecond) the runtime's defaults still apply.

// dumpSignals are request.DumpSignals: those the runtime would dump on.
var dumpSignals = request.DumpSignals

// ignoreDumpSignals runs first in Main. It costs no thread: os/signal
// starts its goroutine only for Notify.
func ignoreDumpSignals() { signal.Ignore(dumpSignals...) }

// quietRuntime gives a remote process a private stderr for its own messages
// and points file descriptor 2, where the runtime writes, at /dev/null (or,
// without one, at a pipe nobody reads: writes fail with EPIPE, and SIGPIPE
// is ignored). It returns the private descriptor, which the lock-down must
// keep, or -1 when it kept stderr as it was because stderr was closed.
func (r *run) quietRuntime() (int, error) {
	fd, err := unix.FcntlInt(2, unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return -1, nil // no stderr to protect
	}
	sink, err := unix.Open("/dev/null", unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("cannot set stderr aside: %v", err)
		}
		unix.Close(p[0])
		sink = p[1]
	}
	if err := unix.Dup2(sink, 2); err != nil {
		unix.Close(sink)
		unix.Close(fd)
		return -1, fmt.Errorf("cannot set stderr aside: %v", err)
	}
	unix.Close(sink)
	r.stderr = os.NewFile(uintptr(fd), "stderr")
	return fd, nil
}

// recovered turns a panic on the main goroutine into an audited failure
// (FailedInternal) once the request has its log, a plain failure before.
// The panic's value is kept to one short line; no stack is printed.
func (r *run) recovered(p any) int {
	msg := oneLine(fmt.Sprint(p))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	reason := "internal error (" + msg + "): please report it"
	if r.rq != nil {
		return r.report(r.rq.Crashed(reason))
	}
	return r.fail(exitFailed, reason)
}
