package zstd

import (
	"bytes"
	"errors"
	"io"
	"os/exec"
	"runtime/metrics"
	"strings"
	"testing"

	kzstd "github.com/klauspost/compress/zstd"

	"github.com/signstar/signstar/internal/testsupport/testenv"
)

const (
	// fuzzWindow is the window limit in FuzzDecode, small so that what
	// the decoder allocates beyond it shows.
	fuzzWindow = 1 << 20
	// fuzzSlack is what one Read may allocate besides a window buffer: the
	// decompressed block (at most 128 KiB before each sequence, so under
	// 400 KiB, in a slice grown by append), the compressed block and the
	// literals (128 KiB each) and the FSE and Huffman tables.
	fuzzSlack = 1536 << 10
	// fuzzOutput bounds the output compared, against zstd bombs.
	fuzzOutput = 16 << 20
)

// badStrings are inputs Go's own FuzzReader failed on once (Go's
// src/internal/zstd/fuzz_test.go).
var badStrings = []string{
	"(\xb5/\xfdd00,\x05\x00\xc4\x0400000000000000000000000000000000000000000000000000000000000000000000000000000 \xa07100000000000000000000000000000000000000000000000000000000000000000000000000aM\x8a2y0B\b",
	"(\xb5/\xfd00$\x05\x0020 00X70000a70000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
	"(\xb5/\xfd00}\x00\x0020\x00\x9000000000000",
	"(\xb5/\xfd00}\x00\x00&0\x02\x830!000000000",
	"(\xb5/\xfd\x1002000$\x05\x0010\xcc0\xa8100000000100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
	"(\xb5/\xfd001\x00\x0000000000000000000",
	"(\xb5/\xfd00\xec\x00\x00&@\x05\x05A7002\x02\x00\x02\x00\x02\x0000000000000000",
	"\x50\x2a\x4d\x18\x02\x00\x00\x00",
	"(\xb5/\xfd\xe40000000\xfa20\x000",
}

// fuzzSeeds are real frames: from the zstd program when there is one (in
// CI there must be), and from klauspost's encoder, with windows on both
// sides of fuzzWindow, single-segment, without checksums, concatenated and
// with skippable frames.
func fuzzSeeds(f *testing.F) [][]byte {
	f.Helper()
	small := text(7, 3000)
	mixed := append(text(8, 40<<10), random(8, 8<<10)...)
	mixed = append(mixed, mixed[:20<<10]...)
	long := append(random(9, 600<<10), text(9, 300<<10)...) // repeats from far back:
	long = append(long, long[:700<<10]...)                  // 1.6 MiB
	var seeds [][]byte
	if _, err := exec.LookPath("zstd"); err == nil {
		for _, in := range [][]byte{nil, small, mixed} {
			for _, args := range [][]string{{"-1"}, {"-19", "--no-check"}, {"--long=20"}, {"--long=21"}} {
				seeds = append(seeds, cli(f, in, false, args...))
			}
			seeds = append(seeds, cli(f, in, true, "-3"))
		}
		seeds = append(seeds, cli(f, long, false, "-1", "--long=20"))
	} else if testenv.InCI() {
		f.Fatal("zstd not found: apt-get install zstd")
	}
	for _, o := range [][]kzstd.EOption{
		{kzstd.WithEncoderLevel(kzstd.SpeedFastest)},
		{kzstd.WithEncoderLevel(kzstd.SpeedBestCompression), kzstd.WithWindowSize(1 << 20)},
		{kzstd.WithWindowSize(2 << 20), kzstd.WithEncoderCRC(false)},
		{kzstd.WithSingleSegment(true), kzstd.WithEncoderLevel(kzstd.SpeedBetterCompression)},
		{kzstd.WithEncoderLevel(kzstd.SpeedDefault), kzstd.WithLowerEncoderMem(true), kzstd.WithWindowSize(64 << 10)},
	} {
		for _, in := range [][]byte{small, mixed} {
			seeds = append(seeds, klauspostEncode(f, in, o...))
		}
	}
	seeds = append(seeds, klauspostEncode(f, long, kzstd.WithWindowSize(1<<20)))
	n := len(seeds)
	seeds = append(seeds,
		bytes.Join([][]byte{seeds[0], skippable(3, []byte("hi")), seeds[n-1]}, nil),
		bytes.Join([][]byte{seeds[n-2], seeds[n-3]}, nil))
	for _, s := range badStrings {
		seeds = append(seeds, []byte(s))
	}
	return seeds
}

func klauspostEncode(t testing.TB, in []byte, o ...kzstd.EOption) []byte {
	t.Helper()
	e, err := kzstd.NewWriter(nil, append(o, kzstd.WithEncoderConcurrency(1))...)
	if err != nil {
		t.Fatal(err)
	}
	return e.EncodeAll(in, nil)
}

var allocsMetric = []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}

func allocated() uint64 {
	metrics.Read(allocsMetric)
	return allocsMetric[0].Value.Uint64()
}

// FuzzDecode: no input makes the decoder panic, or allocate in one Read
// more than a window buffer of at most the limit and fuzzSlack; and
// whenever klauspost's decoder, with the same window limit, decodes an
// input, this one decodes it to the same bytes.
func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	buf := make([]byte, 512<<10) // larger than a block: one block per Read
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReaderWindow(bytes.NewReader(data), fuzzWindow)
		var got []byte
		var err error
		for len(got) < fuzzOutput && err == nil {
			before := allocated()
			var n int
			n, err = r.Read(buf)
			if grew := allocated() - before; grew > fuzzWindow+fuzzSlack {
				t.Fatalf("one Read allocated %d bytes", grew)
			}
			if c := cap(r.window.data); c > fuzzWindow {
				t.Fatalf("window buffer of %d bytes", c)
			}
			got = append(got, buf[:n]...)
		}
		if err == io.EOF {
			err = nil
		}
		got = got[:min(len(got), fuzzOutput)]

		d, kerr := kzstd.NewReader(bytes.NewReader(data),
			kzstd.WithDecoderConcurrency(1),
			kzstd.WithDecoderLowmem(true),
			kzstd.WithDecoderMaxWindow(fuzzWindow))
		if kerr != nil {
			t.Fatal(kerr)
		}
		defer d.Close()
		want, kerr := io.ReadAll(io.LimitReader(d, fuzzOutput))
		if kerr != nil {
			return
		}
		switch {
		case len(data) == 0:
			// No frame at all: nothing to klauspost, an error here as
			// upstream.
		case err != nil && knownStricter(err):
		case err != nil:
			t.Fatalf("klauspost decoded %d bytes, this decoder failed after %d: %v", len(want), len(got), err)
		case !bytes.Equal(got, want):
			t.Fatalf("klauspost decoded %d bytes, this decoder %d, differing", len(want), len(got))
		}
	})
}

// knownStricter reports whether err is one of the ways this decoder is
// stricter than klauspost's, both within RFC 8878.
func knownStricter(err error) bool {
	var ze *zstdError
	if !errors.As(err, &ze) {
		return false
	}
	for _, s := range []string{
		// A repeat offset of Repeated_Offset1 - 1 = 0: RFC 8878 3.1.1.5
		// calls the data corrupted; klauspost (as the reference decoder)
		// uses 1.
		"invalid zero offset",
	} {
		if strings.Contains(ze.err.Error(), s) {
			return true
		}
	}
	return false
}

// TestZeroRepeatOffset pins knownStricter's case: a repeat offset of
// Repeated_Offset1 - 1 when that is 1, at the start of a frame.
func TestZeroRepeatOffset(t *testing.T) {
	frame := []byte{
		0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x00, // no checksum, 1 KiB window
		0x18, 0x00, 0x00, 'a', 'b', 'c', // raw block
		0x3d, 0x00, 0x00, // last compressed block of 7 bytes:
		0x00,       // no literals
		0x01, 0x54, // one sequence, all codes RLE:
		0x00, 0x01, 0x00, // no literals, repeat offset 3 (2 + 1 bit), match 3
		0x03, // the bit, and the end marker
	}
	want, kerr := decodeKlauspost(frame, fuzzWindow)
	if kerr != nil || string(want) != "abcccc" {
		t.Fatalf("klauspost: %q, %v", want, kerr)
	}
	_, err := decode(frame, fuzzWindow)
	if err == nil || !knownStricter(err) {
		t.Fatalf("err %v, want invalid zero offset", err)
	}
}
