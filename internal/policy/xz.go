package policy

import (
	"bufio"
	"bytes"
	"errors"
	"hash/crc32"
	"io"

	"github.com/ulikunitz/xz/lzma"
)

// xzReader decodes an .xz stream (one stream of LZMA2-only blocks, as xz and
// bsdtar write for packages and databases). It parses the container itself
// instead of using xz.Reader because xz.Reader allocates whatever dictionary
// a block header asks for, up to 1.5 GiB from a 30-byte input; here a block
// is given at most maxDict of dictionary whatever it declares (xz -9 declares
// 64 MiB for a package of 1 KiB), and a match farther back fails with
// errWindow. The dictionary's pages are touched as data is decoded into it,
// so the memory held grows with min(declared, decoded so far, maxDict).
//
// Checks (CRC64, SHA-256) are skipped: the bytes are hashed and signed as
// they are, this only decides what they look like.
type xzReader struct {
	r       *countReader
	maxDict int64
	check   int // size of each block's check field
	block   io.Reader
	short   bool // the block declares more dictionary than it was given
	err     error
}

type countReader struct {
	r *bufio.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

var (
	xzMagic = []byte{0xFD, '7', 'z', 'X', 'Z', 0x00}
	errXZ   = errors.New("xz: malformed stream")
)

// checkSizes maps the stream's check type to the size of the check field.
var checkSizes = [16]int{0, 4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64}

func newXZReader(r *bufio.Reader, maxDict int64) (*xzReader, error) {
	x := &xzReader{r: &countReader{r: r}, maxDict: maxDict}
	var hdr [12]byte
	if _, err := io.ReadFull(x.r, hdr[:]); err != nil {
		return nil, errXZ
	}
	if !bytes.Equal(hdr[:6], xzMagic) || hdr[6] != 0 || hdr[7] > 0x0F ||
		crc32.ChecksumIEEE(hdr[6:8]) != le32(hdr[8:12]) {
		return nil, errXZ
	}
	x.check = checkSizes[hdr[7]]
	return x, nil
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func (x *xzReader) Read(p []byte) (int, error) {
	for x.err == nil {
		if x.block == nil {
			x.err = x.nextBlock()
			continue
		}
		n, err := x.block.Read(p)
		if err == io.EOF {
			x.block = nil
			if err := x.endBlock(); err != nil {
				x.err = err
			}
			if n > 0 {
				return n, nil
			}
			continue
		}
		if err != nil {
			if x.short && err.Error() == "writeMatch: distance out of range" {
				err = errWindow
			}
			x.err = err
		}
		return n, err
	}
	return 0, x.err
}

// nextBlock reads a block header and sets up its LZMA2 decoder, or reads
// the index and footer and reports io.EOF.
func (x *xzReader) nextBlock() error {
	x.r.n = 0
	size, err := x.r.ReadByte()
	if err != nil {
		return errXZ
	}
	if size == 0 {
		return x.index()
	}
	hdr := make([]byte, int(size)*4+4)
	hdr[0] = size
	if _, err := io.ReadFull(x.r, hdr[1:]); err != nil {
		return errXZ
	}
	body, sum := hdr[:len(hdr)-4], hdr[len(hdr)-4:]
	if crc32.ChecksumIEEE(body) != le32(sum) {
		return errXZ
	}
	flags := body[1]
	if flags&0x3C != 0 || flags&0x03 != 0 {
		// Reserved bits, or more than one filter (BCJ and delta filters
		// have no use in a tar of a package).
		return errXZ
	}
	rest := body[2:]
	for _, present := range []bool{flags&0x40 != 0, flags&0x80 != 0} {
		if present {
			if _, rest, err = uvarint(rest); err != nil {
				return err
			}
		}
	}
	id, rest, err := uvarint(rest)
	if err != nil || id != 0x21 {
		return errXZ
	}
	n, rest, err := uvarint(rest)
	if err != nil || n != 1 || len(rest) < 1 {
		return errXZ
	}
	dict, err := lzma.DecodeDictCap(rest[0])
	if err != nil {
		return errXZ
	}
	for _, b := range rest[1:] {
		if b != 0 {
			return errXZ
		}
	}
	x.short = dict > x.maxDict
	dict = max(min(dict, x.maxDict), lzma.MinDictCap)
	lr, err := lzma.Reader2Config{DictCap: int(dict)}.NewReader2(x.r)
	if err != nil {
		return errXZ
	}
	x.block = lr
	return nil
}

// endBlock skips the padding to four bytes and the check after a block.
func (x *xzReader) endBlock() error {
	pad := int((4 - x.r.n%4) % 4)
	for i := 0; i < pad; i++ {
		if b, err := x.r.ReadByte(); err != nil || b != 0 {
			return errXZ
		}
	}
	if _, err := x.r.r.Discard(x.check); err != nil {
		return errXZ
	}
	return nil
}

// index reads the index (its indicator byte already read) and the stream
// footer, and wants the input to end there: bytes after the stream are not
// part of a package or database.
func (x *xzReader) index() error {
	var rd = func() (uint64, error) {
		v, err := readUvarint(x.r)
		if err != nil {
			return 0, errXZ
		}
		return v, nil
	}
	count, err := rd()
	if err != nil {
		return err
	}
	for i := uint64(0); i < count; i++ {
		if _, err := rd(); err != nil {
			return err
		}
		if _, err := rd(); err != nil {
			return err
		}
	}
	pad := int((4 - x.r.n%4) % 4)
	for i := 0; i < pad; i++ {
		if b, err := x.r.ReadByte(); err != nil || b != 0 {
			return errXZ
		}
	}
	var tail [4 + 12]byte // index CRC32, then the footer
	if _, err := io.ReadFull(x.r, tail[:]); err != nil {
		return errXZ
	}
	if tail[14] != 'Y' || tail[15] != 'Z' {
		return errXZ
	}
	if _, err := x.r.ReadByte(); err != io.EOF {
		return errTrailing
	}
	return io.EOF
}

func uvarint(b []byte) (uint64, []byte, error) {
	var v uint64
	for i := 0; i < 9 && i < len(b); i++ {
		v |= uint64(b[i]&0x7F) << (7 * i)
		if b[i]&0x80 == 0 {
			if i > 0 && b[i] == 0 {
				return 0, nil, errXZ
			}
			return v, b[i+1:], nil
		}
	}
	return 0, nil, errXZ
}

func readUvarint(r io.ByteReader) (uint64, error) {
	var v uint64
	for i := 0; i < 9; i++ {
		b, err := r.ReadByte()
		if err != nil {
			return 0, errXZ
		}
		v |= uint64(b&0x7F) << (7 * i)
		if b&0x80 == 0 {
			if i > 0 && b == 0 {
				return 0, errXZ
			}
			return v, nil
		}
	}
	return 0, errXZ
}
