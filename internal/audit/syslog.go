package audit

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Syslog is the local syslog socket ([audit] syslog), to which every record
// is also sent, as one datagram, once it is on disk (Tx.Append): the syslog
// daemon (rsyslog, journald) takes it off the host. It is connected before
// the sandbox locks down and only written to afterwards (a connected
// datagram socket's write, which the seccomp filter allows and Landlock
// does not restrict for a socket with a path).
//
// The message is the form glibc's syslog(3) sends to /dev/log, which
// journald and rsyslog's imuxsock both parse (RFC 3164 with no host name):
//
//	<PRI>Mmm dd hh:mm:ss signstar[PID]: LINE
//
// PRI is facility authpriv with severity info for a signed record, notice
// for a refused and warning for a failed one; the time is UTC; LINE is the
// record's line byte for byte, without its newline. Both daemons take MSG
// as everything after "signstar[PID]: " (journald's MESSAGE, rsyslog's msg
// after its leading space), and a line holds no control bytes (JSON
// escapes them), so nothing of it is rewritten on the way.
type Syslog struct {
	path string
	// Required is [audit] syslog_required: a record that does not reach
	// the socket fails the request (SyslogError), and a socket that
	// cannot be connected fails every sign request before stdin is read.
	Required bool
	fd       int
	err      error // why fd is -1
	pid      int
	now      func() time.Time
}

// SyslogTimeout bounds how long a required send waits for a daemon whose
// queue is full. Without syslog_required a send never waits: a daemon that
// is behind loses the message, and the local log still has it.
const SyslogTimeout = 5 * time.Second

// Syslog facility and severities (RFC 5424, table 1 and 2).
const (
	syslogAuthpriv = 10
	syslogWarning  = 4
	syslogNotice   = 5
	syslogInfo     = 6
)

// DialSyslog connects a datagram socket to the syslog socket at path. It
// never fails: a socket that cannot be connected is kept as its error,
// which Err returns and every Send repeats.
func DialSyslog(path string, required bool) *Syslog {
	s := &Syslog{path: path, Required: required, fd: -1, pid: unix.Getpid(), now: time.Now}
	s.err = s.dial()
	return s
}

func (s *Syslog) dial() error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("cannot make a socket: %v", err)
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: s.path}); err != nil {
		unix.Close(fd)
		return fmt.Errorf("cannot connect: %v", err)
	}
	if s.Required {
		tv := unix.NsecToTimeval(SyslogTimeout.Nanoseconds())
		err = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	} else {
		err = unix.SetNonblock(fd, true)
	}
	if err != nil {
		unix.Close(fd)
		return fmt.Errorf("cannot set the send timeout: %v", err)
	}
	s.fd = fd
	return nil
}

// Path is the socket's path.
func (s *Syslog) Path() string { return s.path }

// Err is why the socket is not connected; nil when it is.
func (s *Syslog) Err() error { return s.err }

// FD is the connected socket, for the sandbox to keep; -1 when there is
// none.
func (s *Syslog) FD() int { return s.fd }

// Close closes the socket.
func (s *Syslog) Close() error {
	if s.fd < 0 {
		return nil
	}
	err := unix.Close(s.fd)
	s.fd = -1
	return err
}

// Send sends one record line (without its newline) whose outcome is
// outcome.
func (s *Syslog) Send(outcome string, line []byte) error {
	if s.fd < 0 {
		return s.err
	}
	msg := SyslogMessage(nil, s.now(), s.pid, outcome, line)
	for {
		n, err := unix.Write(s.fd, msg)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			if s.Required {
				return fmt.Errorf("the daemon took nothing for %v (its queue is full)", SyslogTimeout)
			}
			return errors.New("the daemon's queue is full")
		}
		if err != nil {
			return err
		}
		if n != len(msg) {
			return fmt.Errorf("sent %d of %d bytes", n, len(msg))
		}
		return nil
	}
}

// SyslogMessage appends to b the datagram that carries line (see Syslog).
func SyslogMessage(b []byte, t time.Time, pid int, outcome string, line []byte) []byte {
	sev := syslogInfo
	switch outcome {
	case Refused:
		sev = syslogNotice
	case Failed:
		sev = syslogWarning
	}
	b = append(b, '<')
	b = strconv.AppendInt(b, syslogAuthpriv*8+int64(sev), 10)
	b = append(b, '>')
	b = t.UTC().AppendFormat(b, time.Stamp)
	b = append(b, " signstar["...)
	b = strconv.AppendInt(b, int64(pid), 10)
	b = append(b, "]: "...)
	return append(b, line...)
}

// SyslogError means that a record is in the log, on disk, but did not
// reach the syslog socket, and [audit] syslog_required is set: the request
// must not release a signature.
type SyslogError struct {
	Seq  uint64
	Path string
	Err  error
}

func (e *SyslogError) Error() string {
	return fmt.Sprintf("record %d is in the audit log but could not be sent to the syslog socket %s: %v", e.Seq, e.Path, e.Err)
}

func (e *SyslogError) Unwrap() error { return e.Err }

// Forward makes every record appended from now on go to s as well, after
// it is on disk. The log closes s when it is closed.
func (l *Log) Forward(s *Syslog) { l.syslog = s }

// Syslog is the socket records are forwarded to; nil when none.
func (l *Log) Syslog() *Syslog { return l.syslog }

// forward sends a record just written to the syslog socket, if there is
// one. A failed send is an error only when the socket is required.
func (tx *Tx) forward(r *Record, line []byte) error {
	s := tx.l.syslog
	if s == nil {
		return nil
	}
	if err := s.Send(r.Outcome, line); err != nil && s.Required {
		return &SyslogError{Seq: r.Seq, Path: s.path, Err: err}
	}
	return nil
}
