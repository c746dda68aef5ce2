package policy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// Limits bound the work and memory of detection on hostile input.
type Limits struct {
	// Decompressed and Ratio cap the bytes decompressed for one artifact:
	// at most Decompressed plus Ratio times the compressed bytes seen. A
	// stream that goes on longer (a compression bomb) is of no known kind.
	Decompressed int64
	Ratio        int64
	// Window caps the window (zstd) or dictionary (xz, lzip) a decoder
	// holds. Declared windows may be larger: a decoder keeps at most
	// min(declared, decoded so far, Window) bytes, and a back-reference
	// farther back than Window fails.
	Window int64
}

// DefaultLimits: 1 GiB of tar, several times Arch's largest .files
// database, plus 32 times the compressed size, so a 2 GiB package at a
// real ratio passes and a bomb stops. 64 MiB of window holds every xz
// preset (-9 and -9e declare 64 MiB) and zstd up to --ultra -21 whatever
// the size; larger zstd windows (-22, --long=27 and up: 128 MiB and more)
// work as long as no match reaches farther back than 64 MiB, which holds
// for every package that decompresses to at most 64 MiB.
var DefaultLimits = Limits{Decompressed: 1 << 30, Ratio: 32, Window: 64 << 20}

// MemoryLimit is the soft memory limit (runtime/debug.SetMemoryLimit) for
// a process that detects with DefaultLimits: the largest window held, plus
// 16 MiB for everything else. Below it the garbage collector keeps its
// usual pace; only a walk that holds a large window reaches it.
const MemoryLimit = 80 << 20

// headLen is what the detector looks at before it starts the walk: a tar
// header block, which holds every compression magic too.
const headLen = 512

// Detector finds the kind of an artifact from its bytes as they stream past,
// without buffering it and without a second pass. Give every chunk to
// Observe, in order (it fits signer.Read's observe argument), then call Kind
// once the input has ended. Close releases the walking goroutine; it is safe
// to call at any time and more than once, and must be called when the input
// is abandoned before Kind.
//
// The kind is decided on the whole artifact (README, "Kinds"): a package or
// database is a complete tar, compressed or not, with nothing after its end;
// an ISO 9660 image is a valid primary volume descriptor at byte 32768 whose
// volume fits the input. Bytes that are both, or an image whose first block
// opens as an archive, are of no known kind.
//
// A Detector is for one goroutine: Observe, Kind and Close must not run
// concurrently.
type Detector struct {
	lim  Limits
	n    int64
	head [headLen]byte
	pvd  [pvdSize]byte

	p       *pipe
	result  chan walkResult
	started bool
	opens   bool // the head opens as an archive: a tar header or a compression magic
	kind    string
	note    string
	ended   bool
}

type walkResult struct {
	kind string
	note string
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
	if end := d.n; end > pvdOffset && off < pvdOffset+pvdSize {
		lo := max(off, pvdOffset)
		hi := min(end, pvdOffset+pvdSize)
		copy(d.pvd[lo-pvdOffset:hi-pvdOffset], p[lo-off:hi-off])
	}
	if d.started {
		if d.p != nil {
			d.p.write(p)
		}
		return
	}
	if off < headLen {
		copy(d.head[off:], p)
	}
	if d.n < headLen {
		return
	}
	if d.start() {
		d.p.write(d.head[:])
		d.p.write(p[headLen-off:])
	}
}

// Write is Observe as an io.Writer; it never fails.
func (d *Detector) Write(p []byte) (int, error) {
	d.Observe(p)
	return len(p), nil
}

// Kind is the artifact's kind, once the whole input has been observed:
// KindPackage, KindDB, KindISO or KindUnknown. It waits for the walking
// goroutine, whose work is bounded by the Limits.
func (d *Detector) Kind() string {
	if d.ended {
		return d.kind
	}
	if !d.started && d.start() {
		d.p.write(d.head[:min(d.n, headLen)])
	}
	d.ended = true
	var res walkResult
	if d.p != nil {
		d.p.closeWrite()
		res = <-d.result
	}
	vol, okPVD := parsePVD(d.pvd[:])
	iso := okPVD && vol <= d.n && d.n >= pvdOffset+pvdSize
	switch {
	case iso && res.kind != KindUnknown:
		d.kind, d.note = KindUnknown, fmt.Sprintf("both a %s and an ISO 9660 image", res.kind)
	case iso && d.opens:
		d.kind, d.note = KindUnknown, "an ISO 9660 image whose first bytes open as an archive"
		if res.note != "" {
			d.note += " (" + res.note + ")"
		}
	case iso:
		d.kind = KindISO
	default:
		d.kind, d.note = res.kind, res.note
	}
	return d.kind
}

// Note says, for some artifacts of no known kind, why: a format signstar
// cannot decode, a window beyond its limit, bytes that are two kinds at
// once. It is "" otherwise, and before Kind.
func (d *Detector) Note() string { return d.note }

// Close stops detection; a later Kind is KindUnknown.
func (d *Detector) Close() {
	if d.ended {
		return
	}
	d.ended = true
	d.kind = KindUnknown
	if d.p != nil {
		d.p.stop()
		d.p.closeWrite()
		<-d.result
	}
}

// start runs the decompression and the tar walk in a goroutine fed by the
// pipe, so the hash pass only pays for a copy of each chunk, and nothing at
// all once the answer is known. It reports whether it did: data that is
// neither compressed nor begins with a tar block (a header or the zeros of
// an empty archive, or of an ISO's system area) is no archive, and needs no
// goroutine (whose thread a 1 KiB request would pay for).
func (d *Detector) start() bool {
	d.started = true
	head := d.head[:min(d.n, headLen)]
	f := formatOf(head)
	d.opens = f != nil || tarHeaderLike(head)
	if !d.opens && !allZero(head) {
		return false
	}
	d.p = newPipe()
	d.result = make(chan walkResult, 1)
	go func() {
		res := walk(d.p, f, d.lim)
		d.p.finish()
		d.result <- res
	}()
	return true
}

// walk decompresses (for a compressed format) and walks the tar to the end
// of the input.
func walk(in io.Reader, f *format, lim Limits) walkResult {
	if f == nil {
		kind, _ := sniffTarErr(in)
		return walkResult{kind: kind}
	}
	if f.open == nil {
		return walkResult{note: f.unsupported}
	}
	cin := &countingReader{r: in}
	br := bufio.NewReaderSize(cin, 64<<10)
	z, err := f.open(br, lim)
	if err != nil {
		return walkResult{note: f.noteFor(err, lim)}
	}
	kind, err := sniffTarErr(&capReader{r: z, in: cin, lim: lim})
	if err != nil {
		return walkResult{note: f.noteFor(err, lim)}
	}
	return walkResult{kind: kind}
}

var (
	errTooMuch = errors.New("policy: decompressed data passed the detection limit")
	errWindow  = errors.New("policy: window larger than the detector holds")
)

// countingReader counts the compressed bytes the decoder has taken.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// capReader fails once more than lim.Decompressed + lim.Ratio times the
// compressed bytes taken so far have come through.
type capReader struct {
	r    io.Reader
	in   *countingReader
	lim  Limits
	done int64
}

func (c *capReader) Read(p []byte) (int, error) {
	left := c.lim.Decompressed + c.lim.Ratio*c.in.n - c.done
	if left <= 0 {
		// Exactly at the limit is fine if the stream ends there.
		var one [1]byte
		n, err := io.ReadFull(c.r, one[:])
		if n == 0 && (err == io.EOF || err == io.ErrUnexpectedEOF) {
			return 0, io.EOF
		}
		if err != nil {
			return 0, err
		}
		if c.lim.Decompressed+c.lim.Ratio*c.in.n-c.done <= 0 {
			return 0, errTooMuch
		}
		c.done++
		p[0] = one[0]
		return 1, nil
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	n, err := c.r.Read(p)
	c.done += int64(n)
	return n, err
}
