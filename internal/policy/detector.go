package policy

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"math"

	"github.com/signstar/signstar/internal/zstd"
)

// Limits bound the work and memory of detection on hostile input.
type Limits struct {
	// Decompressed caps the bytes decompressed for one artifact. A
	// compressed tar that goes on longer (a zip bomb, or a database larger
	// than any real one) is of no known kind.
	Decompressed int64
	// Window caps the zstd window and the xz dictionary, the memory a
	// decoder holds.
	Window int64
}

// DefaultLimits: 1 GiB of tar is several times Arch's largest .files
// database; 32 MiB is the window of zstd --ultra -20, as Arch has built
// packages with, and the dictionary of xz -8.
var DefaultLimits = Limits{Decompressed: 1 << 30, Window: 32 << 20}

const headLen = 6 // enough for the xz magic, the longest

type detState int

const (
	stHead  detState = iota // reading the first headLen bytes
	stISO                   // not compressed: capturing the volume descriptor
	stCount                 // answer depends only on the size now
	stTar                   // compressed: feeding the goroutine
)

// Detector finds the kind of an artifact from its bytes as they stream past,
// without buffering it and without a second pass. Give every chunk to
// Observe, in order (it fits signer.Read's observe argument), then call Kind
// once the input has ended. Close releases the decompressing goroutine; it
// is safe to call at any time and more than once, and must be called when
// the input is abandoned before Kind.
//
// A Detector is for one goroutine: Observe, Kind and Close must not run
// concurrently.
type Detector struct {
	lim   Limits
	state detState
	n     int64
	head  [headLen]byte
	pvd   [pvdSize]byte

	p      *pipe
	result chan string
	kind   string
	ended  bool
}

// NewDetector returns a Detector with DefaultLimits.
func NewDetector() *Detector { return NewDetectorLimits(DefaultLimits) }

// NewDetectorLimits returns a Detector with the given limits.
func NewDetectorLimits(lim Limits) *Detector { return &Detector{lim: lim} }

// Observe takes the next chunk of the artifact. It does not keep p.
func (d *Detector) Observe(p []byte) {
	if d.ended {
		return
	}
	off := d.n
	d.n += int64(len(p))
	switch d.state {
	case stHead:
		if off < headLen {
			copy(d.head[off:], p)
		}
		if d.n < headLen {
			return
		}
		if dec := compression(d.head[:]); dec != nil {
			d.state = stTar
			d.start(dec)
			d.p.write(d.head[:])
			d.p.write(p[headLen-off:])
			return
		}
		d.state = stISO
		fallthrough
	case stISO:
		if end := off + int64(len(p)); end > pvdOffset && off < pvdOffset+pvdSize {
			lo := max(off, pvdOffset)
			hi := min(end, pvdOffset+pvdSize)
			copy(d.pvd[lo-pvdOffset:hi-pvdOffset], p[lo-off:hi-off])
		}
		if d.n >= pvdOffset+pvdSize {
			d.state = stCount
		}
	case stTar:
		d.p.write(p)
	}
}

// Write is Observe as an io.Writer; it never fails.
func (d *Detector) Write(p []byte) (int, error) {
	d.Observe(p)
	return len(p), nil
}

// Kind is the artifact's kind, once the whole input has been observed:
// KindPackage, KindDB, KindISO or KindUnknown. It waits for the
// decompressing goroutine, whose work is bounded by the Limits.
func (d *Detector) Kind() string {
	if d.ended {
		return d.kind
	}
	d.ended = true
	switch d.state {
	case stTar:
		d.p.closeWrite()
		d.kind = <-d.result
	case stCount:
		if vol, ok := parsePVD(d.pvd[:]); ok && vol <= d.n {
			d.kind = KindISO
		}
	}
	return d.kind
}

// Close stops detection; a later Kind is KindUnknown.
func (d *Detector) Close() {
	if d.ended {
		return
	}
	d.ended = true
	d.kind = KindUnknown
	if d.state == stTar {
		d.p.stop()
		d.p.closeWrite()
		<-d.result
	}
}

type decoder func(r *bufio.Reader, lim Limits) (io.Reader, func(), error)

// compression picks the decoder for the magic at the start of head.
func compression(head []byte) decoder {
	switch {
	case bytes.HasPrefix(head, []byte{0x1F, 0x8B, 0x08}):
		return openGzip
	case bytes.HasPrefix(head, []byte{0x28, 0xB5, 0x2F, 0xFD}):
		return openZstd
	case bytes.HasPrefix(head, xzMagic):
		return openXZ
	}
	return nil
}

func openGzip(r *bufio.Reader, _ Limits) (io.Reader, func(), error) {
	z, err := gzip.NewReader(r)
	if err != nil {
		return nil, nil, err
	}
	return z, func() { z.Close() }, nil
}

// openZstd decodes with Go's own decoder (internal/zstd), which has no
// package init to pay for in every signing process. A frame whose window
// passes lim.Window fails on the first Read.
func openZstd(r *bufio.Reader, lim Limits) (io.Reader, func(), error) {
	return zstd.NewReaderWindow(r, int(min(lim.Window, math.MaxInt))), func() {}, nil
}

func openXZ(r *bufio.Reader, lim Limits) (io.Reader, func(), error) {
	x, err := newXZReader(r, lim.Window)
	if err != nil {
		return nil, nil, err
	}
	return x, func() {}, nil
}

// start runs the decompression and the tar walk in a goroutine fed by the
// pipe, so the hash pass only pays for a copy of each chunk, and nothing at
// all once the answer is known.
func (d *Detector) start(dec decoder) {
	d.p = newPipe()
	d.result = make(chan string, 1)
	go func() {
		kind := sniffCompressed(d.p, dec, d.lim)
		d.p.finish()
		d.result <- kind
	}()
}

func sniffCompressed(r io.Reader, dec decoder, lim Limits) string {
	z, closeFn, err := dec(bufio.NewReaderSize(r, 64<<10), lim)
	if err != nil {
		return KindUnknown
	}
	defer closeFn()
	return sniffTar(&capReader{r: z, left: lim.Decompressed})
}

var errTooMuch = errors.New("policy: decompressed data passed the detection limit")

// capReader fails once more than left bytes have come through.
type capReader struct {
	r    io.Reader
	left int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		// Exactly at the limit is fine if the stream ends there.
		var one [1]byte
		n, err := io.ReadFull(c.r, one[:])
		if n == 0 && (err == io.EOF || err == io.ErrUnexpectedEOF) {
			return 0, io.EOF
		}
		if err != nil {
			return 0, err
		}
		return 0, errTooMuch
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}
