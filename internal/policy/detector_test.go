package policy

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/signstar/signstar/internal/signer"
	"github.com/signstar/signstar/internal/testsupport/testenv"
)

// detect runs data through a Detector in chunks of size chunk (0: one chunk).
func detect(data []byte, chunk int) string {
	return detectLimits(data, chunk, DefaultLimits)
}

func detectLimits(data []byte, chunk int, lim Limits) string {
	d := NewDetectorLimits(lim)
	defer d.Close()
	if chunk <= 0 {
		chunk = len(data) + 1
	}
	for len(data) > 0 {
		n := min(chunk, len(data))
		d.Observe(data[:n])
		data = data[n:]
	}
	return d.Kind()
}

// detectFile runs a file through signer.Read with a Detector, as signstar
// does.
func detectFile(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := NewDetector()
	defer d.Close()
	if _, err := signer.Read(f, crypto.SHA256, 0, d.Observe); err != nil {
		t.Fatal(err)
	}
	return d.Kind()
}

var chunkSizes = []int{0, 1, 3, 511, 4096, signer.BufferSize}

// checkKind wants every chunking of data to give kind.
func checkKind(t *testing.T, name string, data []byte, want string) {
	t.Helper()
	for _, c := range chunkSizes {
		if got := detect(data, c); got != want {
			t.Errorf("%s in chunks of %d: kind %q, want %q", name, c, got, want)
		}
	}
}

func readSample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "samples", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The stored samples were made by testdata/mksamples.sh with bsdtar,
// repo-add and xorriso.
func TestStoredSamples(t *testing.T) {
	for _, tc := range []struct{ file, kind string }{
		{"hello-1.0-1-any.pkg.tar.zst", KindPackage},
		{"hello-1.0-1-any.pkg.tar.xz", KindPackage},
		{"hello-1.0-1-any.pkg.tar.gz", KindPackage},
		{"hello-1.0-1-any.pkg.tar", KindPackage},
		{"hello-1.0-1-any.pkg.tar.bz2", KindPackage},
		{"hello-1.0-1-any.pkg.tar.lz4", KindPackage},
		{"hello-1.0-1-any.pkg.tar.lz4d", KindPackage},
		{"hello-1.0-1-any.pkg.tar.lz", KindPackage},
		{"hello-1.0-1-any.pkg.tar.lzo", KindPackage},
		{"hello-1.0-1-any.pkg.tar.Z", KindPackage},
		{"hello-1.0-1-any.pkg.tar.zst22", KindPackage},
		{"repo.db.tar.zst", KindDB},
		{"repo.db.tar.xz", KindDB},
		{"repo.db.tar.gz", KindDB},
		{"repo.files.tar.zst", KindDB},
		{"pretend.pkg.tar.zst", KindUnknown},
		{"stray.db.tar.zst", KindUnknown},
		{"random.bin", KindUnknown},
		{"iso-pvd.bin", KindUnknown}, // a descriptor alone is not an image
	} {
		t.Run(tc.file, func(t *testing.T) {
			checkKind(t, tc.file, readSample(t, tc.file), tc.kind)
		})
	}
}

// isoFromPVD is a zero image with the real descriptor at sector 16: what
// the benchmark streams, and an ISO by every rule the detector has.
func isoFromPVD(pvd []byte, size int64) []byte {
	img := make([]byte, size)
	copy(img[pvdOffset:], pvd)
	blocks := uint32(size / 2048)
	binary.LittleEndian.PutUint32(img[pvdOffset+80:], blocks)
	binary.BigEndian.PutUint32(img[pvdOffset+84:], blocks)
	return img
}

func TestISOFromDescriptor(t *testing.T) {
	pvd := readSample(t, "iso-pvd.bin")
	img := isoFromPVD(pvd, 200*2048)
	checkKind(t, "image", img, KindISO)
	checkKind(t, "truncated image", img[:len(img)-1], KindUnknown)
	checkKind(t, "descriptor only", img[:pvdOffset+pvdSize], KindUnknown)
	checkKind(t, "image with a tail", append(img, 1, 2, 3), KindISO)

	for _, tc := range []struct {
		name string
		off  int
		val  byte
	}{
		{"type 2", 0, 2},
		{"CD002", 5, '2'},
		{"version 2", 6, 2},
		{"block count endians differ", 84, 0xFF},
		{"block size endians differ", 130, 0x10},
		{"file structure version", 881, 2},
	} {
		bad := bytes.Clone(img)
		bad[pvdOffset+tc.off] = tc.val
		checkKind(t, tc.name, bad, KindUnknown)
	}
}

// needTools wants the Debian tools that make real artifacts.
func needTools(t *testing.T) {
	testenv.NeedTool(t, "bsdtar", "libarchive-tools")
	testenv.NeedTool(t, "repo-add", "pacman-package-manager")
	testenv.NeedTool(t, "xorriso", "xorriso")
	testenv.NeedTool(t, "zstd", "zstd")
	testenv.NeedTool(t, "xz", "xz-utils")
	testenv.NeedTool(t, "gzip", "gzip")
}

func run(t *testing.T, dir, script string) {
	t.Helper()
	cmd := exec.Command("sh", "-euc", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "SOURCE_DATE_EPOCH=1700000000")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
}

// TestRealArtifacts makes packages, databases and images with the real
// tools, bigger than the stored samples, and detects them as signstar reads
// them.
func TestRealArtifacts(t *testing.T) {
	needTools(t)
	dir := t.TempDir()
	run(t, dir, `
mkdir -p pkg/usr/lib/big
cd pkg
printf 'pkgname = big\npkgbase = big\npkgver = 2:1.2.3_rc1-4\narch = x86_64\nsize = 1\n' > .PKGINFO
printf 'format = 2\npkgname = big\n' > .BUILDINFO
printf 'post_install() { :; }\n' > .INSTALL
# 600 files: a .MTREE of some size, bodies the detector never needs.
i=0; while [ $i -lt 600 ]; do head -c 3000 /dev/urandom > usr/lib/big/f$i; i=$((i+1)); done
find usr -print0 | sort -z > ../list
printf '.BUILDINFO\0.INSTALL\0.PKGINFO\0' | cat - ../list | bsdtar -cnf - --format=mtree --options='!all,use-set,type,uid,gid,mode,time,size,md5,sha256,link' --null --files-from - | gzip -c -f -n > .MTREE
printf '.BUILDINFO\0.INSTALL\0.MTREE\0.PKGINFO\0' | cat - ../list > ../all
bsdtar --no-fflags -cnf - --null --files-from ../all | zstd -c -z -q - > ../big-1.2.3_rc1-4-x86_64.pkg.tar.zst
bsdtar --no-fflags -cnf - --null --files-from ../all | xz -c -z - > ../big-1.2.3_rc1-4-x86_64.pkg.tar.xz
bsdtar --no-fflags -cnf - --null --files-from ../all | gzip -c -f -n > ../big-1.2.3_rc1-4-x86_64.pkg.tar.gz
bsdtar --zstd -cnf ../native.pkg.tar.zst --null --files-from ../all
bsdtar --xz -cnf ../native.pkg.tar.xz --null --files-from ../all
bsdtar -z -cnf ../native.pkg.tar.gz --null --files-from ../all
bsdtar -cnf ../plain.pkg.tar --null --files-from ../all
# .PKGINFO far down, after the package's files.
cat ../list > ../late; printf '.PKGINFO\0' >> ../late
bsdtar --zstd -cnf ../late.pkg.tar.zst --null --files-from ../late
cd ..
repo-add -q big.db.tar.zst big-1.2.3_rc1-4-x86_64.pkg.tar.zst
repo-add -q big.db.tar.xz big-1.2.3_rc1-4-x86_64.pkg.tar.zst
repo-add -q big.db.tar.gz big-1.2.3_rc1-4-x86_64.pkg.tar.zst
mkdir stray && bsdtar -xf big.db.tar.zst -C stray
echo evil > stray/big-2:1.2.3_rc1-4/install
(cd stray && bsdtar --zstd -cf ../stray.db.tar.zst *)
head -c 1000 /dev/urandom > tail.bin
cat big.db.tar.zst tail.bin > trailing.db.tar.zst
mkdir iso && cp -r pkg/usr iso/
xorriso -as mkisofs -quiet -R -V BIG -o big.iso iso
head -c 40000 big.iso > truncated.iso
head -c 3000000 /dev/urandom > random.bin
`)
	for _, tc := range []struct{ file, kind string }{
		{"big-1.2.3_rc1-4-x86_64.pkg.tar.zst", KindPackage},
		{"big-1.2.3_rc1-4-x86_64.pkg.tar.xz", KindPackage},
		{"big-1.2.3_rc1-4-x86_64.pkg.tar.gz", KindPackage},
		{"native.pkg.tar.zst", KindPackage},
		{"native.pkg.tar.xz", KindPackage},
		{"native.pkg.tar.gz", KindPackage},
		{"plain.pkg.tar", KindPackage},
		{"late.pkg.tar.zst", KindUnknown},
		{"big.db.tar.zst", KindDB},
		{"big.files.tar.zst", KindDB},
		{"big.db.tar.xz", KindDB},
		{"big.files.tar.xz", KindDB},
		{"big.db.tar.gz", KindDB},
		{"stray.db.tar.zst", KindUnknown},
		{"trailing.db.tar.zst", KindUnknown},
		{"big.iso", KindISO},
		{"truncated.iso", KindUnknown},
		{"random.bin", KindUnknown},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join(dir, tc.file)
			if got := detectFile(t, path); got != tc.kind {
				t.Errorf("kind %q, want %q", got, tc.kind)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []int{1000, 65536} {
				if got := detect(data, c); got != tc.kind {
					t.Errorf("in chunks of %d: kind %q, want %q", c, got, tc.kind)
				}
			}
		})
	}
}

func TestShortInput(t *testing.T) {
	for _, s := range []string{"", "\x28", "\x28\xb5\x2f\xfd", "\x1f\x8b\x08\x00\x00"} {
		checkKind(t, "short", []byte(s), KindUnknown)
	}
}

// A database bigger than the decompression limit is of no known kind, and
// detection gives up there instead of decompressing it all.
func TestDecompressionLimit(t *testing.T) {
	db := readSample(t, "repo.files.tar.zst")
	checkKind(t, "under the limit", db, KindDB)
	if got := detectLimits(db, 0, Limits{Decompressed: 4096, Window: DefaultLimits.Window}); got != KindUnknown {
		t.Errorf("over the limit: %q, want unknown", got)
	}
}

// A bomb: a tiny zstd stream of a database entry whose body is 2 GiB of
// zeros. The walk stops at the limit, with bounded memory.
func TestZstdBomb(t *testing.T) {
	// A tar header for hello-1.0-1/desc with a 2 GiB body.
	var hdr bytes.Buffer
	tarHeader(&hdr, "hello-1.0-1/desc", 2<<30)
	hdr.WriteString("%FILENAME%\n")
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf, zstd.WithWindowSize(1<<20), zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(hdr.Bytes())
	zero := make([]byte, 1<<20)
	for i := 0; i < 2048; i++ { // 2 GiB of zeros, compressed to a few KiB
		w.Write(zero)
	}
	w.Close()
	bomb := buf.Bytes()
	if len(bomb) > 1<<20 {
		t.Fatalf("bomb is %d bytes", len(bomb))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	got := detectLimits(bomb, 4096, Limits{Decompressed: 64 << 20, Window: DefaultLimits.Window})
	runtime.ReadMemStats(&after)
	if got != KindUnknown {
		t.Errorf("bomb: %q, want unknown", got)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Errorf("detection allocated %d MiB", grew>>20)
	}
}

func tarHeader(w io.Writer, name string, size int64) {
	var h [512]byte
	copy(h[0:], name)
	copy(h[100:], "0000644\x00")
	copy(h[108:], "0000000\x00")
	copy(h[116:], "0000000\x00")
	copy(h[124:], octal(size, 11)+"\x00")
	copy(h[136:], "00000000000\x00")
	h[156] = '0'
	copy(h[257:], "ustar\x0000")
	copy(h[148:], "        ")
	var sum int
	for _, b := range h {
		sum += int(b)
	}
	copy(h[148:], octal(int64(sum), 6)+"\x00 ")
	w.Write(h[:])
}

func octal(v int64, width int) string {
	s := strings.Repeat("0", width) + strconv.FormatInt(v, 8)
	return s[len(s)-width:]
}

// Decoders must not allocate what a hostile header asks for: a declared
// window beyond Limits.Window is held at Limits.Window.
func TestHugeWindowHeld(t *testing.T) {
	testenv.NeedTool(t, "zstd", "zstd")
	tarData := decompress(t, readSample(t, "hello-1.0-1-any.pkg.tar.zst"))
	for _, tc := range []struct {
		long int
		kind string
	}{{25, KindPackage}, {26, KindPackage}, {27, KindPackage}, {31, KindPackage}} {
		// From a pipe zstd keeps the window --long asks for.
		cmd := exec.Command("zstd", "-q", "-c", fmt.Sprintf("--long=%d", tc.long))
		cmd.Stdin = bytes.NewReader(tarData)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		if got := detect(out, 4096); got != tc.kind {
			t.Errorf("zstd window 2^%d: %q, want %q", tc.long, got, tc.kind)
		}
	}

	// xz: a block header asking for the largest dictionary (1.5 GiB).
	xzs := readSample(t, "hello-1.0-1-any.pkg.tar.xz")
	bad := bytes.Clone(xzs)
	// Block header at 12: size, flags, then filter 0x21, props size 1, dict.
	if bad[12+2] != 0x21 || bad[12+3] != 1 {
		t.Fatalf("unexpected xz block header % x", bad[12:24])
	}
	bad[12+4] = 40
	fixBlockCRC(bad[12:])
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	got := detect(bad, 0)
	runtime.ReadMemStats(&after)
	if got != KindPackage {
		t.Errorf("1.5 GiB dictionary: %q", got)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > uint64(DefaultLimits.Window)+16<<20 {
		t.Errorf("detection allocated %d MiB", grew>>20)
	}
	// The same with a dictionary within bounds still decodes.
	ok := bytes.Clone(xzs)
	ok[12+4] = 22 // 8 MiB, within the 32 MiB limit
	fixBlockCRC(ok[12:])
	if got := detect(ok, 0); got != KindPackage {
		t.Errorf("8 MiB dictionary: %q", got)
	}
}

func fixBlockCRC(b []byte) {
	n := (int(b[0]) + 1) * 4
	binary.LittleEndian.PutUint32(b[n-4:], crc32IEEE(b[:n-4]))
}

func decompress(t testing.TB, data []byte) []byte {
	t.Helper()
	r, err := formatOf(data).open(bufioReader(data), DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRandomNeverDetected(t *testing.T) {
	buf := make([]byte, 1<<20)
	for i := 0; i < 20; i++ {
		rand.Read(buf)
		checkKind(t, "random", buf, KindUnknown)
	}
}

// Close while the goroutine is mid-stream ends it and reports unknown.
func TestCloseEarly(t *testing.T) {
	data := readSample(t, "repo.files.tar.zst")
	d := NewDetector()
	d.Observe(data[:100])
	d.Close()
	if k := d.Kind(); k != KindUnknown {
		t.Errorf("after Close: %q", k)
	}
	d.Close()
}
