package pivemu

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Algorithm identifiers (SP 800-78-4, table 6-2; YubiKey extensions).
const (
	Alg3DES    = 0x03
	AlgAES128  = 0x08
	AlgAES192  = 0x0a
	AlgAES256  = 0x0c
	AlgRSA2048 = 0x07
	AlgRSA3072 = 0x05
	AlgRSA4096 = 0x16
	AlgECCP256 = 0x11
	AlgECCP384 = 0x14
)

// PIN and touch policy bytes of the YubiKey extension.
const (
	PINPolicyDefault = 0x00
	PINPolicyNever   = 0x01
	PINPolicyOnce    = 0x02
	PINPolicyAlways  = 0x03
	TouchNever       = 0x01
)

// Key references.
const (
	keyCardManagement = 0x9b
	keyPIN            = 0x80
	keyPUK            = 0x81
)

// DefaultPIN is the factory PIN.
const DefaultPIN = "123456"

// DefaultManagementKey is the well-known factory management key.
var DefaultManagementKey = bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7, 8}, 3)

var aidPIV = []byte{0xa0, 0x00, 0x00, 0x03, 0x08}

// Options configure a new Card. Zero values give a factory-fresh YubiKey 5.
type Options struct {
	PIN, PUK      string // default 123456, 12345678
	PINRetries    int    // default 3
	PUKRetries    int    // default 3
	ManagementKey []byte // default DefaultManagementKey
	// ManagementAlg is Alg3DES (default) or an AES algorithm; the card
	// reports it in its metadata, which piv-go reads on firmware >= 5.3.
	ManagementAlg byte
	Version       [3]byte // default 5.4.3
	Serial        uint32  // default 0x00c0ffee
	Rand          io.Reader
	// NoPINReset makes the card refuse VERIFY with P1=FF (6A86), as a card
	// that implements only P1=00 does (Yubico documents no other): only a
	// reset then clears the PIN's security status.
	NoPINReset bool
}

// Card is the state of one emulated PIV application. It is safe for
// concurrent use: the reader connection and the test inspect it at once.
type Card struct {
	mu  sync.Mutex
	opt Options

	pin, puk              []byte // padded to 8 bytes
	pinRetries, pinMax    int
	pukRetries, pukMax    int
	mgmtKey               []byte
	mgmtAlg               byte
	slots                 map[byte]*slotKey
	objects               map[uint32][]byte
	selected              bool
	pinVerified, pinFresh bool
	mgmtAuthed            bool
	witness               []byte

	resets int // power cycles and warm resets

	refuse   func(cmd *Command) uint16
	chain    *Command // command chaining in progress
	pending  []byte   // response bytes left for GET RESPONSE
	trace    func(capdu []byte)
	transmit int
}

// NewCard returns a card with opt applied over factory defaults.
func NewCard(opt Options) *Card {
	if opt.PIN == "" {
		opt.PIN = DefaultPIN
	}
	if opt.PUK == "" {
		opt.PUK = "12345678"
	}
	if opt.PINRetries == 0 {
		opt.PINRetries = 3
	}
	if opt.PUKRetries == 0 {
		opt.PUKRetries = 3
	}
	if opt.ManagementKey == nil {
		opt.ManagementKey = DefaultManagementKey
	}
	if opt.ManagementAlg == 0 {
		opt.ManagementAlg = Alg3DES
	}
	if opt.Version == ([3]byte{}) {
		opt.Version = [3]byte{5, 4, 3}
	}
	if opt.Serial == 0 {
		opt.Serial = 0x00c0ffee
	}
	if opt.Rand == nil {
		opt.Rand = rand.Reader
	}
	return &Card{
		opt:        opt,
		pin:        padPIN(opt.PIN),
		puk:        padPIN(opt.PUK),
		pinRetries: opt.PINRetries, pinMax: opt.PINRetries,
		pukRetries: opt.PUKRetries, pukMax: opt.PUKRetries,
		mgmtKey: bytes.Clone(opt.ManagementKey),
		mgmtAlg: opt.ManagementAlg,
		slots:   map[byte]*slotKey{},
		objects: map[uint32][]byte{},
	}
}

func padPIN(p string) []byte {
	b := []byte(p)
	for len(b) < 8 {
		b = append(b, 0xff)
	}
	return b
}

// PINRetries returns the PIN attempts left.
func (c *Card) PINRetries() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pinRetries
}

// SetPINRetries sets the PIN attempts left, as if wrong PINs had been tried.
func (c *Card) SetPINRetries(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pinRetries = n
}

// PublicKey returns the public key in slot, or nil when it is empty.
func (c *Card) PublicKey(slot byte) crypto.PublicKey {
	c.mu.Lock()
	defer c.mu.Unlock()
	if k := c.slots[slot]; k != nil {
		return k.signer.Public()
	}
	return nil
}

// Signatures returns how many private-key operations the card has done.
func (c *Card) Signatures() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, k := range c.slots {
		n += k.uses
	}
	return n
}

// Trace makes the card call f with every command APDU it receives (for
// capturing fuzz seeds).
func (c *Card) Trace(f func(capdu []byte)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.trace = f
}

// ATR is a YubiKey 5 answer-to-reset: T=1, historical bytes "YubiKey".
var ATR = []byte{0x3b, 0xfd, 0x13, 0x00, 0x00, 0x81, 0x31, 0xfe, 0x15, 0x80, 0x73, 0xc0, 0x21, 0xc0, 0x57, 0x59, 0x75, 0x62, 0x69, 0x4b, 0x65, 0x79, 0x40}

// ATR returns the card's answer to reset, ATR.
func (c *Card) ATR() []byte { return ATR }

// Reset is a power cycle: it clears the security status and selection, as
// removing and reinserting the card would.
func (c *Card) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resetLocked()
}

// Refuse makes the card answer a command with the status word f returns
// for it, instead of processing it, when that is not 9000: a card failing
// in the middle of a session.
func (c *Card) Refuse(f func(cmd *Command) uint16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refuse = f
}

// PINVerified reports whether the PIN's security status is set: a slot
// with PIN policy "once" would sign now without a PIN.
func (c *Card) PINVerified() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pinVerified
}

// Resets returns how many times the card was powered on or reset.
func (c *Card) Resets() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.resets
}

func (c *Card) resetLocked() {
	c.resets++
	c.selected = false
	c.pinVerified, c.pinFresh, c.mgmtAuthed = false, false, false
	c.witness = nil
	c.chain = nil
	c.pending = nil
}

// Transmit processes one command APDU and returns the response APDU (data
// and status word). It never panics on any input.
func (c *Card) Transmit(capdu []byte) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.transmit++
	if c.trace != nil {
		c.trace(bytes.Clone(capdu))
	}
	cmd, err := ParseCommand(capdu)
	if err != nil {
		c.chain = nil
		return sw(swWrongLength)
	}
	if cmd.CLA&^0x10 != 0 {
		c.chain = nil
		return sw(swClaNotSupported)
	}
	if cmd.INS == 0xc0 {
		return c.getResponse(cmd)
	}
	c.pending = nil
	// Command chaining (ISO 7816-4, 5.1.1.1): collect data until the last
	// command, which must carry the same INS, P1 and P2.
	if c.chain != nil {
		if cmd.INS != c.chain.INS || cmd.P1 != c.chain.P1 || cmd.P2 != c.chain.P2 {
			c.chain = nil
			return sw(swLastCommandExpectd)
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
		c.chain = &Command{INS: cmd.INS, P1: cmd.P1, P2: cmd.P2, Data: bytes.Clone(cmd.Data)}
		return sw(swOK)
	}
	if c.refuse != nil {
		if status := c.refuse(cmd); status != swOK {
			return sw(status)
		}
	}
	data, status := c.dispatch(cmd)
	if status != swOK {
		return sw(status)
	}
	return c.respond(data)
}

// respond sends up to 256 bytes and keeps the rest for GET RESPONSE,
// announcing it with 61xx.
func (c *Card) respond(data []byte) []byte {
	if len(data) <= 256 {
		return append(bytes.Clone(data), 0x90, 0x00)
	}
	c.pending = data[256:]
	left := len(c.pending)
	if left > 255 {
		left = 0
	}
	return append(bytes.Clone(data[:256]), 0x61, byte(left))
}

func (c *Card) getResponse(cmd *Command) []byte {
	if cmd.P1 != 0 || cmd.P2 != 0 || len(cmd.Data) != 0 {
		c.pending = nil
		return sw(swIncorrectP1P2)
	}
	if c.pending == nil {
		return sw(swConditionsNotMet)
	}
	data := c.pending
	c.pending = nil
	return c.respond(data)
}

func sw(s uint16) []byte { return []byte{byte(s >> 8), byte(s)} }

func (c *Card) dispatch(cmd *Command) ([]byte, uint16) {
	if cmd.INS == 0xa4 {
		return c.selectApp(cmd)
	}
	if !c.selected {
		return nil, swConditionsNotMet
	}
	switch cmd.INS {
	case 0xfd: // GET VERSION
		if len(cmd.Data) != 0 {
			return nil, swWrongLength
		}
		return c.opt.Version[:], swOK
	case 0xf8: // GET SERIAL
		if len(cmd.Data) != 0 {
			return nil, swWrongLength
		}
		s := c.opt.Serial
		return []byte{byte(s >> 24), byte(s >> 16), byte(s >> 8), byte(s)}, swOK
	case 0x20:
		return c.verify(cmd)
	case 0x24:
		return c.changeReference(cmd)
	case 0x2c:
		return c.resetRetry(cmd)
	case 0x87:
		return c.generalAuthenticate(cmd)
	case 0x47:
		return c.generate(cmd)
	case 0xfe:
		return c.importKey(cmd)
	case 0xcb:
		return c.getData(cmd)
	case 0xdb:
		return c.putData(cmd)
	case 0xf7:
		return c.metadata(cmd)
	}
	return nil, swInsNotSupported
}

func (c *Card) selectApp(cmd *Command) ([]byte, uint16) {
	if cmd.P1 != 0x04 || cmd.P2 != 0x00 {
		return nil, swIncorrectP1P2
	}
	// A partial AID selects by prefix (ISO 7816-4, 11.2.2).
	full := append(bytes.Clone(aidPIV), 0x00, 0x00, 0x10, 0x00, 0x01, 0x00)
	if len(cmd.Data) < len(aidPIV) || !bytes.HasPrefix(full, cmd.Data) {
		c.selected = false
		return nil, swFileNotFound
	}
	c.selected = true
	// Application property template (SP 800-73-4 part 2, 3.1.1).
	apt := AppendTLV(nil, 0x4f, full[5:])
	apt = AppendTLV(apt, 0x79, AppendTLV(nil, 0x4f, aidPIV))
	return AppendTLV(nil, 0x61, apt), swOK
}

func (c *Card) verify(cmd *Command) ([]byte, uint16) {
	if cmd.P2 != keyPIN {
		return nil, swRefDataNotFound
	}
	switch cmd.P1 {
	case 0xff: // reset the security status (SP 800-73-4 part 2, 3.2.1)
		if c.opt.NoPINReset {
			return nil, swIncorrectP1P2
		}
		if len(cmd.Data) != 0 {
			return nil, swWrongLength
		}
		c.pinVerified, c.pinFresh = false, false
		return nil, swOK
	case 0x00:
	default:
		return nil, swIncorrectP1P2
	}
	if len(cmd.Data) == 0 {
		switch {
		case c.pinVerified:
			return nil, swOK
		case c.pinRetries == 0:
			return nil, swAuthBlocked
		}
		return nil, 0x63c0 | uint16(min(c.pinRetries, 15))
	}
	if len(cmd.Data) != 8 {
		return nil, swWrongLength
	}
	if c.pinRetries == 0 {
		return nil, swAuthBlocked
	}
	if subtle.ConstantTimeCompare(cmd.Data, c.pin) != 1 {
		c.pinRetries--
		c.pinVerified, c.pinFresh = false, false
		return nil, 0x63c0 | uint16(min(c.pinRetries, 15))
	}
	c.pinRetries = c.pinMax
	c.pinVerified, c.pinFresh = true, true
	return nil, swOK
}

func validPIN(p []byte) bool {
	n := bytes.IndexByte(p, 0xff)
	if n < 0 {
		n = len(p)
	}
	for _, b := range p[n:] {
		if b != 0xff {
			return false
		}
	}
	return n >= 6
}

// checkRef compares a PIN or PUK against the reference, counting failures.
func checkRef(got, want []byte, retries *int, max int) uint16 {
	if *retries == 0 {
		return swAuthBlocked
	}
	if subtle.ConstantTimeCompare(got, want) != 1 {
		*retries--
		return 0x63c0 | uint16(min(*retries, 15))
	}
	*retries = max
	return swOK
}

func (c *Card) changeReference(cmd *Command) ([]byte, uint16) {
	if cmd.P1 != 0 {
		return nil, swIncorrectP1P2
	}
	if len(cmd.Data) != 16 {
		return nil, swWrongLength
	}
	old, nw := cmd.Data[:8], cmd.Data[8:]
	switch cmd.P2 {
	case keyPIN:
		if s := checkRef(old, c.pin, &c.pinRetries, c.pinMax); s != swOK {
			c.pinVerified, c.pinFresh = false, false
			return nil, s
		}
		if !validPIN(nw) {
			return nil, swWrongData
		}
		c.pin = bytes.Clone(nw)
	case keyPUK:
		if s := checkRef(old, c.puk, &c.pukRetries, c.pukMax); s != swOK {
			return nil, s
		}
		if !validPIN(nw) {
			return nil, swWrongData
		}
		c.puk = bytes.Clone(nw)
	default:
		return nil, swRefDataNotFound
	}
	return nil, swOK
}

func (c *Card) resetRetry(cmd *Command) ([]byte, uint16) {
	if cmd.P1 != 0 || cmd.P2 != keyPIN {
		return nil, swIncorrectP1P2
	}
	if len(cmd.Data) != 16 {
		return nil, swWrongLength
	}
	if s := checkRef(cmd.Data[:8], c.puk, &c.pukRetries, c.pukMax); s != swOK {
		return nil, s
	}
	if !validPIN(cmd.Data[8:]) {
		return nil, swWrongData
	}
	c.pin = bytes.Clone(cmd.Data[8:])
	c.pinRetries = c.pinMax
	return nil, swOK
}

func (c *Card) mgmtCipher() (cipher.Block, error) {
	switch c.mgmtAlg {
	case Alg3DES:
		return des.NewTripleDESCipher(c.mgmtKey)
	case AlgAES128, AlgAES192, AlgAES256:
		return aes.NewCipher(c.mgmtKey)
	}
	return nil, errors.New("unknown management key algorithm")
}

func (c *Card) generalAuthenticate(cmd *Command) ([]byte, uint16) {
	outer, err := ParseOne(cmd.Data, 0x7c)
	if err != nil {
		return nil, swWrongData
	}
	tlvs, err := ParseTLVs(outer)
	if err != nil {
		return nil, swWrongData
	}
	if cmd.P2 == keyCardManagement {
		return c.authManagement(cmd.P1, tlvs)
	}
	return c.sign(cmd.P1, cmd.P2, tlvs)
}

// authManagement runs the mutual authentication of SP 800-73-4 part 2,
// appendix A.1: the card sends an encrypted witness, the host returns it
// decrypted together with its own challenge, the card encrypts that.
func (c *Card) authManagement(alg byte, tlvs []TLV) ([]byte, uint16) {
	if alg != c.mgmtAlg {
		return nil, swIncorrectP1P2
	}
	block, err := c.mgmtCipher()
	if err != nil {
		return nil, swConditionsNotMet
	}
	n := block.BlockSize()
	witness, hasW := find(tlvs, 0x80)
	challenge, hasC := find(tlvs, 0x81)
	switch {
	case len(tlvs) == 1 && hasW && len(witness) == 0:
		w := make([]byte, n)
		if _, err := io.ReadFull(c.opt.Rand, w); err != nil {
			return nil, swConditionsNotMet
		}
		c.witness = w
		c.mgmtAuthed = false
		enc := make([]byte, n)
		block.Encrypt(enc, w)
		return AppendTLV(nil, 0x7c, AppendTLV(nil, 0x80, enc)), swOK
	case len(tlvs) == 2 && hasW && hasC:
		want := c.witness
		c.witness = nil
		if want == nil || len(witness) != n || len(challenge) != n {
			return nil, swConditionsNotMet
		}
		if subtle.ConstantTimeCompare(witness, want) != 1 {
			return nil, swSecurityStatus
		}
		c.mgmtAuthed = true
		enc := make([]byte, n)
		block.Encrypt(enc, challenge)
		return AppendTLV(nil, 0x7c, AppendTLV(nil, 0x82, enc)), swOK
	}
	return nil, swWrongData
}

func (c *Card) sign(alg, slot byte, tlvs []TLV) ([]byte, uint16) {
	k := c.slots[slot]
	if k == nil {
		return nil, swRefDataNotFound
	}
	if k.alg != alg {
		return nil, swIncorrectP1P2
	}
	resp, hasResp := find(tlvs, 0x82)
	chal, hasChal := find(tlvs, 0x81)
	if len(tlvs) != 2 || !hasResp || len(resp) != 0 || !hasChal {
		return nil, swWrongData
	}
	switch k.pinPolicy {
	case PINPolicyNever:
	case PINPolicyAlways:
		if !c.pinVerified || !c.pinFresh {
			return nil, swSecurityStatus
		}
		c.pinFresh = false
	default:
		if !c.pinVerified {
			return nil, swSecurityStatus
		}
	}
	sig, err := k.sign(chal, c.opt.Rand)
	if err != nil {
		return nil, swWrongData
	}
	k.uses++
	return AppendTLV(nil, 0x7c, AppendTLV(nil, 0x82, sig)), swOK
}

// parsePolicy reads the optional PIN (AA) and touch (AB) policy objects.
func parsePolicy(tlvs []TLV) (pin byte, ok bool) {
	pin = PINPolicyDefault
	for _, t := range tlvs {
		switch t.Tag {
		case 0xaa:
			if len(t.Value) != 1 || t.Value[0] > PINPolicyAlways {
				return 0, false
			}
			pin = t.Value[0]
		case 0xab:
			if len(t.Value) != 1 || t.Value[0] > 0x03 {
				return 0, false
			}
		}
	}
	return pin, true
}

func slotPolicy(slot, p byte) byte {
	if p != PINPolicyDefault {
		return p
	}
	switch slot {
	case 0x9c:
		return PINPolicyAlways
	case 0x9e:
		return PINPolicyNever
	}
	return PINPolicyOnce
}

func validKeySlot(slot byte) bool {
	return slot == 0x9a || slot == 0x9c || slot == 0x9d || slot == 0x9e || (slot >= 0x82 && slot <= 0x95)
}

func (c *Card) generate(cmd *Command) ([]byte, uint16) {
	if cmd.P1 != 0 || !validKeySlot(cmd.P2) {
		return nil, swIncorrectP1P2
	}
	if !c.mgmtAuthed {
		return nil, swSecurityStatus
	}
	tmpl, err := ParseOne(cmd.Data, 0xac)
	if err != nil {
		return nil, swWrongData
	}
	tlvs, err := ParseTLVs(tmpl)
	if err != nil {
		return nil, swWrongData
	}
	a, ok := find(tlvs, 0x80)
	if !ok || len(a) != 1 {
		return nil, swWrongData
	}
	pp, ok := parsePolicy(tlvs)
	if !ok {
		return nil, swWrongData
	}
	k, err := generateKey(a[0], c.opt.Rand)
	if err != nil {
		return nil, swWrongData
	}
	k.pinPolicy, k.origin = slotPolicy(cmd.P2, pp), 1
	c.slots[cmd.P2] = k
	return AppendTLV(nil, 0x7f49, k.publicTLVs()), swOK
}

func (c *Card) importKey(cmd *Command) ([]byte, uint16) {
	if !validKeySlot(cmd.P2) {
		return nil, swIncorrectP1P2
	}
	if !c.mgmtAuthed {
		return nil, swSecurityStatus
	}
	tlvs, err := ParseTLVs(cmd.Data)
	if err != nil {
		return nil, swWrongData
	}
	pp, ok := parsePolicy(tlvs)
	if !ok {
		return nil, swWrongData
	}
	k, err := importKey(cmd.P1, tlvs)
	if err != nil {
		return nil, swWrongData
	}
	k.pinPolicy, k.origin = slotPolicy(cmd.P2, pp), 2
	c.slots[cmd.P2] = k
	return nil, swOK
}

// objectTag reads the tag list 5C of GET DATA and PUT DATA.
func objectTag(v []byte) (uint32, bool) {
	if len(v) == 0 || len(v) > 3 {
		return 0, false
	}
	var t uint32
	for _, b := range v {
		t = t<<8 | uint32(b)
	}
	return t, true
}

func (c *Card) getData(cmd *Command) ([]byte, uint16) {
	if cmd.P1 != 0x3f || cmd.P2 != 0xff {
		return nil, swIncorrectP1P2
	}
	v, err := ParseOne(cmd.Data, 0x5c)
	if err != nil {
		return nil, swWrongData
	}
	tag, ok := objectTag(v)
	if !ok {
		return nil, swWrongData
	}
	obj, ok := c.objects[tag]
	if !ok {
		return nil, swFileNotFound
	}
	// The printed information and protected objects need the PIN.
	if tag == 0x5fc109 && !c.pinVerified {
		return nil, swSecurityStatus
	}
	return AppendTLV(nil, 0x53, obj), swOK
}

func (c *Card) putData(cmd *Command) ([]byte, uint16) {
	if cmd.P1 != 0x3f || cmd.P2 != 0xff {
		return nil, swIncorrectP1P2
	}
	if !c.mgmtAuthed {
		return nil, swSecurityStatus
	}
	tlvs, err := ParseTLVs(cmd.Data)
	if err != nil || len(tlvs) != 2 || tlvs[0].Tag != 0x5c || tlvs[1].Tag != 0x53 {
		return nil, swWrongData
	}
	tag, ok := objectTag(tlvs[0].Value)
	if !ok || tag>>8 != 0x5fc1 && tag != 0x7e && tag != 0x7f61 && tag>>8 != 0x5fff {
		return nil, swWrongData
	}
	if len(tlvs[1].Value) == 0 {
		delete(c.objects, tag)
		return nil, swOK
	}
	c.objects[tag] = bytes.Clone(tlvs[1].Value)
	return nil, swOK
}

// metadata answers the YubiKey GET METADATA command (firmware 5.3+).
func (c *Card) metadata(cmd *Command) ([]byte, uint16) {
	if cmd.P1 != 0 || len(cmd.Data) != 0 {
		return nil, swIncorrectP1P2
	}
	var out []byte
	switch slot := cmd.P2; {
	case slot == keyCardManagement:
		isDefault := byte(0)
		if c.mgmtAlg == Alg3DES && bytes.Equal(c.mgmtKey, DefaultManagementKey) {
			isDefault = 1
		}
		out = AppendTLV(out, 0x01, []byte{c.mgmtAlg})
		out = AppendTLV(out, 0x02, []byte{0x00, TouchNever})
		out = AppendTLV(out, 0x05, []byte{isDefault})
	case slot == keyPIN || slot == keyPUK:
		ref, def, retries, max := c.pin, "123456", c.pinRetries, c.pinMax
		if slot == keyPUK {
			ref, def, retries, max = c.puk, "12345678", c.pukRetries, c.pukMax
		}
		isDefault := byte(0)
		if bytes.Equal(ref, padPIN(def)) {
			isDefault = 1
		}
		out = AppendTLV(out, 0x01, []byte{0xff})
		out = AppendTLV(out, 0x05, []byte{isDefault})
		out = AppendTLV(out, 0x06, []byte{byte(max), byte(retries)})
	case validKeySlot(slot):
		k := c.slots[slot]
		if k == nil {
			return nil, swRefDataNotFound
		}
		out = AppendTLV(out, 0x01, []byte{k.alg})
		out = AppendTLV(out, 0x02, []byte{k.pinPolicy, TouchNever})
		out = AppendTLV(out, 0x03, []byte{k.origin})
		out = AppendTLV(out, 0x04, k.publicTLVs())
	default:
		return nil, swRefDataNotFound
	}
	return out, swOK
}

// String describes the card state for test failure messages.
func (c *Card) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("pivemu card: %d PIN retries, %d slots, %d commands", c.pinRetries, len(c.slots), c.transmit)
}
