package policy

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"io"
	"regexp"
	"strings"
	"sync"
)

// Bounds on what the tar walk reads.
const (
	// maxMeta bounds each metadata entry before .PKGINFO (.MTREE grows
	// with the package's file count; 64 MiB is far beyond any real one).
	maxMeta = 64 << 20
	// maxPKGINFO bounds the .PKGINFO that is read and checked.
	maxPKGINFO = 1 << 20
	// maxPadding bounds the zeros after the two end-of-archive blocks: tar
	// writers fill the last record (10 KiB for bsdtar and GNU tar, at most
	// 64 KiB with -b 128), so a long run of zeros is not padding but data.
	maxPadding = 64 << 10
)

// pkgMeta are the entries makepkg may put before .PKGINFO: it sorts the
// package root in the C locale, so dot files come first.
var pkgMeta = map[string]bool{".BUILDINFO": true, ".CHANGELOG": true, ".INSTALL": true, ".MTREE": true}

// pkgDirRE is a repo-add entry directory: NAME-PKGVER-PKGREL, with the
// characters makepkg allows in each. It is compiled on first use, not at
// package init: most requests never look into a database, and every
// request is a new process (BENCHMARKS.md, start-up).
var pkgDirRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[a-z0-9@_+][a-z0-9@._+-]*-([0-9]+:)?[A-Za-z0-9._+~]+-[0-9]+(\.[0-9]+)?$`)
})

var (
	errNotZero = errors.New("policy: data after the end of the tar archive")
	errNoEnd   = errors.New("policy: the tar archive has no end-of-archive blocks")
)

// tarCounter counts the bytes the tar walk takes from the stream.
type tarCounter struct {
	r io.Reader
	n int64
}

func (c *tarCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// sniffTar walks a whole tar stream, every entry and every body, to its
// end. It answers pacman-package when a valid .PKGINFO comes before any
// package file (only makepkg's other metadata may precede it), pacman-db
// when every entry is a repo-add NAME-VER/ directory or its desc or files,
// and either only if the archive is complete: its two end-of-archive zero
// blocks, then at most the zero padding of the last record, then the end
// of the stream (sniffTarErr says why not).
func sniffTar(r io.Reader) string {
	kind, _ := sniffTarErr(r)
	return kind
}

func sniffTarErr(r io.Reader) (string, error) {
	c := &tarCounter{r: r}
	tr := tar.NewReader(c)
	seen := map[string]bool{}
	kind := KindUnknown // KindPackage or KindDB once decided
	for {
		// Every body is read before the next header, so what Next reads
		// is the last body's padding and headers only.
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return KindUnknown, err
		}
		start := c.n
		h, err := tr.Next()
		if err == io.EOF {
			pad := (512 - start%512) % 512
			if c.n-start-pad != 1024 {
				return KindUnknown, errNoEnd
			}
			if err := zeroToEOF(c); err != nil {
				return KindUnknown, err
			}
			// An empty archive is what repo-remove writes when the last
			// package goes.
			if kind == KindUnknown && len(seen) == 0 {
				return KindDB, nil
			}
			return kind, nil
		}
		if err != nil {
			return KindUnknown, err
		}
		switch kind {
		case KindPackage:
			// The package's files: any entry tar can read.
			continue
		case KindDB:
			if !dbEntry(h, tr) {
				return KindUnknown, nil
			}
			continue
		}
		switch {
		case h.Name == ".PKGINFO":
			if !isReg(h) || h.Size > maxPKGINFO || !validPKGINFO(tr) {
				return KindUnknown, nil
			}
			kind = KindPackage
		case pkgMeta[h.Name]:
			if seen[h.Name] || !isReg(h) || h.Size > maxMeta {
				return KindUnknown, nil
			}
			seen[h.Name] = true
		case len(seen) > 0:
			// Package metadata, then a file before .PKGINFO.
			return KindUnknown, nil
		default:
			if !dbEntry(h, tr) {
				return KindUnknown, nil
			}
			kind = KindDB
		}
	}
}

func isReg(h *tar.Header) bool {
	//lint:ignore SA1019 old archives mark regular files with NUL
	return h.Typeflag == tar.TypeReg || h.Typeflag == tar.TypeRegA
}

// validPKGINFO wants the "pkgname = " and "pkgver = " lines every
// .PKGINFO has.
func validPKGINFO(r io.Reader) bool {
	sc := bufio.NewScanner(io.LimitReader(r, maxPKGINFO))
	sc.Buffer(make([]byte, 4096), maxPKGINFO)
	var name, ver bool
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "pkgname = "); ok && v != "" && !name {
			name = true
		}
		if v, ok := strings.CutPrefix(line, "pkgver = "); ok && v != "" && !ver {
			ver = true
		}
	}
	return sc.Err() == nil && name && ver
}

// dbEntry accepts what repo-add writes: NAME-VER/ directories and their
// desc and files entries, each starting the way repo-add starts them.
func dbEntry(h *tar.Header, r io.Reader) bool {
	if h.Typeflag == tar.TypeDir {
		return pkgDirRE().MatchString(strings.TrimSuffix(h.Name, "/"))
	}
	if !isReg(h) {
		return false
	}
	dir, file, ok := strings.Cut(h.Name, "/")
	if !ok || !pkgDirRE().MatchString(dir) {
		return false
	}
	var want string
	switch file {
	case "desc":
		want = "%FILENAME%\n"
	case "files":
		if h.Size == 0 {
			return true
		}
		want = "%FILES%\n"
	default:
		return false
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(r, got); err != nil {
		return false
	}
	return string(got) == want
}

// zeroToEOF reads c to its end and wants at most maxPadding zero bytes,
// ending on a 512-byte block: the padding of the last record. Anything
// else is data the archive does not account for.
func zeroToEOF(c *tarCounter) error {
	buf := make([]byte, 32<<10)
	left := maxPadding
	for {
		n, err := c.Read(buf)
		left -= n
		if n > 0 && (left < 0 || !allZero(buf[:n])) {
			return errNotZero
		}
		if err == io.EOF {
			if c.n%512 != 0 {
				return errNotZero
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
}

var zeros [32 << 10]byte

func allZero(b []byte) bool {
	return bytes.Equal(b, zeros[:len(b)])
}

// tarHeaderLike reports whether a 512-byte block is a tar header as tar
// readers take one: its checksum field matches the block (counting the
// field as spaces, in the unsigned or the signed sum). pacman (libarchive)
// opens such a block as an archive.
func tarHeaderLike(b []byte) bool {
	if len(b) < 512 || allZero(b[:512]) {
		return false
	}
	var u, s int64
	for i, c := range b[:512] {
		if i >= 148 && i < 156 {
			c = ' '
		}
		u += int64(c)
		s += int64(int8(c))
	}
	field := strings.Trim(string(b[148:156]), " \x00")
	if field == "" {
		return false
	}
	var v int64
	for _, d := range field {
		if d < '0' || d > '7' {
			return false
		}
		v = v*8 + int64(d-'0')
	}
	return v == u || v == s
}
