package signer

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"math/rand/v2"
	"testing"
)

// The hash-and-sign path against a plain SHA-256 pass over the same bytes.
// For large inputs ReadSign should run at the speed of SHA256 (one hash
// pass, no extra copies beyond the read itself); the target is
// within 5% for 1 GiB. For 1 KiB the signature dominates.
//
//	go test ./internal/signer -run '^$' -bench . -benchmem
var benchSizes = []struct {
	name string
	n    int
}{
	{"1KiB", 1 << 10},
	{"64MiB", 64 << 20},
}

// benchData is random, not zeros, so that nothing downstream can shortcut.
func benchData(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{'s', 'i', 'g', 'n', 's', 't', 'a', 'r'})
	r.Read(b)
	return b
}

func BenchmarkReadSign(b *testing.B) {
	keys := testKeys(b)
	for _, name := range []string{"ed25519", "rsa3072"} {
		key := keys[name]
		for _, sz := range benchSizes {
			data := benchData(sz.n)
			b.Run(name+"/"+sz.name, func(b *testing.B) {
				b.SetBytes(int64(sz.n))
				b.ReportAllocs()
				for b.Loop() {
					in, err := Read(bytes.NewReader(data), crypto.SHA256, 0, nil)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := Sign(in, key, t0); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkRead is the stream half alone: read in BufferSize chunks and
// hash. Its allocations must not grow with the input.
func BenchmarkRead(b *testing.B) {
	for _, sz := range benchSizes {
		data := benchData(sz.n)
		b.Run(sz.name, func(b *testing.B) {
			b.SetBytes(int64(sz.n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Read(bytes.NewReader(data), crypto.SHA256, 0, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSHA256 is the limit: crypto/sha256 over the bytes in place, with
// no read copy and no signature.
func BenchmarkSHA256(b *testing.B) {
	for _, sz := range benchSizes {
		data := benchData(sz.n)
		b.Run(sz.name, func(b *testing.B) {
			b.SetBytes(int64(sz.n))
			b.ReportAllocs()
			for b.Loop() {
				h := sha256.New()
				for p := data; len(p) > 0; {
					n := min(len(p), BufferSize)
					h.Write(p[:n])
					p = p[n:]
				}
				h.Sum(nil)
			}
		})
	}
}
