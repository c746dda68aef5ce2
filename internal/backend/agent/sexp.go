package agent

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
)

// sexp is a canonical S-expression (as libgcrypt writes them): an atom or,
// when isList, a list.
type sexp struct {
	atom   []byte
	list   []*sexp
	isList bool
}

// Limits on what we parse: a sig-val is three levels deep and has a handful
// of elements; anything beyond these is not a signature.
const (
	maxSexpDepth = 8
	maxSexpItems = 64
)

// parseSexp parses exactly one canonical S-expression filling all of b.
// Display hints ("[...]") and the advanced/transport forms are refused: the
// agent sends canonical form only.
func parseSexp(b []byte) (*sexp, error) {
	p := sexpParser{b: b}
	s, err := p.parse(0)
	if err != nil {
		return nil, err
	}
	if p.i != len(b) {
		return nil, fmt.Errorf("malformed S-expression: %d trailing bytes", len(b)-p.i)
	}
	if !s.isList {
		return nil, errors.New("malformed S-expression: is an atom, not a list")
	}
	return s, nil
}

type sexpParser struct {
	b     []byte
	i     int
	items int
}

func (p *sexpParser) parse(depth int) (*sexp, error) {
	if p.i >= len(p.b) {
		return nil, errors.New("malformed S-expression: ends early")
	}
	p.items++
	if p.items > maxSexpItems {
		return nil, errors.New("malformed S-expression: has too many elements")
	}
	c := p.b[p.i]
	switch {
	case c == '(':
		if depth >= maxSexpDepth {
			return nil, errors.New("malformed S-expression: nested too deep")
		}
		p.i++
		s := &sexp{isList: true}
		for {
			if p.i >= len(p.b) {
				return nil, errors.New("malformed S-expression: list not closed")
			}
			if p.b[p.i] == ')' {
				p.i++
				return s, nil
			}
			e, err := p.parse(depth + 1)
			if err != nil {
				return nil, err
			}
			s.list = append(s.list, e)
		}
	case '0' <= c && c <= '9':
		n := 0
		for p.i < len(p.b) && '0' <= p.b[p.i] && p.b[p.i] <= '9' {
			if n == 0 && p.b[p.i] == '0' && p.i+1 < len(p.b) && '0' <= p.b[p.i+1] && p.b[p.i+1] <= '9' {
				return nil, errors.New("malformed S-expression: length with a leading zero")
			}
			n = n*10 + int(p.b[p.i]-'0')
			if n > len(p.b) {
				return nil, errors.New("malformed S-expression: atom longer than the reply")
			}
			p.i++
		}
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return nil, errors.New("malformed S-expression: length without ':'")
		}
		p.i++
		if n > len(p.b)-p.i {
			return nil, errors.New("malformed S-expression: atom longer than the reply")
		}
		s := &sexp{atom: p.b[p.i : p.i+n]}
		p.i += n
		return s, nil
	}
	return nil, fmt.Errorf("malformed S-expression: unexpected byte 0x%02x (not canonical form)", c)
}

// name is the first element of a list when it is an atom.
func (s *sexp) name() string {
	if !s.isList || len(s.list) == 0 || s.list[0].isList {
		return ""
	}
	return string(s.list[0].atom)
}

// find returns the sub-list of s whose name is n.
func (s *sexp) find(n string) *sexp {
	for _, e := range s.list[min(1, len(s.list)):] {
		if e.name() == n {
			return e
		}
	}
	return nil
}

// value returns the atom of the sub-list (n VALUE), or nil.
func (s *sexp) value(n string) []byte {
	e := s.find(n)
	if e == nil || len(e.list) != 2 || e.list[1].isList {
		return nil
	}
	return e.list[1].atom
}

// sigVal is what the agent's PKSIGN reply holds: the algorithm and its
// values, unsigned big-endian with leading zeros as gcrypt left them.
type sigVal struct {
	algo string // "rsa", "ecdsa", "eddsa"
	s    []byte
	r    []byte // ecdsa, eddsa
}

// parseSigVal decodes (sig-val (ALGO (r R) (s S))) as gpg-agent returns it.
// An unexpected algorithm or a missing value is an error.
func parseSigVal(b []byte) (*sigVal, error) {
	top, err := parseSexp(b)
	if err != nil {
		return nil, err
	}
	if top.name() != "sig-val" {
		return nil, fmt.Errorf("reply is %q, not a sig-val", top.name())
	}
	for _, e := range top.list[1:] {
		switch algo := e.name(); algo {
		case "rsa":
			s := e.value("s")
			if len(s) == 0 {
				return nil, errors.New("rsa sig-val without s")
			}
			return &sigVal{algo: algo, s: s}, nil
		case "ecdsa", "eddsa":
			r, s := e.value("r"), e.value("s")
			if len(r) == 0 || len(s) == 0 {
				return nil, fmt.Errorf("%s sig-val without r or s", algo)
			}
			return &sigVal{algo: algo, r: r, s: s}, nil
		}
	}
	return nil, errors.New("sig-val of an algorithm signstar does not sign with")
}

// leftPad strips leading zero bytes from b and left-pads it to size bytes,
// failing when the value does not fit.
func leftPad(b []byte, size int) ([]byte, error) {
	b = bytes.TrimLeft(b, "\x00")
	if len(b) > size {
		return nil, fmt.Errorf("value of %d bytes where at most %d fit", len(b), size)
	}
	out := make([]byte, size)
	copy(out[size-len(b):], b)
	return out, nil
}

// mpi reads an unsigned big-endian value.
func mpi(b []byte) *big.Int { return new(big.Int).SetBytes(b) }
