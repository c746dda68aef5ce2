package agent

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Assuan limits. A line is at most 1000 bytes plus CR LF (libassuan's
// ASSUAN_LINELENGTH); a whole reply (data, status and comment lines together)
// is bounded so that a broken or hostile agent cannot make us buffer without
// end. The largest legitimate reply, an RSA-16384 sig-val fully
// percent-escaped, is under 8 KiB.
const (
	maxLine       = 1002
	maxReply      = 64 << 10
	maxDataLine   = 1000 - len("D ") // bytes of escaped data per line we send
	maxRedirectSz = 1024
)

// DefaultTimeout bounds every command sent to the agent (its whole reply,
// inquiries included). A card behind the agent takes a few seconds at most.
var DefaultTimeout = 30 * time.Second

// GnuPG error codes (libgpg-error, err-codes.h) we act on. The agent puts
// its source in the high byte; only the low 16 bits are the code.
const (
	codeBadPassphrase = 11
	codeNoSecretKey   = 17
	codeCanceled      = 99
	codeNoPinentry    = 85
	codeFullyCanceled = 198
	codeInvLength     = 139
	codeAssCanceled   = 277 // the client (we) answered an INQUIRE with CAN
)

// ErrNoSocket means nothing accepts connections at the configured socket.
var ErrNoSocket = errors.New("no gpg-agent listens at the socket")

// ErrAgentDead means the agent closed the connection or sent nothing we
// could read: it was stopped, killed or restarted.
var ErrAgentDead = errors.New("gpg-agent closed the connection")

// ErrAgentHung means the agent did not answer within the timeout.
var ErrAgentHung = errors.New("gpg-agent did not answer in time")

// ErrProtocol means the agent's reply broke the Assuan protocol or our size
// limits.
var ErrProtocol = errors.New("gpg-agent sent a malformed reply")

// AgentError is an ERR reply: the agent refused a command. Unwrap maps the
// codes signstar acts on to ErrBadPassphrase, ErrKeyNotInAgent and
// ErrNeedPassphrase.
type AgentError struct {
	Command string // the command verb, e.g. "PKSIGN"
	Code    uint32 // the full gpg-error value, source included
	Text    string // the agent's description
}

func (e *AgentError) Error() string {
	return fmt.Sprintf("gpg-agent refused %s: %s (error %d)", e.Command, e.Text, e.Code)
}

// Unwrap maps well-known codes to this package's sentinels.
func (e *AgentError) Unwrap() error {
	switch e.Code & 0xffff {
	case codeBadPassphrase:
		return ErrBadPassphrase
	case codeNoSecretKey:
		return ErrKeyNotInAgent
	}
	return nil
}

// conn is one Assuan connection to the agent. It is not safe for concurrent
// use; Signer serialises calls.
type conn struct {
	nc      net.Conn // nil when reading a recorded reply (fuzzing)
	r       *bufio.Reader
	w       io.Writer
	timeout time.Duration
	// status, when set, receives the status lines (S) of the replies, as
	// the agent sent them (keyword, and arguments still escaped).
	status func(keyword, args string)
}

// captureReply, when set (by tests), receives every raw reply read: it is
// how the fuzz seed corpus was recorded from a real agent.
var captureReply func(verb string, raw []byte)

// deadline bounds the next exchange.
func (c *conn) deadline(d time.Duration) error {
	if c.nc == nil {
		return nil
	}
	return c.nc.SetDeadline(time.Now().Add(d))
}

// dial connects to the agent's socket and reads its greeting. socket may be
// GnuPG's redirection file ("%Assuan%\nsocket=/abs/path\n"); it is followed
// once, and only to an absolute path.
func dial(socket string, timeout time.Duration) (*conn, error) {
	path, err := resolveSocket(socket)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: timeout}
	nc, err := d.Dial("unix", path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNoSocket, path, unwrapSyscall(err))
	}
	c := &conn{nc: nc, r: bufio.NewReaderSize(nc, maxLine), w: nc, timeout: timeout}
	if err := c.deadline(timeout); err != nil {
		nc.Close()
		return nil, err
	}
	if _, err := c.readReply("greeting", nil); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// resolveSocket follows a GnuPG socket redirection file. Anything that is
// not such a file (a socket, or a path that does not exist) is returned as
// it is, and the dial reports it.
func resolveSocket(socket string) (string, error) {
	fi, err := os.Stat(socket)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("%w: %s does not exist (is gpg-agent running, is its socket bind-mounted here?)", ErrNoSocket, socket)
		}
		return "", fmt.Errorf("%w: %v", ErrNoSocket, unwrapSyscall(err))
	}
	if !fi.Mode().IsRegular() {
		return socket, nil
	}
	f, err := os.Open(socket)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoSocket, unwrapSyscall(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxRedirectSz+1))
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoSocket, unwrapSyscall(err))
	}
	target, err := parseRedirect(data)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrNoSocket, socket, err)
	}
	return target, nil
}

// parseRedirect reads libassuan's redirection file format: the line
// "%Assuan%" and then a line "socket=PATH". Only absolute paths are accepted:
// a relative one would depend on our working directory, and libassuan's
// ${VAR} expansion would let the environment choose the socket.
func parseRedirect(data []byte) (string, error) {
	if len(data) > maxRedirectSz {
		return "", errors.New("is a regular file larger than a socket redirection")
	}
	rest, ok := bytes.CutPrefix(data, []byte("%Assuan%\n"))
	if !ok {
		return "", errors.New("is a regular file, neither a socket nor a GnuPG socket redirection")
	}
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	target, ok := bytes.CutPrefix(line, []byte("socket="))
	if !ok {
		return "", errors.New("socket redirection without a socket= line")
	}
	t := string(target)
	if !strings.HasPrefix(t, "/") || strings.ContainsAny(t, "$\x00") {
		return "", fmt.Errorf("socket redirection to %q: only absolute paths without variables are followed", t)
	}
	return t, nil
}

// unwrapSyscall drops Go's "dial unix ..." prefixes, keeping the errno text.
func unwrapSyscall(err error) error {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func (c *conn) Close() error {
	// Say goodbye so the agent does not log a broken connection; a dead
	// agent makes this fail, which does not matter on close.
	c.deadline(time.Second)
	io.WriteString(c.w, "BYE\n")
	if c.nc == nil {
		return nil
	}
	return c.nc.Close()
}

// inquiry answers an INQUIRE keyword with the data to send, or refuses it
// (we then send CAN, and the agent fails the command).
type inquiry func(keyword string, args string) (data []byte, ok bool)

// transact sends one command line and reads its reply: the concatenated,
// unescaped data of its D lines. An ERR reply is an *AgentError.
func (c *conn) transact(cmd string, inq inquiry) ([]byte, error) {
	verb, _, _ := strings.Cut(cmd, " ")
	if err := c.deadline(c.timeout); err != nil {
		return nil, c.ioError(verb, err)
	}
	if len(cmd)+1 > maxLine || strings.ContainsAny(cmd, "\r\n") {
		return nil, fmt.Errorf("assuan command %s too long or with a line break", verb)
	}
	if _, err := io.WriteString(c.w, cmd+"\n"); err != nil {
		return nil, c.ioError(verb, err)
	}
	return c.readReply(verb, inq)
}

// readReply reads lines up to the final OK or ERR, answering inquiries.
func (c *conn) readReply(verb string, inq inquiry) ([]byte, error) {
	var data, raw []byte
	if captureReply != nil {
		defer func() { captureReply(verb, raw) }()
	}
	total := 0
	for {
		line, err := c.readLine()
		if err != nil {
			return nil, c.ioError(verb, err)
		}
		if captureReply != nil {
			raw = append(append(raw, line...), '\n')
		}
		total += len(line) + 1
		if total > maxReply {
			return nil, fmt.Errorf("%w: reply to %s larger than %d bytes", ErrProtocol, verb, maxReply)
		}
		r, err := parseLine(line)
		if err != nil {
			return nil, fmt.Errorf("%w: to %s: %v", ErrProtocol, verb, err)
		}
		switch r.kind {
		case lineOK:
			return data, nil
		case lineERR:
			return nil, &AgentError{Command: verb, Code: r.code, Text: r.text}
		case lineData:
			data = append(data, r.data...)
		case lineStatus:
			if c.status != nil {
				c.status(r.keyword, r.text)
			}
		case lineComment:
		case lineInquire:
			if err := c.answer(verb, r, inq); err != nil {
				return nil, err
			}
		}
	}
}

// answer replies to one INQUIRE: D lines and END, or CAN.
func (c *conn) answer(verb string, r reply, inq inquiry) error {
	var out []byte
	ok := false
	if inq != nil {
		out, ok = inq(r.keyword, r.text)
	}
	var msg []byte
	if ok {
		msg = appendData(nil, out)
		msg = append(msg, "END\n"...)
		clear(out)
	} else {
		msg = []byte("CAN\n")
	}
	_, err := c.w.Write(msg)
	clear(msg)
	if err != nil {
		return c.ioError(verb, err)
	}
	return nil
}

// readLine reads one line without its LF (and CR), refusing lines over the
// Assuan limit.
func (c *conn) readLine() ([]byte, error) {
	line, err := c.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return nil, fmt.Errorf("%w: line longer than %d bytes", ErrProtocol, maxLine)
	}
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			return nil, fmt.Errorf("%w: connection closed in the middle of a line", ErrAgentDead)
		}
		return nil, err
	}
	line = line[:len(line)-1]
	line = bytes.TrimSuffix(line, []byte("\r"))
	return line, nil
}

// ioError turns a connection error into ErrAgentDead or ErrAgentHung.
func (c *conn) ioError(verb string, err error) error {
	if errors.Is(err, ErrProtocol) || errors.Is(err, ErrAgentDead) {
		return err
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: no reply to %s within %v", ErrAgentHung, verb, c.timeout)
	}
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: during %s", ErrAgentDead, verb)
	}
	return fmt.Errorf("%w: during %s: %v", ErrAgentDead, verb, unwrapSyscall(err))
}

type lineKind int

const (
	lineOK lineKind = iota
	lineERR
	lineData
	lineStatus
	lineComment
	lineInquire
)

// reply is one parsed server line.
type reply struct {
	kind    lineKind
	code    uint32 // ERR
	text    string // ERR description, OK/S/INQUIRE arguments
	keyword string // S and INQUIRE keyword
	data    []byte // D, unescaped
}

// parseLine parses one line the agent sent (without its line end).
func parseLine(line []byte) (reply, error) {
	verb, rest, _ := bytes.Cut(line, []byte(" "))
	switch string(verb) {
	case "OK":
		return reply{kind: lineOK, text: string(rest)}, nil
	case "ERR":
		num, text, _ := bytes.Cut(rest, []byte(" "))
		code, err := strconv.ParseUint(string(num), 10, 32)
		if err != nil {
			return reply{}, fmt.Errorf("ERR line with a bad code %q", clip(num))
		}
		return reply{kind: lineERR, code: uint32(code), text: printable(text)}, nil
	case "D":
		if len(line) < 2 {
			return reply{}, errors.New("data line (D) without a space")
		}
		d, err := unescape(rest)
		if err != nil {
			return reply{}, err
		}
		return reply{kind: lineData, data: d}, nil
	case "S", "INQUIRE":
		kw, args, _ := bytes.Cut(rest, []byte(" "))
		if len(kw) == 0 {
			return reply{}, fmt.Errorf("%s line without a keyword", verb)
		}
		k := lineStatus
		if string(verb) == "INQUIRE" {
			k = lineInquire
		}
		return reply{kind: k, keyword: string(kw), text: string(args)}, nil
	case "#":
		return reply{kind: lineComment}, nil
	}
	if len(line) > 0 && line[0] == '#' {
		return reply{kind: lineComment}, nil
	}
	return reply{}, fmt.Errorf("unknown line %q", clip(line))
}

func clip(b []byte) string {
	if len(b) > 40 {
		b = b[:40]
	}
	return printable(b)
}

// printable keeps agent text safe for a one-line error message.
func printable(b []byte) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, string(b))
}

// unescape decodes Assuan's percent-escaping of a D line: %XX with two hex
// digits; any other '%' is an error.
func unescape(s []byte) ([]byte, error) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			out = append(out, s[i])
			continue
		}
		if i+2 >= len(s) {
			return nil, errors.New("truncated percent escape in a D line")
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("bad percent escape %q in a D line", s[i:i+3])
		}
		out = append(out, hi<<4|lo)
		i += 2
	}
	return out, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// appendData appends data as D lines, percent-escaping '%', CR and LF as
// libassuan does (and every other control byte, which the agent decodes the
// same way), splitting so no line passes the Assuan limit.
func appendData(dst, data []byte) []byte {
	const hexd = "0123456789ABCDEF"
	n := 0
	for _, b := range data {
		if n == 0 {
			dst = append(dst, 'D', ' ')
		}
		if b == '%' || b < 0x20 || b == 0x7f {
			dst = append(dst, '%', hexd[b>>4], hexd[b&15])
			n += 3
		} else {
			dst = append(dst, b)
			n++
		}
		if n >= maxDataLine-3 {
			dst = append(dst, '\n')
			n = 0
		}
	}
	if n > 0 {
		dst = append(dst, '\n')
	}
	return dst
}
