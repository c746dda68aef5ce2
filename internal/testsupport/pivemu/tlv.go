package pivemu

import (
	"errors"
	"fmt"
)

// TLV is one BER-TLV data object as PIV uses them: a tag of one to three
// bytes and a definite length.
type TLV struct {
	Tag   uint32
	Value []byte
}

// ErrTLV means bytes are not a well-formed sequence of BER-TLV objects.
var ErrTLV = errors.New("malformed TLV")

// ParseTLVs parses b as a sequence of TLV objects that covers it exactly.
// Lengths must be definite, minimally encoded and at most 0xffffff.
func ParseTLVs(b []byte) ([]TLV, error) {
	var out []TLV
	for len(b) > 0 {
		t, rest, err := parseTLV(b)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
		b = rest
	}
	return out, nil
}

// ParseOne parses b as exactly one TLV object with the given tag.
func ParseOne(b []byte, tag uint32) ([]byte, error) {
	t, rest, err := parseTLV(b)
	if err != nil {
		return nil, err
	}
	if t.Tag != tag {
		return nil, fmt.Errorf("%w: tag %X, want %X", ErrTLV, t.Tag, tag)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after tag %X", ErrTLV, len(rest), tag)
	}
	return t.Value, nil
}

func parseTLV(b []byte) (TLV, []byte, error) {
	if len(b) == 0 {
		return TLV{}, nil, fmt.Errorf("%w: empty", ErrTLV)
	}
	if b[0] == 0x00 || b[0] == 0xff {
		return TLV{}, nil, fmt.Errorf("%w: tag byte %02X is padding, not a tag", ErrTLV, b[0])
	}
	tag := uint32(b[0])
	i := 1
	if b[0]&0x1f == 0x1f {
		for {
			if i >= len(b) {
				return TLV{}, nil, fmt.Errorf("%w: truncated tag", ErrTLV)
			}
			if i == 3 {
				return TLV{}, nil, fmt.Errorf("%w: tag longer than 3 bytes", ErrTLV)
			}
			tag = tag<<8 | uint32(b[i])
			i++
			if b[i-1]&0x80 == 0 {
				break
			}
		}
	}
	if i >= len(b) {
		return TLV{}, nil, fmt.Errorf("%w: missing length of tag %X", ErrTLV, tag)
	}
	n := int(b[i])
	i++
	if n >= 0x80 {
		k := n & 0x7f
		if k == 0 || k > 3 {
			return TLV{}, nil, fmt.Errorf("%w: length form %02X", ErrTLV, n)
		}
		if i+k > len(b) {
			return TLV{}, nil, fmt.Errorf("%w: truncated length of tag %X", ErrTLV, tag)
		}
		n = 0
		for _, c := range b[i : i+k] {
			n = n<<8 | int(c)
		}
		i += k
		if n < 0x80 || (k > 1 && n < 1<<(8*(k-1))) {
			return TLV{}, nil, fmt.Errorf("%w: length %d of tag %X not minimally encoded", ErrTLV, n, tag)
		}
	}
	if n > len(b)-i {
		return TLV{}, nil, fmt.Errorf("%w: tag %X claims %d bytes, %d left", ErrTLV, tag, n, len(b)-i)
	}
	return TLV{Tag: tag, Value: b[i : i+n]}, b[i+n:], nil
}

// AppendTLV appends tag, the minimal length encoding and value to b.
func AppendTLV(b []byte, tag uint32, value []byte) []byte {
	switch {
	case tag > 0xffff:
		b = append(b, byte(tag>>16), byte(tag>>8), byte(tag))
	case tag > 0xff:
		b = append(b, byte(tag>>8), byte(tag))
	default:
		b = append(b, byte(tag))
	}
	n := len(value)
	switch {
	case n < 0x80:
		b = append(b, byte(n))
	case n < 0x100:
		b = append(b, 0x81, byte(n))
	case n < 0x10000:
		b = append(b, 0x82, byte(n>>8), byte(n))
	default:
		b = append(b, 0x83, byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, value...)
}

// find returns the value of the first object with tag in tlvs.
func find(tlvs []TLV, tag uint32) ([]byte, bool) {
	for _, t := range tlvs {
		if t.Tag == tag {
			return t.Value, true
		}
	}
	return nil, false
}
