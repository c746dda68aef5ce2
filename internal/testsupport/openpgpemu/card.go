// Package openpgpemu is an OpenPGP card emulator for tests: it implements
// the part of the OpenPGP smart card application specification 3.4 that
// GnuPG 2.2's scdaemon uses (select, get/put data, verify, change
// reference data, reset retry counter, generate and import keys, compute
// digital signature, internal authenticate, decipher), with retry counters
// that count and block at zero. It sits in the same vsmartcard-vpcd reader,
// behind the real pcscd, as internal/testsupport/pivemu's PIV card (it is a
// pivemu.Applet), so tests drive it with gpg, gpg-agent and scdaemon.
//
// It is test support code: keys are held in memory and nothing here is
// meant to protect a secret.
package openpgpemu

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"io"
	"sync"

	"github.com/signstar/signstar/internal/testsupport/pivemu"
)

// Default PINs of a factory-fresh card.
const (
	DefaultPIN      = "123456"
	DefaultAdminPIN = "12345678"
)

// Key slots (keyno in scdaemon's terms, 0-based).
const (
	KeySign = 0
	KeyDec  = 1
	KeyAuth = 2
)

// Options configure a new Card. Zero values give a factory-fresh card.
type Options struct {
	PIN, AdminPIN string // default 123456, 12345678
	ResetCode     string // default none (its counter is 0)
	Retries       int    // maximum and initial tries of each: default 3
	// Serial is the card's serial number in the AID (default 0x00c0ffee);
	// Manufacturer its manufacturer ID (default 0xfffe, a test card).
	Serial       uint32
	Manufacturer uint16
	// SigPINMany makes PW1 stay valid for several signatures (PW status
	// byte 1 = 01); by default it is valid for one (00), as "forcesig".
	SigPINMany bool
	Rand       io.Reader
}

// Card is the state of one emulated OpenPGP application. It is safe for
// concurrent use.
type Card struct {
	mu  sync.Mutex
	opt Options

	pw1, rc, pw3                   []byte
	pw1Tries, rcTries, pw3Tries    int
	maxTries                       int
	sigPINMany                     bool
	pw1Sig, pw1Other, pw3OK        bool // security status: PW1 for CDS (81), for others (82), PW3
	keys                           [3]*key
	attrs                          [3][]byte
	fprs, caFprs                   [3][20]byte
	times                          [3][4]byte
	name, lang, sex, url, login    []byte
	cert                           []byte
	sigCount                       uint32
	selected                       bool
	verifies, signatures, commands int

	chain   *pivemu.Command
	pending []byte
	trace   func(capdu []byte)
}

// NewCard returns a card with opt applied over factory defaults.
func NewCard(opt Options) *Card {
	if opt.PIN == "" {
		opt.PIN = DefaultPIN
	}
	if opt.AdminPIN == "" {
		opt.AdminPIN = DefaultAdminPIN
	}
	if opt.Retries == 0 {
		opt.Retries = 3
	}
	if opt.Serial == 0 {
		opt.Serial = 0x00c0ffee
	}
	if opt.Manufacturer == 0 {
		opt.Manufacturer = 0xfffe
	}
	if opt.Rand == nil {
		opt.Rand = rand.Reader
	}
	c := &Card{
		opt: opt, pw1: []byte(opt.PIN), pw3: []byte(opt.AdminPIN),
		pw1Tries: opt.Retries, pw3Tries: opt.Retries, maxTries: opt.Retries,
		sigPINMany: opt.SigPINMany,
		sex:        []byte{'9'},
	}
	if opt.ResetCode != "" {
		c.rc, c.rcTries = []byte(opt.ResetCode), opt.Retries
	}
	for i := range c.attrs {
		c.attrs[i] = bytes.Clone(attrRSA2048)
	}
	return c
}

// Serial returns the card's serial number as GnuPG prints it: the AID in
// hex (D276000124010304...).
func (c *Card) Serial() string { return fmt.Sprintf("%X", c.aid()) }

// PINRetries returns the PW1 attempts left.
func (c *Card) PINRetries() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pw1Tries
}

// SetPINRetries sets the PW1 attempts left, as if wrong PINs had been
// tried.
func (c *Card) SetPINRetries(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pw1Tries = n
}

// AdminRetries returns the PW3 attempts left.
func (c *Card) AdminRetries() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pw3Tries
}

// Verifies returns how many VERIFY commands carried a PW1 value (right or
// wrong): the PINs the card was shown.
func (c *Card) Verifies() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.verifies
}

// Signatures returns how many signatures (CDS and INTERNAL AUTHENTICATE)
// the card made.
func (c *Card) Signatures() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.signatures
}

// HasKey reports whether slot keyno holds a key.
func (c *Card) HasKey(keyno int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.keys[keyno] != nil
}

// Trace makes the card call f with every command APDU it receives (for
// capturing fuzz seeds).
func (c *Card) Trace(f func(capdu []byte)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.trace = f
}

// atr is a T=1 answer to reset whose historical bytes are the card's
// (5F52): TS 3B, T0 8A (TD1, 10 historical bytes), TD1 80 (TD2, T=0), TD2
// 01 (T=1), the bytes, TCK.
var atr = func() []byte {
	b := append([]byte{0x3b, 0x8a, 0x80, 0x01}, historical...)
	var tck byte
	for _, x := range b[1:] {
		tck ^= x
	}
	return append(b, tck)
}()

// historical bytes (5F52): category 00, card service data 31 C5, card
// capabilities 73 C0 01 80 (command chaining, no extended lengths), status
// 05 (operational), 90 00.
var historical = []byte{0x00, 0x31, 0xc5, 0x73, 0xc0, 0x01, 0x80, 0x05, 0x90, 0x00}

// ATR returns the answer to reset.
func (c *Card) ATR() []byte { return bytes.Clone(atr) }

// Reset is a power cycle: the security status is cleared, and the
// OpenPGP application is selected again implicitly, as on cards where it is
// the default application. (scdaemon, which took a swapped card of the
// same serial number for the old one, sends no new SELECT.)
func (c *Card) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.selected = true
	c.pw1Sig, c.pw1Other, c.pw3OK = false, false, false
	c.chain, c.pending = nil, nil
}

// Status words.
const (
	swOK               = 0x9000
	swWrongLength      = 0x6700
	swSecurityStatus   = 0x6982
	swAuthBlocked      = 0x6983
	swConditionsNotMet = 0x6985
	swWrongData        = 0x6a80
	swFileNotFound     = 0x6a82
	swIncorrectP1P2    = 0x6a86
	swRefDataNotFound  = 0x6a88
	swInsNotSupported  = 0x6d00
	swClaNotSupported  = 0x6e00
	swLastCommandExpd  = 0x6883
)

func sw(s uint16) []byte { return []byte{byte(s >> 8), byte(s)} }

// Transmit processes one command APDU and returns the response APDU. It
// never panics on any input.
func (c *Card) Transmit(capdu []byte) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.commands++
	if c.trace != nil {
		c.trace(bytes.Clone(capdu))
	}
	cmd, err := pivemu.ParseCommand(capdu)
	if err != nil {
		c.chain = nil
		return sw(swWrongLength)
	}
	if cmd.CLA&^0x10 != 0 {
		c.chain = nil
		return sw(swClaNotSupported)
	}
	if cmd.INS == 0xc0 { // GET RESPONSE
		if c.pending == nil {
			return sw(swConditionsNotMet)
		}
		data := c.pending
		c.pending = nil
		return c.respond(data, cmd.Le)
	}
	c.pending = nil
	if c.chain != nil {
		if cmd.INS != c.chain.INS || cmd.P1 != c.chain.P1 || cmd.P2 != c.chain.P2 {
			c.chain = nil
			return sw(swLastCommandExpd)
		}
		if len(c.chain.Data)+len(cmd.Data) > 1<<16 {
			c.chain = nil
			return sw(swWrongLength)
		}
		c.chain.Data = append(c.chain.Data, cmd.Data...)
		if cmd.Chained() {
			return sw(swOK)
		}
		full := c.chain
		full.CLA, full.Le = 0, cmd.Le
		c.chain = nil
		cmd = full
	} else if cmd.Chained() {
		c.chain = &pivemu.Command{INS: cmd.INS, P1: cmd.P1, P2: cmd.P2, Data: bytes.Clone(cmd.Data)}
		return sw(swOK)
	}
	data, status := c.dispatch(cmd)
	if status != swOK {
		return sw(status)
	}
	return c.respond(data, cmd.Le)
}

// respond sends at most 256 bytes (and no more than Le asked, when it
// asked fewer) and keeps the rest for GET RESPONSE, announced with 61xx.
func (c *Card) respond(data []byte, le int) []byte {
	n := 256
	if le > 0 && le < n {
		n = le
	}
	if len(data) <= n {
		return append(bytes.Clone(data), 0x90, 0x00)
	}
	c.pending = bytes.Clone(data[n:])
	left := len(c.pending)
	if left > 255 {
		left = 0
	}
	return append(bytes.Clone(data[:n]), 0x61, byte(left))
}

func (c *Card) dispatch(cmd *pivemu.Command) ([]byte, uint16) {
	if cmd.INS == 0xa4 {
		return c.selectApp(cmd)
	}
	if !c.selected {
		return nil, swConditionsNotMet
	}
	switch cmd.INS {
	case 0xca: // GET DATA
		return c.getData(uint16(cmd.P1)<<8 | uint16(cmd.P2))
	case 0xda: // PUT DATA
		return nil, c.putData(uint16(cmd.P1)<<8|uint16(cmd.P2), cmd.Data)
	case 0xdb: // PUT DATA, odd: key import
		if cmd.P1 != 0x3f || cmd.P2 != 0xff {
			return nil, swIncorrectP1P2
		}
		return nil, c.importKey(cmd.Data)
	case 0x20:
		return nil, c.verify(cmd)
	case 0x24:
		return nil, c.changeReference(cmd)
	case 0x2c:
		return nil, c.resetRetry(cmd)
	case 0x47:
		return c.generate(cmd)
	case 0x2a:
		return c.pso(cmd)
	case 0x88:
		return c.internalAuthenticate(cmd)
	}
	return nil, swInsNotSupported
}

var aidPrefix = []byte{0xd2, 0x76, 0x00, 0x01, 0x24, 0x01}

// aid is the full AID: RID and application, version 3.4, manufacturer,
// serial number, RFU.
func (c *Card) aid() []byte {
	m, s := c.opt.Manufacturer, c.opt.Serial
	return append(bytes.Clone(aidPrefix), 0x03, 0x04, byte(m>>8), byte(m), byte(s>>24), byte(s>>16), byte(s>>8), byte(s), 0x00, 0x00)
}

func (c *Card) selectApp(cmd *pivemu.Command) ([]byte, uint16) {
	// Only SELECT by DF name; scdaemon first probes the MF and EF.GDO by
	// file ID, which this card does not have.
	if cmd.P1 != 0x04 {
		return nil, swFileNotFound
	}
	if len(cmd.Data) < len(aidPrefix) || !bytes.HasPrefix(c.aid(), cmd.Data) {
		c.selected = false
		return nil, swFileNotFound
	}
	c.selected = true
	return nil, swOK
}

// pwRef returns the reference data, counter and minimum length of a
// password reference (81 and 82 are both PW1).
func (c *Card) pwRef(p2 byte) (ref *[]byte, tries *int, minLen int, ok bool) {
	switch p2 {
	case 0x81, 0x82:
		return &c.pw1, &c.pw1Tries, 6, true
	case 0x83:
		return &c.pw3, &c.pw3Tries, 8, true
	}
	return nil, nil, 0, false
}

func (c *Card) setVerified(p2 byte, v bool) {
	switch p2 {
	case 0x81:
		c.pw1Sig = v
	case 0x82:
		c.pw1Other = v
	case 0x83:
		c.pw3OK = v
	}
}

func (c *Card) isVerified(p2 byte) bool {
	switch p2 {
	case 0x81:
		return c.pw1Sig
	case 0x82:
		return c.pw1Other
	case 0x83:
		return c.pw3OK
	}
	return false
}

// check compares got with ref, counting a failure: the status word is 9000,
// 63Cx (x tries left) or 6983 (blocked).
func check(got, ref []byte, tries *int, max int) uint16 {
	if *tries == 0 {
		return swAuthBlocked
	}
	if len(got) != len(ref) || subtle.ConstantTimeCompare(got, ref) != 1 {
		*tries--
		return 0x63c0 | uint16(min(*tries, 15))
	}
	*tries = max
	return swOK
}

func (c *Card) verify(cmd *pivemu.Command) uint16 {
	_, tries, _, ok := c.pwRef(cmd.P2)
	if !ok {
		return swRefDataNotFound
	}
	switch cmd.P1 {
	case 0xff: // reset the security status (spec 3.4, 7.2.2)
		if len(cmd.Data) != 0 {
			return swWrongLength
		}
		c.setVerified(cmd.P2, false)
		return swOK
	case 0x00:
	default:
		return swIncorrectP1P2
	}
	if len(cmd.Data) == 0 {
		switch {
		case c.isVerified(cmd.P2):
			return swOK
		case *tries == 0:
			return swAuthBlocked
		}
		return 0x63c0 | uint16(min(*tries, 15))
	}
	ref, _, _, _ := c.pwRef(cmd.P2)
	if cmd.P2 != 0x83 {
		c.verifies++
	}
	s := check(cmd.Data, *ref, tries, c.maxTries)
	c.setVerified(cmd.P2, s == swOK)
	return s
}

func (c *Card) changeReference(cmd *pivemu.Command) uint16 {
	if cmd.P1 != 0 {
		return swIncorrectP1P2
	}
	ref, tries, minLen, ok := c.pwRef(cmd.P2)
	if !ok || cmd.P2 == 0x82 {
		return swRefDataNotFound
	}
	// The card knows the old value's length: the rest is the new one.
	if len(cmd.Data) < len(*ref) {
		return swWrongLength
	}
	old, nw := cmd.Data[:len(*ref)], cmd.Data[len(*ref):]
	if s := check(old, *ref, tries, c.maxTries); s != swOK {
		c.setVerified(cmd.P2, false)
		if cmd.P2 == 0x81 {
			c.pw1Other = false
		}
		return s
	}
	if len(nw) < minLen || len(nw) > 127 {
		return swWrongLength
	}
	*ref = bytes.Clone(nw)
	return swOK
}

func (c *Card) resetRetry(cmd *pivemu.Command) uint16 {
	if cmd.P2 != 0x81 {
		return swIncorrectP1P2
	}
	var nw []byte
	switch cmd.P1 {
	case 0x00: // resetting code, then the new PW1
		if c.rc == nil || c.rcTries == 0 {
			return swAuthBlocked
		}
		if len(cmd.Data) < len(c.rc) {
			return swWrongLength
		}
		if s := check(cmd.Data[:len(c.rc)], c.rc, &c.rcTries, c.maxTries); s != swOK {
			return s
		}
		nw = cmd.Data[len(c.rc):]
	case 0x02: // the new PW1, with PW3 verified
		if !c.pw3OK {
			return swSecurityStatus
		}
		nw = cmd.Data
	default:
		return swIncorrectP1P2
	}
	if len(nw) < 6 || len(nw) > 127 {
		return swWrongLength
	}
	c.pw1 = bytes.Clone(nw)
	c.pw1Tries = c.maxTries
	return swOK
}

// String describes the card state for test failure messages.
func (c *Card) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("openpgpemu card %X: PW1 %d/RC %d/PW3 %d tries, %d signatures, %d commands", c.aid(), c.pw1Tries, c.rcTries, c.pw3Tries, c.signatures, c.commands)
}

// PINIs reports whether pin is the card's PW1, without counting a try.
func (c *Card) PINIs(pin string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Equal(c.pw1, []byte(pin))
}
