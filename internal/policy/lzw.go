package policy

import (
	"bufio"
	"errors"
	"io"
)

// A decoder for compress(1) .Z data (ncompress 4.2, as makepkg's
// COMPRESSZ=(compress -c -f) writes it, with -b 10 to -b 16; what -b 9
// writes, compress -d cannot read either). Go's
// compress/lzw reads another LZW layout: .Z codes come in groups of eight
// (n_bits bytes), and a change of code width or a CLEAR code drops the rest
// of the current group, as ncompress does. The table is 64 Ki entries.

var errZ = errors.New("compress: malformed stream")

const (
	lzwClear = 256
	lzwMax   = 1 << 16
)

type lzwReader struct {
	r       *bufio.Reader
	maxBits int
	block   bool
	nbits   int
	maxcode int
	freeEnt int
	oldcode int
	finchar byte
	group   [16]byte
	glen    int // bytes in group
	gpos    int // next code index in group
	prefix  [lzwMax]uint16
	suffix  [lzwMax]byte
	stack   []byte
	out     []byte
	buf     []byte
	err     error
}

func openCompress(r *bufio.Reader, _ Limits) (io.Reader, error) {
	var h [3]byte
	if _, err := io.ReadFull(r, h[:]); err != nil || h[0] != 0x1F || h[1] != 0x9D {
		return nil, errZ
	}
	z := &lzwReader{r: r, maxBits: int(h[2] & 0x1F), block: h[2]&0x80 != 0}
	if h[2]&0x60 != 0 || z.maxBits < 9 || z.maxBits > 16 {
		return nil, errZ
	}
	z.nbits = 9
	z.maxcode = 1<<9 - 1
	z.freeEnt = 256
	if z.block {
		z.freeEnt = 257
	}
	z.oldcode = -1
	z.buf = make([]byte, 0, 4*lzwMax)
	z.stack = make([]byte, 0, lzwMax)
	return z, nil
}

func (z *lzwReader) Read(p []byte) (int, error) {
	for len(z.out) == 0 {
		if z.err != nil {
			return 0, z.err
		}
		z.err = z.fill()
	}
	n := copy(p, z.out)
	z.out = z.out[n:]
	return n, nil
}

// code returns the next code, or io.EOF at the end of the input.
func (z *lzwReader) code() (int, error) {
	if z.gpos*z.nbits+z.nbits > z.glen*8 {
		if z.glen != 0 && z.glen < z.nbits {
			return 0, io.EOF // the short last group is used up
		}
		n, err := io.ReadFull(z.r, z.group[:z.nbits])
		if n == 0 {
			return 0, io.EOF
		}
		if err != nil && err != io.ErrUnexpectedEOF {
			return 0, err
		}
		z.glen, z.gpos = n, 0
		if z.nbits > z.glen*8 {
			return 0, io.EOF
		}
	}
	bit := z.gpos * z.nbits
	var v uint32
	for i := 0; i < 3 && bit/8+i < z.glen; i++ {
		v |= uint32(z.group[bit/8+i]) << (8 * i)
	}
	z.gpos++
	return int(v>>(bit%8)) & (1<<z.nbits - 1), nil
}

// dropGroup skips the rest of the current group of codes.
func (z *lzwReader) dropGroup() { z.glen, z.gpos = 0, 0 }

// fill decodes codes until some output is ready.
func (z *lzwReader) fill() error {
	z.buf = z.buf[:0]
	for len(z.buf) < cap(z.buf)-lzwMax {
		if z.freeEnt > z.maxcode {
			// As ncompress decodes: the width grows when the table
			// passes the current code size, up to maxBits.
			z.dropGroup()
			z.nbits++
			z.maxcode = 1<<z.nbits - 1
			if z.nbits == z.maxBits {
				z.maxcode = 1 << z.maxBits
			}
		}
		code, err := z.code()
		if err == io.EOF {
			if len(z.buf) > 0 {
				z.out = z.buf
				return nil
			}
			return io.EOF
		}
		if err != nil {
			return err
		}
		if z.oldcode == -1 {
			if code >= 256 {
				return errZ
			}
			z.oldcode, z.finchar = code, byte(code)
			z.buf = append(z.buf, byte(code))
			continue
		}
		if code == lzwClear && z.block {
			// The table need not be cleared: only codes below freeEnt
			// are looked up, and each is written again before that.
			z.freeEnt = 256
			z.dropGroup()
			z.nbits = 9
			z.maxcode = 1<<9 - 1
			continue
		}
		incode := code
		st := z.stack[:0]
		if code >= z.freeEnt {
			if code > z.freeEnt {
				return errZ
			}
			st = append(st, z.finchar)
			code = z.oldcode
		}
		for code >= 256 {
			st = append(st, z.suffix[code])
			code = int(z.prefix[code])
		}
		z.finchar = byte(code)
		st = append(st, z.finchar)
		for i := len(st) - 1; i >= 0; i-- {
			z.buf = append(z.buf, st[i])
		}
		if z.freeEnt < 1<<z.maxBits {
			z.prefix[z.freeEnt] = uint16(z.oldcode)
			z.suffix[z.freeEnt] = z.finchar
			z.freeEnt++
		}
		z.oldcode = incode
	}
	z.out = z.buf
	return nil
}
