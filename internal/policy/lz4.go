package policy

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
)

// An LZ4 frame decoder (lz4 frame format 1.6.x, as the lz4 tool writes it
// at every level: -1 to -12 differ in the encoder only). Checksums are not
// verified: the bytes are hashed and signed as they are, this only decides
// what they look like. Concatenated frames and skippable frames are read
// as lz4 -d reads them; the legacy format (lz4 -l) is not a makepkg format.

var (
	lz4Magic = []byte{0x04, 0x22, 0x4D, 0x18}
	errLZ4   = errors.New("lz4: malformed stream")
)

const lz4MaxHistory = 64 << 10 // an LZ4 offset is 16 bits

type lz4Reader struct {
	r        *bufio.Reader
	started  bool // the first frame's magic was checked
	inFrame  bool
	indep    bool // blocks are independent
	blockSum bool
	contSum  bool
	maxBlock int
	hist     []byte // the last output, up to lz4MaxHistory, then the block
	out      []byte // not yet returned
	src      []byte
	err      error
}

func openLZ4(r *bufio.Reader, _ Limits) (io.Reader, error) {
	return &lz4Reader{r: r}, nil
}

func (z *lz4Reader) Read(p []byte) (int, error) {
	for len(z.out) == 0 {
		if z.err != nil {
			return 0, z.err
		}
		z.err = z.next()
	}
	n := copy(p, z.out)
	z.out = z.out[n:]
	return n, nil
}

// next decodes one block, or reads a frame header or end.
func (z *lz4Reader) next() error {
	if !z.inFrame {
		return z.frameHeader()
	}
	var b [4]byte
	if _, err := io.ReadFull(z.r, b[:]); err != nil {
		return errLZ4
	}
	size := binary.LittleEndian.Uint32(b[:])
	if size == 0 { // EndMark
		if z.contSum {
			if _, err := z.r.Discard(4); err != nil {
				return errLZ4
			}
		}
		z.inFrame = false
		return nil
	}
	stored := size&0x80000000 != 0
	size &= 0x7FFFFFFF
	if int(size) > z.maxBlock {
		return errLZ4
	}
	if cap(z.src) < int(size) {
		z.src = make([]byte, size)
	}
	src := z.src[:size]
	if _, err := io.ReadFull(z.r, src); err != nil {
		return errLZ4
	}
	if z.blockSum {
		if _, err := z.r.Discard(4); err != nil {
			return errLZ4
		}
	}
	// Keep at most 64 KiB of history for linked blocks.
	if z.indep {
		z.hist = z.hist[:0]
	} else if len(z.hist) > lz4MaxHistory {
		z.hist = append(z.hist[:0], z.hist[len(z.hist)-lz4MaxHistory:]...)
	}
	if cap(z.hist) < lz4MaxHistory+z.maxBlock {
		z.hist = append(make([]byte, 0, lz4MaxHistory+z.maxBlock), z.hist...)
	}
	start := len(z.hist)
	var err error
	if stored {
		z.hist = append(z.hist, src...)
	} else if z.hist, err = lz4Block(z.hist, src, start+z.maxBlock); err != nil {
		return err
	}
	z.out = z.hist[start:]
	return nil
}

func (z *lz4Reader) frameHeader() error {
	var m [4]byte
	n, err := io.ReadFull(z.r, m[:])
	if n == 0 && err == io.EOF && z.started {
		return io.EOF
	}
	if err != nil {
		return errLZ4
	}
	magic := binary.LittleEndian.Uint32(m[:])
	if magic&0xFFFFFFF0 == 0x184D2A50 { // a skippable frame
		var l [4]byte
		if _, err := io.ReadFull(z.r, l[:]); err != nil {
			return errLZ4
		}
		if _, err := z.r.Discard(int(binary.LittleEndian.Uint32(l[:]))); err != nil {
			return errLZ4
		}
		z.started = true
		return nil
	}
	if magic != 0x184D2204 {
		if z.started {
			return errTrailing
		}
		return errLZ4
	}
	z.started = true
	var d [2]byte
	if _, err := io.ReadFull(z.r, d[:]); err != nil {
		return errLZ4
	}
	flg, bd := d[0], d[1]
	if flg>>6 != 1 || flg&0x02 != 0 || bd&0x8F != 0 {
		return errLZ4
	}
	if flg&0x01 != 0 { // a dictionary ID: needs a dictionary we do not have
		return errLZ4
	}
	bs := int(bd>>4) & 7
	if bs < 4 {
		return errLZ4
	}
	z.maxBlock = 1 << (8 + 2*bs) // 64 KiB, 256 KiB, 1 MiB, 4 MiB
	z.indep = flg&0x20 != 0
	z.blockSum = flg&0x10 != 0
	z.contSum = flg&0x04 != 0
	skip := 1 // the header checksum
	if flg&0x08 != 0 {
		skip += 8 // content size
	}
	if _, err := z.r.Discard(skip); err != nil {
		return errLZ4
	}
	z.hist = z.hist[:0]
	z.inFrame = true
	return nil
}

// lz4Block decodes one LZ4 block after dst (the history) and returns dst
// with the block appended; the block may not make dst longer than limit.
func lz4Block(dst, src []byte, limit int) ([]byte, error) {
	i := 0
	length := func(l int) (int, bool) {
		if l != 15 {
			return l, true
		}
		for i < len(src) {
			b := src[i]
			i++
			l += int(b)
			if l > limit {
				return 0, false
			}
			if b != 255 {
				return l, true
			}
		}
		return 0, false
	}
	for {
		if i >= len(src) {
			return nil, errLZ4
		}
		token := src[i]
		i++
		lit, ok := length(int(token >> 4))
		if !ok || lit > len(src)-i || len(dst)+lit > limit {
			return nil, errLZ4
		}
		dst = append(dst, src[i:i+lit]...)
		i += lit
		if i == len(src) {
			return dst, nil // the last sequence has literals only
		}
		if len(src)-i < 2 {
			return nil, errLZ4
		}
		off := int(src[i]) | int(src[i+1])<<8
		i += 2
		ml, ok := length(int(token & 15))
		if !ok {
			return nil, errLZ4
		}
		ml += 4
		if off == 0 || off > len(dst) || len(dst)+ml > limit {
			return nil, errLZ4
		}
		from := len(dst) - off
		if off >= ml {
			dst = append(dst, dst[from:from+ml]...)
		} else {
			for k := 0; k < ml; k++ {
				dst = append(dst, dst[from+k])
			}
		}
	}
}
