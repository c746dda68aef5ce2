package policy

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// seedSamples adds every stored real artifact to f's corpus.
func seedSamples(f *testing.F, add func(data []byte)) {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "samples", "*"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no samples: %v", err)
	}
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		add(data)
	}
}

// FuzzDetector: any bytes, in any chunking, give the same kind, never a
// panic or a hang.
func FuzzDetector(f *testing.F) {
	seedSamples(f, func(data []byte) { f.Add(data, uint16(0)); f.Add(data, uint16(7)) })
	f.Fuzz(func(t *testing.T, data []byte, chunk uint16) {
		lim := Limits{Decompressed: 16 << 20, Window: 8 << 20}
		whole := detectLimits(data, 0, lim)
		if got := detectLimits(data, int(chunk), lim); got != whole {
			t.Fatalf("chunks of %d: %q, whole: %q", chunk, got, whole)
		}
	})
}

// FuzzSniffTar: the tar walk over decompressed bytes.
func FuzzSniffTar(f *testing.F) {
	seedSamples(f, func(data []byte) {
		if formatOf(data) != nil {
			f.Add(decompress(f, data))
		}
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		kind := sniffTar(bytes.NewReader(data))
		if kind != KindUnknown && kind != KindPackage && kind != KindDB {
			t.Fatalf("kind %q", kind)
		}
	})
}

// FuzzXZ: the xz container parser with a small dictionary bound.
func FuzzXZ(f *testing.F) {
	seedSamples(f, func(data []byte) {
		if bytes.HasPrefix(data, xzMagic) {
			f.Add(data)
		}
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		x, err := newXZReader(bufioReader(data), 1<<20)
		if err != nil {
			return
		}
		io.Copy(io.Discard, io.LimitReader(x, 64<<20))
	})
}

// FuzzParsePVD: the ISO 9660 primary volume descriptor check.
func FuzzParsePVD(f *testing.F) {
	seedSamples(f, func(data []byte) {
		if len(data) >= pvdSize {
			f.Add(data[:pvdSize])
		}
	})
	f.Fuzz(func(t *testing.T, s []byte) {
		vol, ok := parsePVD(s)
		if ok && (vol < pvdOffset+pvdSize || s[0] != 1) {
			t.Fatalf("accepted volume of %d bytes", vol)
		}
	})
}

// fuzzDecoder: a decoder over arbitrary bytes with a small window never
// panics, and stops at its bounds. The seeds are real streams of the
// format (testdata/fuzz/NAME, made from the stored samples).
func fuzzDecoder(f *testing.F, name string) {
	seedSamples(f, func(data []byte) {
		if fm := formatOf(data); fm != nil && fm.name == name {
			f.Add(data)
		}
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		fm := formatOf(data)
		if fm == nil || fm.name != name {
			return
		}
		r, err := fm.open(bufioReader(data), Limits{Decompressed: 4 << 20, Ratio: 32, Window: 1 << 20})
		if err != nil {
			return
		}
		io.Copy(io.Discard, io.LimitReader(r, 4<<20))
	})
}

func FuzzGzip(f *testing.F)     { fuzzDecoder(f, "gzip") }
func FuzzBzip2(f *testing.F)    { fuzzDecoder(f, "bzip2") }
func FuzzZstd(f *testing.F)     { fuzzDecoder(f, "zstd") }
func FuzzLZ4(f *testing.F)      { fuzzDecoder(f, "lz4") }
func FuzzLzip(f *testing.F)     { fuzzDecoder(f, "lzip") }
func FuzzLzop(f *testing.F)     { fuzzDecoder(f, "lzop") }
func FuzzCompress(f *testing.F) { fuzzDecoder(f, "compress") }

// FuzzLZO1X: the raw LZO1X block decoder, which lzop's container feeds.
func FuzzLZO1X(f *testing.F) {
	f.Add([]byte{0x11, 0, 0}, uint16(0))
	f.Add([]byte{0x15, 'a', 'b', 'c', 'd', 0x11, 0, 0}, uint16(4))
	f.Fuzz(func(t *testing.T, src []byte, limit uint16) {
		out, err := lzo1xDecode(nil, src, int(limit))
		if err == nil && len(out) > int(limit) {
			t.Fatalf("%d bytes out, limit %d", len(out), limit)
		}
	})
}

// FuzzLZ4Block: the raw LZ4 block decoder.
func FuzzLZ4Block(f *testing.F) {
	f.Add([]byte{0x40, 'a', 'b', 'c', 'd'}, uint16(64))
	f.Add([]byte{0x1F, 'a', 1, 0, 0xFF, 0x10, 0x10, 'z'}, uint16(4096))
	f.Fuzz(func(t *testing.T, src []byte, limit uint16) {
		out, err := lz4Block(nil, src, int(limit))
		if err == nil && len(out) > int(limit) {
			t.Fatalf("%d bytes out, limit %d", len(out), limit)
		}
	})
}
