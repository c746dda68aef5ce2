package policy

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/signstar/signstar/third_party/zstd"
)

// format is a compression that makepkg's PKGEXT or repo-add may use.
type format struct {
	name  string // as makepkg names it: "zstd", "xz", ...
	magic []byte
	// open wraps the compressed stream in a decoder whose Read returns
	// io.EOF only at the end of the input, after complete streams.
	open func(r *bufio.Reader, lim Limits) (io.Reader, error)
	// unsupported, for a format with no decoder, is the note that says so.
	unsupported string
}

// formats are the compressions pacman 6 reads, by magic. Every decoder is
// strict about the end: a stream (or a run of concatenated streams, as
// pigz, pbzip2, pzstd or plzip write them) must end where the input does.
var formats = []*format{
	{name: "gzip", magic: []byte{0x1F, 0x8B, 0x08}, open: openGzip},
	{name: "zstd", magic: []byte{0x28, 0xB5, 0x2F, 0xFD}, open: openZstd},
	{name: "xz", magic: xzMagic, open: openXZ},
	{name: "bzip2", magic: []byte("BZh"), open: openBzip2},
	{name: "lz4", magic: lz4Magic, open: openLZ4},
	{name: "lzip", magic: lzipMagic, open: openLzip},
	{name: "lzop", magic: lzopMagic, open: openLzop},
	{name: "compress", magic: []byte{0x1F, 0x9D}, open: openCompress},
	{name: "lrzip", magic: []byte("LRZI"), unsupported: "lrzip-compressed (.lrz), which signstar cannot check: " +
		"lrzip's long-range pass refers back across the whole file, so it cannot be decoded in bounded memory; " +
		"build with another PKGEXT (e.g. PKGEXT='.pkg.tar.zst')"},
}

// formatOf returns the format whose magic head begins with, or nil.
func formatOf(head []byte) *format {
	for _, f := range formats {
		if bytes.HasPrefix(head, f.magic) {
			return f
		}
	}
	// A zstd skippable frame (magic 0x184D2A50 to 0x184D2A5F) first, as
	// pzstd writes.
	if len(head) >= 4 && head[0]&0xF0 == 0x50 && bytes.Equal(head[1:4], []byte{0x2A, 0x4D, 0x18}) {
		return formats[1]
	}
	return nil
}

// noteFor turns a decoding error into a note for the refusal when it says
// something the operator can act on.
func (f *format) noteFor(err error, lim Limits) string {
	switch {
	case errors.Is(err, errWindow), errors.Is(err, zstd.ErrWindowSize):
		return fmt.Sprintf("%s data that needs more than the %d MiB of window signstar holds; "+
			"compress with a smaller window (zstd -20 or --long=26 at most, any xz preset)", f.name, lim.Window>>20)
	case errors.Is(err, errTooMuch):
		return fmt.Sprintf("%s data that decompresses to more than signstar inspects (%d MiB plus %d times the compressed size)",
			f.name, lim.Decompressed>>20, lim.Ratio)
	case errors.Is(err, errNotZero):
		return "data after the end of the tar archive"
	case errors.Is(err, errTrailing):
		return fmt.Sprintf("data after the end of the %s stream", f.name)
	}
	return ""
}

var errTrailing = errors.New("policy: data after the end of the compressed stream")

// openGzip reads gzip members (pigz writes several) to the end of the
// input; after the first, bytes that are not a whole member are trailing
// data.
func openGzip(r *bufio.Reader, _ Limits) (io.Reader, error) {
	z, err := gzip.NewReader(r)
	if err != nil {
		return nil, err
	}
	z.Multistream(false)
	return &gzipMembers{z: z, r: r}, nil
}

type gzipMembers struct {
	z   *gzip.Reader
	r   *bufio.Reader
	err error
}

func (g *gzipMembers) Read(p []byte) (int, error) {
	for g.err == nil {
		n, err := g.z.Read(p)
		if err != io.EOF {
			return n, err
		}
		// The member's end: another member, or the end of the input.
		if _, perr := g.r.Peek(1); perr == io.EOF {
			g.err = io.EOF
		} else if rerr := g.z.Reset(g.r); rerr != nil {
			g.err = errTrailing
		} else {
			g.z.Multistream(false)
		}
		if n > 0 {
			return n, nil
		}
	}
	return 0, g.err
}

// openBzip2 reads bzip2 streams (pbzip2 writes several) with Go's own
// decoder; after the first, bytes that are not a stream are trailing data.
func openBzip2(r *bufio.Reader, _ Limits) (io.Reader, error) {
	return &trailing{r: bzip2.NewReader(r), is: func(err error) bool {
		var se bzip2.StructuralError
		return errors.As(err, &se) && se == "bad magic value in continuation file"
	}}, nil
}

// trailing turns a decoder's error for bytes after its last stream into
// errTrailing.
type trailing struct {
	r  io.Reader
	is func(error) bool
}

func (t *trailing) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF && t.is(err) {
		err = errTrailing
	}
	return n, err
}

// openZstd decodes with Go's own decoder (third_party/zstd), which has no
// package init to pay for in every signing process. A frame may declare
// any window; at most lim.Window of it is held.
func openZstd(r *bufio.Reader, lim Limits) (io.Reader, error) {
	return zstd.NewReaderHeld(r, int(min(lim.Window, math.MaxInt))), nil
}

func openXZ(r *bufio.Reader, lim Limits) (io.Reader, error) {
	return newXZReader(r, lim.Window)
}
