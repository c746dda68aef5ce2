package openpgpemu

import (
	"bytes"

	"github.com/signstar/signstar/internal/testsupport/pivemu"
)

// extCaps is the extended capabilities DO (C0, spec 3.4, 4.4.3.7): key
// import (20), PW1 status changeable (10), algorithm attributes changeable
// (04); no secure messaging, no GET CHALLENGE; a cardholder certificate of
// up to 2048 bytes, special DOs of up to 255; PIN block 2 and MSE not
// supported.
var extCaps = []byte{0x34, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0xff, 0x00, 0x00}

func (c *Card) pwStatus() []byte {
	many := byte(0)
	if c.sigPINMany {
		many = 1
	}
	return []byte{many, 127, 127, 127, byte(c.pw1Tries), byte(c.rcTries), byte(c.pw3Tries)}
}

func cat[T any](a [3]T, f func(T) []byte) []byte {
	var b []byte
	for _, x := range a {
		b = append(b, f(x)...)
	}
	return b
}

// object returns the value of data object tag, or ok false when the card
// has no such object.
func (c *Card) object(tag uint16) (v []byte, ok bool) {
	switch tag {
	case 0x004f:
		return c.aid(), true
	case 0x5f52:
		return historical, true
	case 0x005b:
		return c.name, true
	case 0x5f2d:
		return c.lang, true
	case 0x5f35:
		return c.sex, true
	case 0x5f50:
		return c.url, true
	case 0x005e:
		return c.login, true
	case 0x7f21:
		return c.cert, true
	case 0x00c0:
		return extCaps, true
	case 0x00c1, 0x00c2, 0x00c3:
		return c.attrs[tag-0xc1], true
	case 0x00c4:
		return c.pwStatus(), true
	case 0x00c5:
		return cat(c.fprs, func(f [20]byte) []byte { return f[:] }), true
	case 0x00c6:
		return cat(c.caFprs, func(f [20]byte) []byte { return f[:] }), true
	case 0x00cd:
		return cat(c.times, func(t [4]byte) []byte { return t[:] }), true
	case 0x0093:
		n := c.sigCount
		return []byte{byte(n >> 16), byte(n >> 8), byte(n)}, true
	case 0x0065: // cardholder related data
		var b []byte
		b = pivemu.AppendTLV(b, 0x5b, c.name)
		b = pivemu.AppendTLV(b, 0x5f2d, c.lang)
		b = pivemu.AppendTLV(b, 0x5f35, c.sex)
		return b, true
	case 0x006e: // application related data
		var dd []byte
		for _, t := range []uint16{0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xcd} {
			v, _ := c.object(t)
			dd = pivemu.AppendTLV(dd, uint32(t), v)
		}
		var b []byte
		b = pivemu.AppendTLV(b, 0x4f, c.aid())
		b = pivemu.AppendTLV(b, 0x5f52, historical)
		b = pivemu.AppendTLV(b, 0x73, dd)
		return b, true
	case 0x007a: // security support template
		v, _ := c.object(0x93)
		return pivemu.AppendTLV(nil, 0x93, v), true
	}
	return nil, false
}

// GET DATA answers with the value alone (no tag), except for constructed
// objects, whose value is the TLVs inside (spec 3.4, 7.2.6).
func (c *Card) getData(tag uint16) ([]byte, uint16) {
	v, ok := c.object(tag)
	if !ok {
		return nil, swRefDataNotFound
	}
	return bytes.Clone(v), swOK
}

// putData writes a DO; all need PW3 (spec 3.4, 4.4.1).
func (c *Card) putData(tag uint16, v []byte) uint16 {
	if !c.pw3OK {
		return swSecurityStatus
	}
	set := func(dst *[]byte, max int) uint16 {
		if len(v) > max {
			return swWrongLength
		}
		*dst = bytes.Clone(v)
		return swOK
	}
	switch tag {
	case 0x005b:
		return set(&c.name, 39)
	case 0x5f2d:
		return set(&c.lang, 8)
	case 0x5f35:
		if len(v) != 1 {
			return swWrongLength
		}
		return set(&c.sex, 1)
	case 0x5f50:
		return set(&c.url, 255)
	case 0x005e:
		return set(&c.login, 255)
	case 0x7f21:
		return set(&c.cert, 2048)
	case 0x00c4:
		if len(v) < 1 || v[0] > 1 {
			return swWrongData
		}
		c.sigPINMany = v[0] == 1
		return swOK
	case 0x00c1, 0x00c2, 0x00c3:
		i := tag - 0xc1
		if !validAttr(int(i), v) {
			return swWrongData
		}
		// A new algorithm makes the old key useless (spec 3.4, 4.4.3.9).
		c.attrs[i] = bytes.Clone(v)
		c.keys[i] = nil
		c.fprs[i], c.times[i] = [20]byte{}, [4]byte{}
		return swOK
	case 0x00c7, 0x00c8, 0x00c9:
		if len(v) != 20 {
			return swWrongLength
		}
		copy(c.fprs[tag-0xc7][:], v)
		return swOK
	case 0x00ca, 0x00cb, 0x00cc:
		if len(v) != 20 {
			return swWrongLength
		}
		copy(c.caFprs[tag-0xca][:], v)
		return swOK
	case 0x00ce, 0x00cf, 0x00d0:
		if len(v) != 4 {
			return swWrongLength
		}
		copy(c.times[tag-0xce][:], v)
		return swOK
	case 0x00d3: // resetting code; empty removes it
		if len(v) == 0 {
			c.rc, c.rcTries = nil, 0
			return swOK
		}
		if len(v) < 8 || len(v) > 127 {
			return swWrongLength
		}
		c.rc, c.rcTries = bytes.Clone(v), c.maxTries
		return swOK
	}
	return swRefDataNotFound
}
