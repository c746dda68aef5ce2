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
		if compression(data) != nil {
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
		io.Copy(io.Discard, &capReader{r: x, left: 64 << 20})
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
