package policy

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"

	"github.com/ulikunitz/xz/lzma"
)

// An lzip decoder (lzip 1.x members, as lzip and plzip write them at every
// level): each member is a 6-byte header, an LZMA stream with fixed
// properties (lc=3, lp=0, pb=2) ended by an end-of-stream marker, and a
// 20-byte trailer. The LZMA data is decoded by ulikunitz/xz/lzma (already
// the xz decoder) from a classic .lzma header made up here, with a
// dictionary of at most lim.Window: lzip -9 declares 32 MiB, lzip -s512MiB
// 512 MiB. The CRC32 is not checked; the sizes in the trailer are.

var (
	lzipMagic = []byte("LZIP")
	errLzip   = errors.New("lzip: malformed stream")
)

type lzipReader struct {
	r       *countReader
	maxDict int64
	member  *lzma.Reader
	short   bool
	size    uint64 // decoded in this member
	started bool
	err     error
}

func openLzip(r *bufio.Reader, lim Limits) (io.Reader, error) {
	return &lzipReader{r: &countReader{r: r}, maxDict: lim.Window}, nil
}

func (z *lzipReader) Read(p []byte) (int, error) {
	for z.err == nil {
		if z.member == nil {
			z.err = z.header()
			continue
		}
		n, err := z.member.Read(p)
		z.size += uint64(n)
		if err == io.EOF {
			if !z.member.EOSMarker() {
				z.err = errLzip
			} else {
				z.err = z.trailer()
			}
			z.member = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		if err != nil {
			if z.short && err.Error() == "writeMatch: distance out of range" {
				err = errWindow
			}
			z.err = err
		}
		return n, err
	}
	return 0, z.err
}

// lzmaInput gives the made-up .lzma header, then the member's LZMA data
// byte by byte from the buffered input, so nothing past the stream's end
// is taken.
type lzmaInput struct {
	hdr []byte
	r   *countReader
}

func (l *lzmaInput) Read(p []byte) (int, error) {
	if len(l.hdr) > 0 {
		n := copy(p, l.hdr)
		l.hdr = l.hdr[n:]
		return n, nil
	}
	if len(p) == 0 {
		return 0, nil
	}
	b, err := l.r.ReadByte()
	if err != nil {
		return 0, err
	}
	p[0] = b
	return 1, nil
}

func (l *lzmaInput) ReadByte() (byte, error) {
	if len(l.hdr) > 0 {
		b := l.hdr[0]
		l.hdr = l.hdr[1:]
		return b, nil
	}
	return l.r.ReadByte()
}

func (z *lzipReader) header() error {
	z.r.n = 0
	var h [6]byte
	n, err := io.ReadFull(z.r, h[:])
	if n == 0 && err == io.EOF && z.started {
		return io.EOF
	}
	if err != nil || string(h[:4]) != "LZIP" {
		if z.started {
			return errTrailing
		}
		return errLzip
	}
	z.started = true
	if h[4] != 1 {
		return errLzip
	}
	exp := uint(h[5] & 0x1F)
	if exp < 12 || exp > 29 {
		return errLzip
	}
	dict := int64(1) << exp
	dict -= (dict / 16) * int64(h[5]>>5)
	if dict < 4096 {
		return errLzip
	}
	z.short = dict > z.maxDict
	dict = max(min(dict, z.maxDict), lzma.MinDictCap)
	hdr := make([]byte, lzma.HeaderLen)
	hdr[0] = 0x5D // lc=3, lp=0, pb=2
	binary.LittleEndian.PutUint32(hdr[1:], uint32(dict))
	binary.LittleEndian.PutUint64(hdr[5:], ^uint64(0)) // size unknown: ends with the marker
	m, err := lzma.ReaderConfig{DictCap: int(dict)}.NewReader(&lzmaInput{hdr: hdr, r: z.r})
	if err != nil {
		return errLzip
	}
	z.member = m
	z.size = 0
	return nil
}

func (z *lzipReader) trailer() error {
	var t [20]byte
	if _, err := io.ReadFull(z.r, t[:]); err != nil {
		return errLzip
	}
	if binary.LittleEndian.Uint64(t[4:12]) != z.size || binary.LittleEndian.Uint64(t[12:20]) != uint64(z.r.n) {
		return errLzip
	}
	return nil
}
