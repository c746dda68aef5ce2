package pivemu

import (
	"net"

	"golang.org/x/sys/unix"
)

// quickACK makes the kernel acknowledge the next segments on conn at once.
// vpcd writes each message as two send(2)s (length, then data) with
// Nagle's algorithm on; with delayed ACKs here, the second waited 40 ms
// for the first's ACK, on every APDU. Linux clears the flag again as it
// pleases, so it is set before each read.
func quickACK(conn net.Conn) {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK, 1)
	})
}
