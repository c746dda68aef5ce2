package policy

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/signstar/signstar/internal/testsupport/testenv"
)

// compressors are the commands makepkg's COMPRESS* arrays and repo-add
// use, each at its lowest, default and extreme levels, all from stdin as
// makepkg runs them (so the header declares the level's whole window).
var compressors = []struct {
	name, debian string
	cmds         []string
}{
	{"gzip", "gzip", []string{"gzip -c -f -n -1", "gzip -c -f -n", "gzip -c -f -n -9"}},
	{"bzip2", "bzip2", []string{"bzip2 -c -f -1", "bzip2 -c -f", "bzip2 -c -f -9"}},
	{"xz", "xz-utils", []string{"xz -c -z -0 -", "xz -c -z -", "xz -c -z -9 -", "xz -c -z -9e -", "xz -c -z -T2 -9 -"}},
	{"zstd", "zstd", []string{"zstd -c -z -q -1 -", "zstd -c -z -q -", "zstd -c -z -q -19 -",
		"zstd -c -z -q --ultra -20 -", "zstd -c -z -q --ultra -21 -", "zstd -c -z -q --ultra -22 -",
		"zstd -c -z -q --long -", "zstd -c -z -q --long=27 -", "zstd -c -z -q -T0 --ultra -20 -"}},
	{"lz4", "lz4", []string{"lz4 -q -1", "lz4 -q", "lz4 -q -9", "lz4 -q -12", "lz4 -q -12 -BD", "lz4 -q -B4 --no-frame-crc -BX"}},
	{"lzip", "lzip", []string{"lzip -c -f -0", "lzip -c -f", "lzip -c -f -9"}},
	{"lzop", "lzop", []string{"lzop -q -1", "lzop -q", "lzop -q -9"}},
	{"compress", "ncompress", []string{"compress -c -f -b 10", "compress -c -f -b 12", "compress -c -f"}},
}

// artifactTars makes a package tar (bsdtar, makepkg's layout, with text,
// random and repeated content so every kind of match occurs) and the
// database repo-add makes of it, both uncompressed.
func artifactTars(t *testing.T) (pkg, db []byte) {
	t.Helper()
	tarsOnce.Do(func() { tarsPkg, tarsDB = makeArtifactTars(t) })
	if tarsPkg == nil {
		t.Fatal("could not make the artifact tars")
	}
	return tarsPkg, tarsDB
}

var (
	tarsOnce        sync.Once
	tarsPkg, tarsDB []byte
)

func makeArtifactTars(t *testing.T) (pkg, db []byte) {
	testenv.NeedTool(t, "bsdtar", "libarchive-tools")
	testenv.NeedTool(t, "repo-add", "pacman-package-manager")
	dir := t.TempDir()
	run(t, dir, `
mkdir -p pkg/usr/share/m
cd pkg
printf 'pkgname = m\npkgbase = m\npkgver = 1.0-1\narch = any\nsize = 1\n' > .PKGINFO
printf 'format = 2\npkgname = m\n' > .BUILDINFO
seq 1 30000 > usr/share/m/text
head -c 40000 /dev/urandom > usr/share/m/random
cp usr/share/m/random usr/share/m/copy
yes 'a line said over and over' | head -c 40000 > usr/share/m/runs
printf '.BUILDINFO\0.PKGINFO\0usr\0usr/share\0usr/share/m\0usr/share/m/copy\0usr/share/m/random\0usr/share/m/runs\0usr/share/m/text\0' > ../list
bsdtar --no-fflags -cnf - --null --files-from ../list > ../m-1.0-1-any.pkg.tar
cd ..
repo-add -q r.db.tar m-1.0-1-any.pkg.tar
`)
	var err error
	if pkg, err = os.ReadFile(filepath.Join(dir, "m-1.0-1-any.pkg.tar")); err != nil {
		t.Fatal(err)
	}
	if db, err = os.ReadFile(filepath.Join(dir, "r.db.tar")); err != nil {
		t.Fatal(err)
	}
	return pkg, db
}

func compressWith(t *testing.T, cmdline string, data []byte) []byte {
	t.Helper()
	f := strings.Fields(cmdline)
	cmd := exec.Command(f[0], f[1:]...)
	cmd.Stdin = bytes.NewReader(data)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmdline, err, errb.Bytes())
	}
	return out
}

// Every compressor pacman reads, at every level, for a package and a
// database; and the same streams with anything after them refused.
func TestEveryCompression(t *testing.T) {
	pkg, db := artifactTars(t)
	checkKind(t, "uncompressed package", pkg, KindPackage)
	checkKind(t, "uncompressed database", db, KindDB)
	for _, c := range compressors {
		testenv.NeedTool(t, strings.Fields(c.cmds[0])[0], c.debian)
		t.Run(c.name, func(t *testing.T) {
			for i, cmd := range c.cmds {
				z := compressWith(t, cmd, pkg)
				if got := formatOf(z); got == nil || got.name != c.name {
					t.Fatalf("%s: format %v", cmd, got)
				}
				if got, note := detectNote(z, 4096); got != KindPackage {
					t.Errorf("%s package: kind %q (%s)", cmd, got, note)
				}
				if got := detect(compressWith(t, cmd, db), 0); got != KindDB {
					t.Errorf("%s database: kind %q", cmd, got)
				}
				if i > 0 {
					continue
				}
				if got := detect(z, 1000); got != KindPackage {
					t.Errorf("%s package in chunks of 1000: kind %q", cmd, got)
				}
				// Anything after the stream: refused.
				for _, tail := range [][]byte{{0}, []byte("x"), bytes.Repeat([]byte{0}, 512), z} {
					if c.name == "compress" && len(tail) == 1 {
						// .Z has no end marker: fewer bits than a code are
						// ignored, by compress -d too.
						continue
					}
					if got := detect(append(bytes.Clone(z), tail...), 65536); got != KindUnknown {
						t.Errorf("%s + %d bytes: kind %q", cmd, len(tail), got)
					}
				}
				// Truncated: refused.
				if got := detect(z[:len(z)-1], 65536); got != KindUnknown {
					t.Errorf("%s truncated by one byte: kind %q", cmd, got)
				}
			}
		})
	}
}

// detectNote is detect with the Detector's note.
func detectNote(data []byte, chunk int) (string, string) {
	d := NewDetector()
	defer d.Close()
	if chunk <= 0 {
		chunk = len(data) + 1
	}
	for len(data) > 0 {
		n := min(chunk, len(data))
		d.Observe(data[:n])
		data = data[n:]
	}
	return d.Kind(), d.Note()
}

// Streams written in parts, as pigz, pbzip2, pzstd and plzip write them,
// are one artifact.
func TestConcatenatedStreams(t *testing.T) {
	pkg, _ := artifactTars(t)
	half := len(pkg) / 2
	for _, cmd := range []string{"gzip -c -f -n", "bzip2 -c -f", "zstd -c -z -q -", "lz4 -q", "lzip -c -f"} {
		z := append(compressWith(t, cmd, pkg[:half]), compressWith(t, cmd, pkg[half:])...)
		if got := detect(z, 4096); got != KindPackage {
			t.Errorf("%s in two streams: kind %q", cmd, got)
		}
	}
}

// A tar is complete only with its end-of-archive blocks; only zeros, at
// most a record's padding, may follow them.
func TestTarEnd(t *testing.T) {
	pkg, _ := artifactTars(t)
	end := tarEnd(t, pkg)
	for _, tc := range []struct {
		name string
		data []byte
		kind string
	}{
		{"as bsdtar writes it", pkg, KindPackage},
		{"no record padding", pkg[:end+1024], KindPackage},
		{"one end block", pkg[:end+512], KindUnknown},
		{"no end blocks", pkg[:end], KindUnknown},
		{"padding not to a block", append(bytes.Clone(pkg[:end+1024]), make([]byte, 100)...), KindUnknown},
		{"a record of padding", append(bytes.Clone(pkg[:end+1024]), make([]byte, 9216)...), KindPackage},
		{"128 KiB of zeros after", append(bytes.Clone(pkg[:end+1024]), make([]byte, 128<<10)...), KindUnknown},
		{"a byte after the padding", append(bytes.Clone(pkg), 1), KindUnknown},
		{"a byte in the padding", func() []byte { b := bytes.Clone(pkg); b[len(b)-1] = 1; return b }(), KindUnknown},
	} {
		for _, c := range []int{0, 4096} {
			if got := detect(tc.data, c); got != tc.kind {
				t.Errorf("%s in chunks of %d: kind %q, want %q", tc.name, c, got, tc.kind)
			}
		}
	}
}

// tarEnd is the offset just after the last entry's body.
func tarEnd(t *testing.T, data []byte) int {
	t.Helper()
	c := &tarCounter{r: bytes.NewReader(data)}
	tr := tar.NewReader(c)
	end := 0
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		end = int(c.n) + int((h.Size+511)/512*512)
	}
	return end
}

// The two files of issue 12 that were two kinds at once, made with
// xorriso: each is refused as either kind.
func TestPolyglots(t *testing.T) {
	needTools(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hello.pkg.tar.gz"), readSample(t, "hello-1.0-1-any.pkg.tar.gz"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, dir, `
mkdir iso && echo hello > iso/hello.txt
xorriso -as mkisofs -quiet -V PLAIN -o plain.iso iso
# 1: a gzip'd package in the system area of an ISO image.
xorriso -as mkisofs -quiet -G hello.pkg.tar.gz -V POLY -o gz-in-iso.iso iso
# 2: a tar package whose second member holds the image from byte 1536 on,
# so the descriptor sits at 32768 of the file.
mkdir pkg && printf 'pkgname = p\npkgbase = p\npkgver = 1-1\narch = any\n' > pkg/.PKGINFO
tail -c +1537 plain.iso > pkg/img
(cd pkg && bsdtar --format=ustar -cf ../iso-in-tar.pkg.tar .PKGINFO img)
# Both are what they claim to be to each reader.
xorriso -indev gz-in-iso.iso -find / -name hello.txt 2>/dev/null | grep -q hello.txt
xorriso -indev iso-in-tar.pkg.tar -find / -name hello.txt 2>/dev/null | grep -q hello.txt
bsdtar -tf gz-in-iso.iso | grep -qx .PKGINFO
bsdtar -tf iso-in-tar.pkg.tar | grep -qx .PKGINFO
`)
	for _, tc := range []struct{ file, kind, note string }{
		{"plain.iso", KindISO, ""},
		{"gz-in-iso.iso", KindUnknown, "an ISO 9660 image whose first bytes open as an archive (data after the end of the gzip stream)"},
		{"iso-in-tar.pkg.tar", KindUnknown, "both a pacman-package and an ISO 9660 image"},
	} {
		data, err := os.ReadFile(filepath.Join(dir, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []int{0, 4096} {
			if kind, note := detectNote(data, c); kind != tc.kind || note != tc.note {
				t.Errorf("%s in chunks of %d: kind %q (%s), want %q (%s)", tc.file, c, kind, note, tc.kind, tc.note)
			}
		}
	}
}

// lrzip stays unrecognised, with a note that names it and what to do.
func TestLrzipNamed(t *testing.T) {
	testenv.NeedTool(t, "lrzip", "lrzip")
	pkg, _ := artifactTars(t)
	z := compressWith(t, "lrzip -q", pkg)
	kind, note := detectNote(z, 4096)
	if kind != KindUnknown || !strings.Contains(note, "lrzip-compressed (.lrz)") || !strings.Contains(note, "PKGEXT='.pkg.tar.zst'") {
		t.Errorf("lrzip: kind %q, note %q", kind, note)
	}
}

// A match farther back than the held window fails, and the note says so;
// within it, a declared window larger than the limit decodes.
func TestWindowBeyondLimit(t *testing.T) {
	testenv.NeedTool(t, "zstd", "zstd")
	testenv.NeedTool(t, "xz", "xz-utils")
	// A tar of 512 KiB of random bytes, then the same again, 1.5 MiB on.
	random := make([]byte, 512<<10)
	rand.Read(random)
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	info := []byte("pkgname = w\npkgver = 1-1\n")
	tw.WriteHeader(&tar.Header{Name: ".PKGINFO", Mode: 0o644, Size: int64(len(info))})
	tw.Write(info)
	for _, name := range []string{"a", "gap", "b"} {
		body := random
		if name == "gap" {
			body = make([]byte, 1<<20)
			rand.Read(body)
		}
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body))})
		tw.Write(body)
	}
	tw.Close()
	lim := Limits{Decompressed: 1 << 30, Ratio: 32, Window: 1 << 20}
	for _, cmd := range []string{"zstd -q -c --long=21 -", "xz -c -z -6 -"} {
		z := compressWith(t, cmd, raw.Bytes())
		if raw.Len() < 2<<20 || len(z) > 1600<<10 {
			t.Fatalf("%s: %d bytes, the match was not found", cmd, len(z))
		}
		if got := detectLimits(z, 4096, DefaultLimits); got != KindPackage {
			t.Errorf("%s with the default window: %q", cmd, got)
		}
		d := NewDetectorLimits(lim)
		d.Observe(z)
		if kind, note := d.Kind(), d.Note(); kind != KindUnknown || !strings.Contains(note, "needs more than the 1 MiB of window signstar holds") {
			t.Errorf("%s with a 1 MiB window: kind %q, note %q", cmd, kind, note)
		}
	}
}
