package tpm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// maxResponse bounds a TPM response: TPM 2.0 Part 2 lets a TPM declare up to
// MAX_RESPONSE_SIZE, which is 4096 on every PC Client TPM and in swtpm.
const maxResponse = 4096

// Timeout bounds one TPM command, from writing it to reading the whole
// response. A TPM (or swtpm) that another client holds does not answer; the
// command then fails with a BusyError instead of hanging the request. Tests
// shorten it.
var Timeout = 30 * time.Second

// onResponse, when set by a test, sees each command and its response (to
// record the fuzz corpus).
var onResponse func(cmd, rsp []byte)

// conn is one open TPM: the character device (/dev/tpmrm0) or, for tests,
// a connection to swtpm's command socket. It implements go-tpm's
// transport.TPM with a strict reader of responses.
type conn struct {
	path string
	rw   io.ReadWriteCloser
	// deadline sets the read and write deadline of rw.
	deadline func(time.Time) error
	// fd is the device's descriptor, which must survive the lock-down;
	// -1 for a socket (the sandbox keeps the process's own sockets).
	fd int
	// raw is true for /dev/tpm0 (no resource manager).
	raw bool
}

// dial opens the TPM at path: a character device is opened read-write, a
// unix socket is taken to be swtpm's command socket (swtpm socket --server
// type=unixio,path=PATH), which tests use. Nothing else is accepted.
func dial(path string) (*conn, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &NoTPMError{Path: path, Err: err}
		}
		return nil, fmt.Errorf("TPM %s: %v", path, errText(err))
	}
	switch {
	case fi.Mode()&os.ModeCharDevice != 0:
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			if errors.Is(err, unix.EBUSY) {
				// /dev/tpm0 admits one opener: tpm2-abrmd or another
				// program has it.
				return nil, &BusyError{Path: path, Open: true}
			}
			if errors.Is(err, os.ErrPermission) {
				return nil, fmt.Errorf("TPM %s: permission denied: run signstar as a member of the tss group (or the device's group)", path)
			}
			return nil, &NoTPMError{Path: path, Err: err}
		}
		// The number without f.Fd(), which would take the descriptor out
		// of the poller and so out of reach of the deadline.
		fd := -1
		if sc, err := f.SyscallConn(); err == nil {
			sc.Control(func(u uintptr) { fd = int(u) })
		}
		if fd < 0 {
			f.Close()
			return nil, fmt.Errorf("TPM %s: cannot read its descriptor", path)
		}
		return &conn{path: path, rw: f, deadline: f.SetDeadline, fd: fd, raw: isRawDevice(path)}, nil
	case fi.Mode()&os.ModeSocket != 0:
		nc, err := net.DialTimeout("unix", path, Timeout)
		if err != nil {
			return nil, &NoTPMError{Path: path, Err: err}
		}
		return &conn{path: path, rw: nc, deadline: nc.SetDeadline, fd: -1}, nil
	}
	return nil, fmt.Errorf("TPM %s is neither a character device (/dev/tpmrm0) nor swtpm's command socket: fix [profile.tpm] device", path)
}

func isRawDevice(path string) bool {
	return len(path) >= len("/dev/tpm0") && path[:8] == "/dev/tpm" && path[8] >= '0' && path[8] <= '9'
}

// Send writes one command and returns the whole response. It never reads
// beyond the response the header declares, refuses declared sizes outside
// 10..maxResponse, and fails with a BusyError when the TPM does not answer
// within Timeout.
//
// A TPM that answers TPM_RC_RETRY, TPM_RC_YIELDED or TPM_RC_TESTING did not
// start the command; it is sent again, with a growing pause, within
// Timeout.
func (c *conn) Send(cmd []byte) ([]byte, error) {
	start := time.Now()
	pause := time.Millisecond
	for {
		rsp, err := c.send(cmd)
		if err != nil || len(rsp) < 10 {
			return rsp, err
		}
		switch binary.BigEndian.Uint32(rsp[6:10]) {
		case 0x922, 0x908, 0x90a: // TPM_RC_RETRY, TPM_RC_YIELDED, TPM_RC_TESTING
			if time.Since(start)+pause > Timeout {
				return nil, &BusyError{Path: c.path, Waited: Timeout}
			}
			time.Sleep(pause)
			pause = min(2*pause, 500*time.Millisecond)
			continue
		}
		return rsp, nil
	}
}

func (c *conn) send(cmd []byte) ([]byte, error) {
	if c.rw == nil {
		return nil, errors.New("the TPM connection is closed")
	}
	if c.deadline != nil {
		if err := c.deadline(time.Now().Add(Timeout)); err != nil && !errors.Is(err, os.ErrNoDeadline) {
			return nil, err
		}
	}
	if _, err := c.rw.Write(cmd); err != nil {
		return nil, c.ioErr("sending a command to", err)
	}
	buf := make([]byte, maxResponse)
	n := 0
	for {
		m, err := c.rw.Read(buf[n:])
		n += m
		if n >= 10 {
			size, perr := responseSize(buf[:n])
			if perr != nil {
				return nil, perr
			}
			if n >= size {
				if n > size {
					return nil, fmt.Errorf("TPM %s sent %d bytes for a response of %d", c.path, n, size)
				}
				if onResponse != nil {
					onResponse(cmd, buf[:n])
				}
				return buf[:n], nil
			}
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, c.ioErr("reading the response of", err)
		}
		if m == 0 {
			return nil, c.ioErr("reading the response of", io.ErrNoProgress)
		}
	}
}

// responseSize reads the size field of a response header (tag, size, code)
// and checks it.
func responseSize(b []byte) (int, error) {
	tag := binary.BigEndian.Uint16(b[0:2])
	size := binary.BigEndian.Uint32(b[2:6])
	if tag != 0x8001 && tag != 0x8002 && tag != 0x00c4 { // no sessions, sessions, TPM 1.2 reply
		return 0, fmt.Errorf("the TPM's response has tag %#04x: not a TPM 2.0 response", tag)
	}
	if size < 10 || size > maxResponse {
		return 0, fmt.Errorf("the TPM's response declares %d bytes (allowed 10 to %d)", size, maxResponse)
	}
	return int(size), nil
}

func (c *conn) ioErr(what string, err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return &BusyError{Path: c.path, Waited: Timeout}
	}
	return fmt.Errorf("%s TPM %s: %v", what, c.path, errText(err))
}

// Close closes the device or socket.
func (c *conn) Close() error {
	if c.rw == nil {
		return nil
	}
	err := c.rw.Close()
	c.rw = nil
	return err
}

func errText(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return err.Error()
}
