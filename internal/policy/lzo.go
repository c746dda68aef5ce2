package policy

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
)

// An lzop decoder: the lzop container (lzop 1.0x, as lzop -1 to -9 write
// it) around LZO1X blocks. Levels -1 to -6 use LZO1X-1 and -7 to -9
// LZO1X-999; both decompress with the one LZO1X decoder below, written
// from the LZO1X bitstream description in the Linux kernel's
// Documentation/staging/lzo.rst. Each lzop block is compressed on its own
// (at most 64 MiB, 256 KiB as lzop writes them). Checksums are skipped.

var (
	lzopMagic = []byte{0x89, 'L', 'Z', 'O', 0x00, 0x0D, 0x0A, 0x1A, 0x0A}
	errLzo    = errors.New("lzop: malformed stream")
)

// lzop header flags.
const (
	lzopAdler32D   = 0x0001
	lzopAdler32C   = 0x0002
	lzopExtraField = 0x0040
	lzopCRC32D     = 0x0100
	lzopCRC32C     = 0x0200
	lzopMultipart  = 0x0400
	lzopFilter     = 0x0800
	lzopMaxBlock   = 64 << 20
)

type lzopReader struct {
	r      *bufio.Reader
	flags  uint32
	maxBlk int
	out    []byte
	dst    []byte
	src    []byte
	err    error
}

func openLzop(r *bufio.Reader, lim Limits) (io.Reader, error) {
	z := &lzopReader{r: r, maxBlk: int(min(lzopMaxBlock, lim.Window))}
	if err := z.header(); err != nil {
		return nil, err
	}
	return z, nil
}

func (z *lzopReader) header() error {
	var magic [9]byte
	if _, err := io.ReadFull(z.r, magic[:]); err != nil || string(magic[:]) != string(lzopMagic) {
		return errLzo
	}
	u16 := func() (uint16, error) {
		var b [2]byte
		_, err := io.ReadFull(z.r, b[:])
		return binary.BigEndian.Uint16(b[:]), err
	}
	u32 := func() (uint32, error) {
		var b [4]byte
		_, err := io.ReadFull(z.r, b[:])
		return binary.BigEndian.Uint32(b[:]), err
	}
	version, err := u16()
	if err != nil || version < 0x0900 {
		return errLzo
	}
	if _, err := u16(); err != nil { // library version
		return errLzo
	}
	if version >= 0x0940 {
		if need, err := u16(); err != nil || need > 0x1040 {
			return errLzo
		}
	}
	method, err := z.r.ReadByte()
	if err != nil || method < 1 || method > 3 { // LZO1X-1, LZO1X-1(15), LZO1X-999
		return errLzo
	}
	if version >= 0x0940 {
		if _, err := z.r.ReadByte(); err != nil { // level
			return errLzo
		}
	}
	if z.flags, err = u32(); err != nil || z.flags&(lzopFilter|lzopMultipart) != 0 {
		return errLzo
	}
	skip := 4 + 4 // mode, mtime low
	if version >= 0x0940 {
		skip += 4 // mtime high
	}
	if _, err := z.r.Discard(skip); err != nil {
		return errLzo
	}
	nameLen, err := z.r.ReadByte()
	if err != nil {
		return errLzo
	}
	if _, err := z.r.Discard(int(nameLen) + 4); err != nil { // name, header checksum
		return errLzo
	}
	if z.flags&lzopExtraField != 0 {
		n, err := u32()
		if err != nil || n > 1<<20 {
			return errLzo
		}
		if _, err := z.r.Discard(int(n) + 4); err != nil {
			return errLzo
		}
	}
	return nil
}

func (z *lzopReader) Read(p []byte) (int, error) {
	for len(z.out) == 0 {
		if z.err != nil {
			return 0, z.err
		}
		z.err = z.block()
	}
	n := copy(p, z.out)
	z.out = z.out[n:]
	return n, nil
}

func (z *lzopReader) block() error {
	var b [4]byte
	if _, err := io.ReadFull(z.r, b[:]); err != nil {
		return errLzo
	}
	dstLen := binary.BigEndian.Uint32(b[:])
	if dstLen == 0 {
		if _, err := z.r.ReadByte(); err != io.EOF {
			return errTrailing
		}
		return io.EOF
	}
	if dstLen > uint32(z.maxBlk) {
		return errWindow
	}
	if _, err := io.ReadFull(z.r, b[:]); err != nil {
		return errLzo
	}
	srcLen := binary.BigEndian.Uint32(b[:])
	if srcLen > dstLen || srcLen == 0 {
		return errLzo
	}
	sums := 0
	if z.flags&lzopAdler32D != 0 {
		sums += 4
	}
	if z.flags&lzopCRC32D != 0 {
		sums += 4
	}
	if srcLen < dstLen {
		if z.flags&lzopAdler32C != 0 {
			sums += 4
		}
		if z.flags&lzopCRC32C != 0 {
			sums += 4
		}
	}
	if _, err := z.r.Discard(sums); err != nil {
		return errLzo
	}
	if cap(z.src) < int(srcLen) {
		z.src = make([]byte, srcLen)
	}
	src := z.src[:srcLen]
	if _, err := io.ReadFull(z.r, src); err != nil {
		return errLzo
	}
	if srcLen == dstLen {
		z.out = src
		return nil
	}
	if cap(z.dst) < int(dstLen) {
		z.dst = make([]byte, 0, dstLen)
	}
	out, err := lzo1xDecode(z.dst[:0], src, int(dstLen))
	if err != nil {
		return err
	}
	if len(out) != int(dstLen) {
		return errLzo
	}
	z.out = out
	return nil
}

// lzo1xDecode decompresses one LZO1X block into dst (which it appends to,
// from empty), wanting at most limit bytes out and the whole of src used.
func lzo1xDecode(dst, src []byte, limit int) ([]byte, error) {
	ip := 0
	next := func() (int, bool) {
		if ip >= len(src) {
			return 0, false
		}
		ip++
		return int(src[ip-1]), true
	}
	// extLen reads a long length: zero bytes count 255 each, then a
	// non-zero byte.
	extLen := func(base int) (int, bool) {
		n := 0
		for {
			b, ok := next()
			if !ok {
				return 0, false
			}
			if b != 0 {
				return base + n + b, true
			}
			n += 255
			if n > limit {
				return 0, false
			}
		}
	}
	literals := func(n int) bool {
		if n > len(src)-ip || len(dst)+n > limit {
			return false
		}
		dst = append(dst, src[ip:ip+n]...)
		ip += n
		return true
	}
	match := func(dist, n int) bool {
		if dist <= 0 || dist > len(dst) || len(dst)+n > limit {
			return false
		}
		from := len(dst) - dist
		if dist >= n {
			dst = append(dst, dst[from:from+n]...)
		} else {
			for k := 0; k < n; k++ {
				dst = append(dst, dst[from+k])
			}
		}
		return true
	}

	state := 0 // literals the last instruction copied: 0, 1 to 3, or 4 for more
	if len(src) > 0 && src[0] > 17 {
		t := int(src[0]) - 17
		ip++
		if !literals(t) {
			return nil, errLzo
		}
		state = min(t, 4)
	}
	for {
		inst, ok := next()
		if !ok {
			return nil, errLzo
		}
		var dist, n, s int
		switch {
		case inst >= 64: // M2: 3 to 8 bytes within 2 KiB
			h, ok := next()
			if !ok {
				return nil, errLzo
			}
			n = 3 + (inst>>5)&1
			if inst >= 128 {
				n = 5 + (inst>>5)&3
			}
			dist = h<<3 + (inst>>2)&7 + 1
			s = inst & 3
		case inst >= 32: // M3: within 16 KiB
			n = inst & 31
			if n == 0 {
				if n, ok = extLen(31); !ok {
					return nil, errLzo
				}
			}
			n += 2
			lo, ok1 := next()
			hi, ok2 := next()
			if !ok1 || !ok2 {
				return nil, errLzo
			}
			dist = (lo>>2 | hi<<6) + 1
			s = lo & 3
		case inst >= 16: // M4: 16 to 48 KiB, or the end
			n = inst & 7
			if n == 0 {
				if n, ok = extLen(7); !ok {
					return nil, errLzo
				}
			}
			n += 2
			lo, ok1 := next()
			hi, ok2 := next()
			if !ok1 || !ok2 {
				return nil, errLzo
			}
			d := (inst&8)<<11 + (lo>>2 | hi<<6)
			if d == 0 {
				if ip != len(src) {
					return nil, errLzo
				}
				return dst, nil
			}
			dist = d + 0x4000
			s = lo & 3
		case state == 0: // a run of 4 or more literals
			n = inst & 15
			if n == 0 {
				if n, ok = extLen(15); !ok {
					return nil, errLzo
				}
			}
			if !literals(n + 3) {
				return nil, errLzo
			}
			state = 4
			continue
		default: // M1: 2 bytes within 1 KiB, or 3 bytes 2 to 3 KiB back after a literal run
			h, ok := next()
			if !ok {
				return nil, errLzo
			}
			dist = h<<2 + (inst>>2)&3 + 1
			n = 2
			if state == 4 {
				dist += 2048
				n = 3
			}
			s = inst & 3
		}
		if !match(dist, n) || !literals(s) {
			return nil, errLzo
		}
		state = s
	}
}
