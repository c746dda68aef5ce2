// Copyright 2026 The signstar Authors
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
//     https://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

//go:build linux

package piv

// A pure-Go client for pcsc-lite's pcscd (signstar patch, see SIGNSTAR.md at
// the module root; upstream issue go-piv/piv-go#82). It replaces the cgo
// wrapper of libpcsclite (pcsc_unix.go) on Linux and speaks the protocol
// libpcsclite speaks to pcscd over its UNIX socket: a header {uint32 size;
// uint32 command} and then a fixed C struct of src/winscard_msg.h, in host
// byte order; pcscd answers with the same struct (rv filled in), and
// SCARD_TRANSMIT moves the APDU and its response after the struct. Each
// context has its own connection, as in libpcsclite; its handles and
// transactions use it too. A connection kept by PreparePCSC
// (pcsc_keep_linux.go) serves one context after another.
//
// It keeps libpcsclite's semantics for the calls piv.go uses, and its
// return codes, so errors read as they did (scErr, pcsc_errors.go). It
// differs where libpcsclite would trust its peer or environment: the socket
// path is fixed (PCSCLITE_CSOCK_NAME and PCSCLITE_NO_BLOCKING are not read),
// every reply has a deadline, and a reply is read only up to the size its
// request allows.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// pcscdSocket is pcscd's socket (PCSCLITE_CSOCK_NAME of Debian's and most
// distributions' builds). It is deliberately not taken from the environment.
const pcscdSocket = "/run/pcscd/pcscd.comm"

// Versions of the client/server protocol (PROTOCOL_VERSION_MAJOR/MINOR).
// 4:4 is pcsc-lite 1.8.24 to 2.2.3 (Debian 12 has 1.9.9); 2.3.0 moved to
// 4:5, which only adds CMD_GET_READER_EVENTS, unused here; 2.4.1 and later
// accept both. A server that refuses 4:4 and names 4:5 is asked again in 4:5.
const (
	protocolMajor    = 4
	protocolMinor    = 4
	protocolMinorNew = 5
)

// Commands (enum pcsc_msg_commands).
const (
	cmdEstablishContext = 0x01
	cmdReleaseContext   = 0x02
	cmdConnect          = 0x04
	cmdDisconnect       = 0x06
	cmdBeginTransaction = 0x07
	cmdEndTransaction   = 0x08
	cmdTransmit         = 0x09
	cmdVersion          = 0x11
	cmdGetReadersState  = 0x12
)

// Values of pcsclite.h.
const (
	scardScopeSystem    = 0x0002
	scardShareExclusive = 0x0001
	scardProtocolT1     = 0x0002
	scardProtocolAny    = 0x0003 // T0|T1
	scardLeaveCard      = 0x0000
	scardResetCard      = 0x0001

	maxReaderName         = 128 // MAX_READERNAME
	maxATRSize            = 33  // MAX_ATR_SIZE
	maxReadersContexts    = 16  // PCSCLITE_MAX_READERS_CONTEXTS
	maxBufferSizeExtended = 4 + 3 + (1 << 16) + 3 + 2

	// sizeof(SCARD_IO_REQUEST): two unsigned longs.
	ioRequestSize = 2 * bits.UintSize / 8
)

// Return codes used here (pcsc_errors.go has their texts).
const (
	scardSuccess             = 0x00000000
	scardEInvalidHandle      = 0x80100003
	scardEInsufficientBuffer = 0x80100008
	scardETimeout            = 0x8010000A
	scardESharingViolation   = 0x8010000B
	scardEInvalidValue       = 0x80100011
	scardFCommError          = 0x80100013
	scardENoService          = 0x8010001D
	scardEServiceStopped     = 0x8010001E
	scardWSecurityViolation  = 0x8010006A
)

// Deadlines. libpcsclite waits for pcscd without limit; here a pcscd that
// stops answering costs at most these. A card operation (an RSA key
// generation, a touch) can take long, hence the longer transmit deadline.
// Tests shorten them.
var (
	pcscReplyTimeout    = time.Minute
	pcscTransmitTimeout = 5 * time.Minute
)

// pcscLockPollRate is PCSCLITE_LOCK_POLL_RATE: the wait between two tries
// while another handle holds the card's transaction. Tests shorten it.
var pcscLockPollRate = 100 * time.Millisecond

// pcscDial connects to pcscd. Tests replace it.
var pcscDial = dialPCSCD

// negotiatedMinor is the protocol minor the last server accepted, tried
// first by the next context.
var negotiatedMinor atomic.Int32

// The messages, laid out as in src/winscard_msg.h (and READER_STATE of
// src/eventhandler.h): fields of 4 bytes, in host byte order, and padding
// only where the C compiler puts it.
type (
	rxHeader struct {
		Size    uint32 // of the struct that follows
		Command uint32
	}
	versionStruct struct {
		Major, Minor int32
		RV           uint32
	}
	establishStruct struct {
		Scope, Context, RV uint32
	}
	releaseStruct struct {
		Context, RV uint32
	}
	connectStruct struct {
		Context                       uint32
		Reader                        [maxReaderName]byte
		ShareMode, PreferredProtocols uint32
		Card                          int32
		ActiveProtocol, RV            uint32
	}
	disconnectStruct struct {
		Card            int32
		Disposition, RV uint32
	}
	beginStruct struct {
		Card int32
		RV   uint32
	}
	endStruct struct {
		Card            int32
		Disposition, RV uint32
	}
	transmitStruct struct {
		Card                           int32
		SendPCIProtocol, SendPCILength uint32
		SendLength                     uint32
		RecvPCIProtocol, RecvPCILength uint32
		RecvLength                     uint32 // in: room for the response; out: its length
		RV                             uint32
	}
	readerState struct {
		Name         [maxReaderName]byte
		EventCounter uint32
		State        uint32
		Sharing      int32
		ATR          [maxATRSize]byte
		_            [3]byte // C pads the uint32 that follows
		ATRLength    uint32
		Protocol     uint32
	}
)

const (
	readerStateSize  = 184 // sizeof(READER_STATE)
	readerStatesSize = maxReadersContexts * readerStateSize
)

var hostOrder = binary.NativeEndian

// encodeMsg is a request: the header, then the struct body.
func encodeMsg(command uint32, body any) []byte {
	size := 0
	if body != nil {
		size = binary.Size(body)
	}
	b, _ := binary.Append(nil, hostOrder, rxHeader{Size: uint32(size), Command: command})
	if body != nil {
		b, _ = binary.Append(b, hostOrder, body)
	}
	return b
}

// decodeReply fills the struct reply from exactly its size in bytes.
func decodeReply(b []byte, reply any) error {
	n := binary.Size(reply)
	if n < 0 || len(b) != n {
		return fmt.Errorf("pcscd reply of %d bytes, want %d", len(b), n)
	}
	_, err := binary.Decode(b, hostOrder, reply)
	return err
}

// decodeReaderStates lists the reader names of a CMD_GET_READERS_STATE reply,
// in its order, without the empty slots; nil when there is none.
func decodeReaderStates(b []byte) ([]string, error) {
	if len(b) != readerStatesSize {
		return nil, fmt.Errorf("pcscd reader states of %d bytes, want %d", len(b), readerStatesSize)
	}
	var readers []string
	for i := 0; i < maxReadersContexts; i++ {
		var rs readerState
		if err := decodeReply(b[i*readerStateSize:(i+1)*readerStateSize], &rs); err != nil {
			return nil, err
		}
		name := rs.Name[:]
		if n := bytes.IndexByte(name, 0); n >= 0 {
			name = name[:n]
		}
		if len(name) > 0 {
			readers = append(readers, string(name))
		}
	}
	return readers, nil
}

// transmitLength checks a SCARD_TRANSMIT reply against the room the request
// gave (room) and returns the length of the response that follows it.
func transmitLength(reply *transmitStruct, room uint32) (int, error) {
	if reply.RV != scardSuccess {
		return 0, nil // nothing follows
	}
	if reply.RecvLength > room {
		// pcscd sends no more than the request has room for: the
		// stream cannot be trusted any more.
		return 0, &scErr{scardEInsufficientBuffer}
	}
	return int(reply.RecvLength), nil
}

func scCheck(rc uint32) error {
	if rc == scardSuccess {
		return nil
	}
	return &scErr{int64(rc)}
}

func dialPCSCD() (*os.File, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	sa := &unix.SockaddrUnix{Name: pcscdSocket}
	deadline := time.Now().Add(pcscReplyTimeout)
	for {
		err = unix.Connect(fd, sa)
		// A full listen backlog: pcscd has not accepted yet.
		if err == unix.EAGAIN && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		break
	}
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	// Non-blocking, so the runtime poller serves it: reads and writes
	// take deadlines and block no thread.
	return os.NewFile(uintptr(fd), pcscdSocket), nil
}

// pcscConn is one connection to pcscd. Its methods are called with the
// owning scContext's lock held.
type pcscConn struct {
	f *os.File
	// broken is set when a request or reply failed half way: what
	// comes next on the stream cannot be matched to a request.
	broken bool
}

func (c *pcscConn) close() {
	if c.f != nil {
		c.f.Close()
		c.f = nil
	}
}

// fail closes the connection after a transport error and returns it.
func (c *pcscConn) fail(err error) error {
	c.broken = true
	c.close()
	return err
}

// send writes a whole request by deadline. Errors are libpcsclite's
// (MessageSend).
func (c *pcscConn) send(b []byte, deadline time.Time) error {
	if c.broken || c.f == nil {
		return &scErr{scardFCommError}
	}
	if err := c.f.SetWriteDeadline(deadline); err != nil {
		return c.fail(&scErr{scardFCommError})
	}
	if _, err := c.f.Write(b); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return c.fail(&scErr{scardETimeout})
		}
		return c.fail(&scErr{scardENoService})
	}
	return nil
}

// recv reads exactly len(b) bytes by deadline. Errors are libpcsclite's
// (MessageReceive), and SCARD_E_TIMEOUT at the deadline.
func (c *pcscConn) recv(b []byte, deadline time.Time) error {
	if c.broken || c.f == nil {
		return &scErr{scardFCommError}
	}
	if err := c.f.SetReadDeadline(deadline); err != nil {
		return c.fail(&scErr{scardFCommError})
	}
	if _, err := io.ReadFull(c.f, b); err != nil {
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			return c.fail(&scErr{scardETimeout})
		case errors.Is(err, syscall.ECONNRESET):
			// pcscd dropped the client, e.g. polkit refused it.
			return c.fail(&scErr{scardWSecurityViolation})
		}
		return c.fail(&scErr{scardFCommError})
	}
	return nil
}

// call sends a request and decodes the fixed-size reply into reply.
func (c *pcscConn) call(command uint32, body, reply any, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	if err := c.send(encodeMsg(command, body), deadline); err != nil {
		return err
	}
	b := make([]byte, binary.Size(reply))
	if err := c.recv(b, deadline); err != nil {
		return err
	}
	if err := decodeReply(b, reply); err != nil {
		return c.fail(&scErr{scardFCommError})
	}
	return nil
}

type scContext struct {
	mu       sync.Mutex
	conn     pcscConn
	ctx      uint32
	released bool
	handles  map[int32]bool
	// kept: conn is the connection PreparePCSC keeps
	// (pcsc_keep_linux.go); it goes back to it, not closed, when the
	// context is released.
	kept bool
}

func newSCContext() (*scContext, error) {
	if f := takeKeptConn(); f != nil {
		c, err := establishOnKept(f)
		if c != nil || !errors.Is(err, errKeptBroken) {
			return c, err
		}
		// The kept connection failed (pcscd restarted?): connect
		// anew, as without one.
	}
	minor := negotiatedMinor.Load()
	if minor == 0 {
		minor = protocolMinor
	}
	c, server, err := establishContext(minor)
	if err != nil && server.Major == protocolMajor && server.Minor != minor &&
		(server.Minor == protocolMinor || server.Minor == protocolMinorNew) {
		// The server speaks the other version we know.
		minor = server.Minor
		c, _, err = establishContext(minor)
	}
	if err != nil {
		return nil, err
	}
	negotiatedMinor.Store(minor)
	return c, nil
}

// establishContext connects to pcscd, agrees on protocol 4:minor and
// establishes a context (SCardEstablishContext). On a version mismatch it
// returns the server's version.
func establishContext(minor int32) (*scContext, versionStruct, error) {
	conn, ve, err := dialVersion(minor)
	if err != nil {
		return nil, ve, err
	}
	c := &scContext{conn: conn, handles: map[int32]bool{}}
	if err := c.establish(); err != nil {
		c.conn.close()
		return nil, ve, err
	}
	return c, ve, nil
}

// dialVersion connects to pcscd and agrees on protocol 4:minor. On a
// version mismatch it returns the server's version.
func dialVersion(minor int32) (pcscConn, versionStruct, error) {
	f, err := pcscDial()
	if err != nil {
		return pcscConn{}, versionStruct{}, &scErr{scardENoService}
	}
	conn := pcscConn{f: f}
	var ve versionStruct
	err = conn.call(cmdVersion, versionStruct{Major: protocolMajor, Minor: minor}, &ve, pcscReplyTimeout)
	if err == nil {
		err = scCheck(ve.RV)
	}
	if err != nil {
		conn.close()
		return pcscConn{}, ve, err
	}
	return conn, ve, nil
}

// establish establishes the context on c.conn (SCardEstablishContext).
func (c *scContext) establish() error {
	var es establishStruct
	err := c.conn.call(cmdEstablishContext, establishStruct{Scope: scardScopeSystem}, &es, pcscReplyTimeout)
	if err == nil {
		err = scCheck(es.RV)
	}
	if err != nil {
		return err
	}
	c.ctx = es.Context
	return nil
}

// usable is nil for a context that was not released.
func (c *scContext) usable() error {
	if c.released {
		return &scErr{scardEInvalidHandle}
	}
	return nil
}

// usableHandle is nil for a handle this context connected and did not
// disconnect.
func (c *scContext) usableHandle(h int32) error {
	if c.released || h == 0 || !c.handles[h] {
		return &scErr{scardEInvalidHandle}
	}
	return nil
}

func (c *scContext) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.usable(); err != nil {
		return err
	}
	var re releaseStruct
	err := c.conn.call(cmdReleaseContext, releaseStruct{Context: c.ctx}, &re, pcscReplyTimeout)
	if err == nil {
		err = scCheck(re.RV)
	}
	// libpcsclite forgets the context whatever pcscd answered. A kept
	// connection goes back to be reused when pcscd released the context
	// (and so holds none for it any more).
	if c.kept && err == nil && !c.conn.broken {
		putKeptConn(c.conn.f)
		c.conn = pcscConn{broken: true}
	} else {
		c.conn.close()
	}
	c.released = true
	c.handles = nil
	return err
}

func (c *scContext) ListReaders() ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.usable(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(pcscReplyTimeout)
	if err := c.conn.send(encodeMsg(cmdGetReadersState, nil), deadline); err != nil {
		return nil, err
	}
	b := make([]byte, readerStatesSize)
	if err := c.conn.recv(b, deadline); err != nil {
		return nil, err
	}
	// No reader is SCARD_E_NO_READERS_AVAILABLE in libpcsclite, which
	// pcsc_unix.go turns into no readers and no error.
	readers, err := decodeReaderStates(b)
	if err != nil {
		return nil, c.conn.fail(&scErr{scardFCommError})
	}
	return readers, nil
}

type scHandle struct {
	c *scContext
	h int32
}

func (c *scContext) Connect(reader string) (*scHandle, error) {
	// The reader name is a C string, cut at its first NUL.
	if n := bytes.IndexByte([]byte(reader), 0); n >= 0 {
		reader = reader[:n]
	}
	if len(reader) > maxReaderName {
		return nil, &scErr{scardEInvalidValue}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.usable(); err != nil {
		return nil, err
	}
	req := connectStruct{
		Context:            c.ctx,
		ShareMode:          scardShareExclusive,
		PreferredProtocols: scardProtocolT1,
	}
	copy(req.Reader[:maxReaderName-1], reader) // NUL-terminated, as strncpy then [127] = 0
	var co connectStruct
	if err := c.conn.call(cmdConnect, req, &co, pcscReplyTimeout); err != nil {
		return nil, err
	}
	if err := scCheck(co.RV); err != nil {
		return nil, err
	}
	c.handles[co.Card] = true
	return &scHandle{c: c, h: co.Card}, nil
}

func (h *scHandle) Close() error { return h.disconnect(scardLeaveCard) }

// CloseReset disconnects and has pcscd reset the card (SCARD_RESET_CARD),
// which clears its security status.
func (h *scHandle) CloseReset() error { return h.disconnect(scardResetCard) }

func (h *scHandle) disconnect(disposition uint32) error {
	c := h.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.usableHandle(h.h); err != nil {
		return err
	}
	var di disconnectStruct
	err := c.conn.call(cmdDisconnect, disconnectStruct{Card: h.h, Disposition: disposition}, &di, pcscReplyTimeout)
	if err != nil {
		return err
	}
	if err := scCheck(di.RV); err != nil {
		return err
	}
	delete(c.handles, h.h)
	return nil
}

type scTx struct {
	c *scContext
	h int32
}

// Begin takes the card's transaction, waiting, as libpcsclite does, while
// another handle holds it; here for at most pcscReplyTimeout.
func (h *scHandle) Begin() (*scTx, error) {
	c := h.c
	deadline := time.Now().Add(pcscReplyTimeout)
	for {
		rv, err := h.begin()
		if err != nil {
			return nil, err
		}
		if rv != scardESharingViolation || time.Now().Add(pcscLockPollRate).After(deadline) {
			if err := scCheck(rv); err != nil {
				return nil, err
			}
			return &scTx{c: c, h: h.h}, nil
		}
		time.Sleep(pcscLockPollRate)
	}
}

func (h *scHandle) begin() (uint32, error) {
	c := h.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.usableHandle(h.h); err != nil {
		return 0, err
	}
	var be beginStruct
	if err := c.conn.call(cmdBeginTransaction, beginStruct{Card: h.h}, &be, pcscReplyTimeout); err != nil {
		return 0, err
	}
	return be.RV, nil
}

func (t *scTx) Close() error {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.usableHandle(t.h); err != nil {
		return err
	}
	var en endStruct
	if err := c.conn.call(cmdEndTransaction, endStruct{Card: t.h, Disposition: scardLeaveCard}, &en, pcscReplyTimeout); err != nil {
		return err
	}
	return scCheck(en.RV)
}

// transmit sends one APDU and returns its response, as pcsc_unix.go does.
func (t *scTx) transmit(req []byte) (more bool, b []byte, err error) {
	resp, err := t.exchange(req)
	if err != nil {
		return false, nil, fmt.Errorf("transmitting request: %w", err)
	}
	respN := len(resp)
	if respN < 2 {
		return false, nil, fmt.Errorf("scard response too short: %d", respN)
	}
	sw1 := resp[respN-2]
	sw2 := resp[respN-1]
	if sw1 == 0x90 && sw2 == 0x00 {
		return false, resp[:respN-2], nil
	}
	if sw1 == 0x61 {
		return true, resp[:respN-2], nil
	}
	return false, nil, &apduErr{sw1, sw2}
}

// exchange is SCardTransmit with SCARD_PCI_T1 and room for an extended
// APDU response. Like libpcsclite it tries again while another handle holds
// the card's transaction, here for at most pcscTransmitTimeout.
func (t *scTx) exchange(apdu []byte) ([]byte, error) {
	if len(apdu) > maxBufferSizeExtended {
		return nil, &scErr{scardEInsufficientBuffer}
	}
	deadline := time.Now().Add(pcscTransmitTimeout)
	for {
		resp, rv, err := t.exchangeOnce(apdu, deadline)
		if err != nil {
			return nil, err
		}
		if rv != scardESharingViolation || time.Now().Add(pcscLockPollRate).After(deadline) {
			if err := scCheck(rv); err != nil {
				return nil, err
			}
			return resp, nil
		}
		time.Sleep(pcscLockPollRate)
	}
}

func (t *scTx) exchangeOnce(apdu []byte, deadline time.Time) ([]byte, uint32, error) {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.usableHandle(t.h); err != nil {
		return nil, 0, err
	}
	const room = maxBufferSizeExtended
	req := encodeMsg(cmdTransmit, transmitStruct{
		Card:            t.h,
		SendPCIProtocol: scardProtocolT1,
		SendPCILength:   ioRequestSize,
		SendLength:      uint32(len(apdu)),
		RecvPCIProtocol: scardProtocolAny, // no pioRecvPci
		RecvPCILength:   ioRequestSize,
		RecvLength:      room,
	})
	if err := c.conn.send(append(req, apdu...), deadline); err != nil {
		return nil, 0, err
	}
	b := make([]byte, binary.Size(transmitStruct{}))
	if err := c.conn.recv(b, deadline); err != nil {
		return nil, 0, err
	}
	var tr transmitStruct
	if err := decodeReply(b, &tr); err != nil {
		return nil, 0, c.conn.fail(&scErr{scardFCommError})
	}
	n, err := transmitLength(&tr, room)
	if err != nil {
		return nil, 0, c.conn.fail(err)
	}
	resp := make([]byte, n)
	if err := c.conn.recv(resp, deadline); err != nil {
		return nil, 0, err
	}
	return resp, tr.RV, nil
}
