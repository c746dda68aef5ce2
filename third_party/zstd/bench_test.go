package zstd

import (
	"archive/tar"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"go/build"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	kzstd "github.com/klauspost/compress/zstd"
)

// benchDB is a repository database as repo-add writes it: a desc per
// package, compressed with its `zstd -c -z -q -` (level 3, 2 MiB window).
// 5000 packages, a few MB, the size of Arch's extra.db.
func benchDB(b *testing.B) []byte {
	r := rand.New(rand.NewPCG(5000, 1))
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	name := func() string {
		return fmt.Sprintf("%s-%s", words[r.IntN(len(words))], words[r.IntN(len(words))])
	}
	for i := range 5000 {
		pkg := fmt.Sprintf("%s%d", name(), i)
		ver := fmt.Sprintf("%d.%d.%d-%d", r.IntN(10), r.IntN(30), r.IntN(100), 1+r.IntN(3))
		dir := pkg + "-" + ver + "/"
		sum := make([]byte, 32)
		sig := make([]byte, 566)
		for _, p := range [][]byte{sum, sig} {
			for j := range p {
				p[j] = byte(r.Uint32())
			}
		}
		desc := fmt.Sprintf("%%FILENAME%%\n%s-x86_64.pkg.tar.zst\n\n%%NAME%%\n%s\n\n%%BASE%%\n%s\n\n"+
			"%%VERSION%%\n%s\n\n%%DESC%%\n%s\n\n%%CSIZE%%\n%d\n\n%%ISIZE%%\n%d\n\n%%SHA256SUM%%\n%s\n\n"+
			"%%PGPSIG%%\n%s\n\n%%URL%%\nhttps://example.org/%s\n\n%%LICENSE%%\nGPL-3.0-or-later\n\n"+
			"%%ARCH%%\nx86_64\n\n%%BUILDDATE%%\n%d\n\n%%PACKAGER%%\nArch Packager <packager@example.org>\n\n"+
			"%%DEPENDS%%\nglibc\n%s\n%s\n\n",
			dir[:len(dir)-1], pkg, pkg, ver, text(uint64(i), 60+r.IntN(60)), r.IntN(50<<20), r.IntN(200<<20),
			hex.EncodeToString(sum), base64.StdEncoding.EncodeToString(sig), pkg, 1.7e9+r.IntN(1e8), name(), name())
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755})
		tw.WriteHeader(&tar.Header{Name: dir + "desc", Mode: 0o644, Size: int64(len(desc))})
		tw.Write([]byte(desc))
	}
	tw.Close()
	return cli(b, buf.Bytes(), false, "-z")
}

// benchPackage is a 64 MiB package-like tar: .PKGINFO, then the Go
// toolchain's binaries and compiler sources (real ELF and text), with a
// 32 MiB window as makepkg's `zstd --ultra -20` writes. Level 9 --long=25
// stands in for -20, which takes half a minute to compress it.
func benchPackage(b *testing.B) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	pkginfo := "pkgname = go\npkgver = 2:1.26.8-1\nsize = 67108864\narch = x86_64\n"
	tw.WriteHeader(&tar.Header{Name: ".PKGINFO", Mode: 0o644, Size: int64(len(pkginfo))})
	tw.Write([]byte(pkginfo))
	root := build.Default.GOROOT
	const size = 64 << 20
	for _, dir := range []string{"pkg/tool", "bin", "src/cmd/compile"} {
		filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() || buf.Len() >= size {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			tw.WriteHeader(&tar.Header{Name: "usr/lib/go/" + rel, Mode: 0o755, Size: int64(len(data))})
			tw.Write(data)
			return nil
		})
	}
	tw.Close()
	if buf.Len() < size {
		b.Fatalf("only %d bytes of GOROOT", buf.Len())
	}
	return cli(b, buf.Bytes()[:size], false, "-9", "--long=25")
}

var benchInputs = struct {
	sync.Mutex
	m map[string][]byte
}{m: map[string][]byte{}}

func benchInput(b *testing.B, name string, make func(*testing.B) []byte) []byte {
	benchInputs.Lock()
	defer benchInputs.Unlock()
	if c, ok := benchInputs.m[name]; ok {
		return c
	}
	c := make(b)
	benchInputs.m[name] = c
	return c
}

// BenchmarkDecode: MB/s of decompressed data, this decoder next to
// klauspost's as policy used it (one goroutine, low memory), each a fresh
// decoder per stream as in a signing process.
func BenchmarkDecode(b *testing.B) {
	for _, in := range []struct {
		name string
		make func(*testing.B) []byte
	}{{"db", benchDB}, {"pkg64M", benchPackage}} {
		c := benchInput(b, in.name, in.make)
		plain, err := decode(c, policyWindow)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(in.name+"/go", func(b *testing.B) {
			b.SetBytes(int64(len(plain)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := io.Copy(io.Discard, NewReaderWindow(bytes.NewReader(c), policyWindow)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(in.name+"/klauspost", func(b *testing.B) {
			b.SetBytes(int64(len(plain)))
			b.ReportAllocs()
			for b.Loop() {
				d, err := kzstd.NewReader(bytes.NewReader(c), kzstd.WithDecoderConcurrency(1),
					kzstd.WithDecoderLowmem(true), kzstd.WithDecoderMaxWindow(policyWindow))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, d); err != nil {
					b.Fatal(err)
				}
				d.Close()
			}
		})
	}
}
