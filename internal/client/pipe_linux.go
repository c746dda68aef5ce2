package client

import (
	"os"

	"golang.org/x/sys/unix"
)

// growPipe asks for a 1 MiB pipe buffer (the default is 64 KiB), so the
// tar writer and ssh trade the stream in fewer, larger turns; a refusal
// (over /proc/sys/fs/pipe-max-size) leaves the default.
func growPipe(f *os.File) {
	unix.FcntlInt(f.Fd(), unix.F_SETPIPE_SZ, 1<<20)
}
