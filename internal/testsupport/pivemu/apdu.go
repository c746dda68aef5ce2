// Package pivemu is a PIV smartcard emulator for tests: it implements the
// parts of NIST SP 800-73-4 and the YubiKey PIV extensions that
// github.com/go-piv/piv-go/v2 sends, and plugs into Debian's pcscd through the
// vsmartcard-vpcd virtual reader, so tests exercise the real path
// (piv-go, libpcsclite, pcscd, vpcd, card) without hardware.
//
// It is test support code: keys are held in memory and nothing here is meant
// to protect a secret.
package pivemu

import (
	"errors"
	"fmt"
)

// Command is a parsed command APDU (ISO/IEC 7816-4, 5.1).
type Command struct {
	CLA, INS, P1, P2 byte
	Data             []byte
	// Le is the maximum response length expected: 0 when absent, up to 256
	// for short APDUs and 65536 for extended ones.
	Le       int
	Extended bool
}

// Chained reports whether the command is part of a chain that continues
// (CLA bit 0x10).
func (c *Command) Chained() bool { return c.CLA&0x10 != 0 }

// ErrAPDU means the bytes are not a well-formed command APDU.
var ErrAPDU = errors.New("malformed command APDU")

// ParseCommand parses a short or extended command APDU strictly: the length
// fields must account for every byte, Lc is never 0, and nothing trails.
func ParseCommand(b []byte) (*Command, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("%w: %d bytes, need at least 4", ErrAPDU, len(b))
	}
	c := &Command{CLA: b[0], INS: b[1], P1: b[2], P2: b[3]}
	body := b[4:]
	switch {
	case len(body) == 0: // case 1
		return c, nil
	case len(body) == 1: // case 2 short
		c.Le = leShort(body[0])
		return c, nil
	case body[0] != 0: // case 3 or 4 short
		lc := int(body[0])
		switch len(body) {
		case 1 + lc:
			c.Data = body[1:]
		case 2 + lc:
			c.Data = body[1 : 1+lc]
			c.Le = leShort(body[1+lc])
		default:
			return nil, fmt.Errorf("%w: Lc %d does not match %d body bytes", ErrAPDU, lc, len(body))
		}
		return c, nil
	}
	// body[0] == 0 and more bytes follow: extended length.
	c.Extended = true
	if len(body) < 3 {
		return nil, fmt.Errorf("%w: truncated extended length", ErrAPDU)
	}
	n := int(body[1])<<8 | int(body[2])
	if len(body) == 3 { // case 2 extended
		c.Le = leExtended(n)
		return c, nil
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: extended Lc of 0", ErrAPDU)
	}
	switch len(body) {
	case 3 + n: // case 3 extended
		c.Data = body[3:]
	case 5 + n: // case 4 extended
		c.Data = body[3 : 3+n]
		c.Le = leExtended(int(body[3+n])<<8 | int(body[4+n]))
	default:
		return nil, fmt.Errorf("%w: extended Lc %d does not match %d body bytes", ErrAPDU, n, len(body))
	}
	return c, nil
}

func leShort(b byte) int {
	if b == 0 {
		return 256
	}
	return int(b)
}

func leExtended(n int) int {
	if n == 0 {
		return 65536
	}
	return n
}

// Encode writes c back as an APDU: short when data and Le fit, extended when
// c.Extended is set or they do not.
func (c *Command) Encode() []byte {
	out := []byte{c.CLA, c.INS, c.P1, c.P2}
	ext := c.Extended || len(c.Data) > 255 || c.Le > 256
	if !ext {
		if len(c.Data) > 0 {
			out = append(out, byte(len(c.Data)))
			out = append(out, c.Data...)
		}
		if c.Le > 0 {
			out = append(out, byte(c.Le)) // 256 encodes as 0
		}
		return out
	}
	if len(c.Data) == 0 && c.Le == 0 {
		return out // an extended case 1 is just case 1
	}
	out = append(out, 0)
	if len(c.Data) > 0 {
		out = append(out, byte(len(c.Data)>>8), byte(len(c.Data)))
		out = append(out, c.Data...)
	}
	if c.Le > 0 {
		out = append(out, byte(c.Le>>8), byte(c.Le)) // 65536 encodes as 0000
	}
	return out
}

// Status words used by the card.
const (
	swOK                 = 0x9000
	swWrongLength        = 0x6700
	swSecurityStatus     = 0x6982
	swAuthBlocked        = 0x6983
	swConditionsNotMet   = 0x6985
	swWrongData          = 0x6a80
	swFuncNotSupported   = 0x6a81
	swFileNotFound       = 0x6a82
	swIncorrectP1P2      = 0x6a86
	swRefDataNotFound    = 0x6a88
	swInsNotSupported    = 0x6d00
	swClaNotSupported    = 0x6e00
	swLastCommandExpectd = 0x6883
)
