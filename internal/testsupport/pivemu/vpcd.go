package pivemu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// VPCDAddr is where Debian's vsmartcard-vpcd driver (inside pcscd) waits for
// a virtual card: /etc/reader.conf.d/vpcd sets CHANNELID 0x8C7B = 35963.
const VPCDAddr = "127.0.0.1:35963"

// vpcd control messages: one byte, no answer except for GET ATR.
const (
	vpcdPowerOff = 0x00
	vpcdPowerOn  = 0x01
	vpcdReset    = 0x02
	vpcdGetATR   = 0x04
)

// Applet is a card the vpcd reader can hold: this package's PIV Card, or
// another emulator (internal/testsupport/openpgpemu) on the same plumbing.
type Applet interface {
	// ATR is the answer to reset the reader reports.
	ATR() []byte
	// Reset is a power cycle or warm reset: security status is cleared.
	Reset()
	// Transmit answers one command APDU with a response APDU.
	Transmit(capdu []byte) []byte
}

// Emulator is an Applet inserted into the vpcd virtual reader: a TCP client
// of the driver, answering its messages until removed.
type Emulator struct {
	card Applet
	conn net.Conn

	mu       sync.Mutex
	removeOn func(*Command) bool
	atrSeen  chan struct{}
	atrOnce  sync.Once
	done     chan struct{}
	err      error
}

// Insert connects card to the vpcd driver at addr, retrying until timeout
// (the driver listens only once pcscd has loaded it).
func Insert(addr string, card Applet, timeout time.Duration) (*Emulator, error) {
	deadline := time.Now().Add(timeout)
	var conn net.Conn
	var err error
	for {
		conn, err = net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("connecting to the vpcd reader at %s: %w", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	card.Reset()
	e := &Emulator{card: card, conn: conn, atrSeen: make(chan struct{}), done: make(chan struct{})}
	go e.serve()
	return e, nil
}

// Card returns the inserted card.
func (e *Emulator) Card() Applet { return e.card }

// Remove pulls the card out of the reader: the connection closes, and
// pcscd sees the card gone. It waits until the serving goroutine is done.
func (e *Emulator) Remove() {
	e.conn.Close()
	<-e.done
}

// RemoveOn makes the card vanish, instead of answering, on the first
// command f returns true for: a card pulled out in the middle of a request.
func (e *Emulator) RemoveOn(f func(cmd *Command) bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.removeOn = f
}

// Removed is closed once the card is out of the reader.
func (e *Emulator) Removed() <-chan struct{} { return e.done }

// Err returns why serving stopped: nil after Remove or RemoveOn, else the
// protocol or connection error.
func (e *Emulator) Err() error {
	<-e.done
	return e.err
}

// Powered is closed once the driver has asked for the ATR, i.e. pcscd has
// noticed the card.
func (e *Emulator) Powered() <-chan struct{} { return e.atrSeen }

func (e *Emulator) serve() {
	defer close(e.done)
	defer e.conn.Close()
	for {
		quickACK(e.conn)
		msg, err := readMsg(e.conn)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				e.err = err
			}
			return
		}
		if len(msg) == 1 {
			switch msg[0] {
			case vpcdPowerOff, vpcdPowerOn, vpcdReset:
				e.card.Reset()
				continue
			case vpcdGetATR:
				e.atrOnce.Do(func() { close(e.atrSeen) })
				if err := writeMsg(e.conn, e.card.ATR()); err != nil {
					e.err = err
					return
				}
				continue
			}
			// A one-byte message that is no control message is no APDU
			// either: answer as a card would to a malformed command.
		}
		e.mu.Lock()
		f := e.removeOn
		e.mu.Unlock()
		if f != nil {
			if cmd, err := ParseCommand(msg); err == nil && f(cmd) {
				return
			}
		}
		if err := writeMsg(e.conn, e.card.Transmit(msg)); err != nil {
			e.err = err
			return
		}
	}
}

func readMsg(r io.Reader) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n == 0 {
		return nil, errors.New("vpcd: empty message")
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(r, msg); err != nil {
		return nil, fmt.Errorf("vpcd: truncated message: %w", err)
	}
	return msg, nil
}

func writeMsg(w io.Writer, msg []byte) error {
	if len(msg) > 0xffff {
		return errors.New("vpcd: message too long")
	}
	buf := make([]byte, 2+len(msg))
	binary.BigEndian.PutUint16(buf, uint16(len(msg)))
	copy(buf[2:], msg)
	_, err := w.Write(buf)
	return err
}
