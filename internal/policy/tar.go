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
	// maxPadding bounds the zeros after the end-of-archive blocks: tar
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

var errNotZero = errors.New("policy: data after the end of the tar archive")

// sniffTar walks a decompressed tar stream. It answers pacman-package as
// soon as a valid .PKGINFO comes before any package file; for a database it
// reads every entry header (skipping the bodies past a short prefix) and
// the rest of the stream, which must be the archive's zero padding.
func sniffTar(r io.Reader) string {
	tr := tar.NewReader(r)
	seen := map[string]bool{}
	db := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			// An empty archive is what repo-remove writes when the last
			// package goes.
			if (db || len(seen) == 0) && zeroToEOF(r) == nil {
				return KindDB
			}
			return KindUnknown
		}
		if err != nil {
			return KindUnknown
		}
		if !db {
			switch {
			case h.Name == ".PKGINFO":
				if isReg(h) && h.Size <= maxPKGINFO && validPKGINFO(tr) {
					return KindPackage
				}
				return KindUnknown
			case pkgMeta[h.Name]:
				if seen[h.Name] || !isReg(h) || h.Size > maxMeta {
					return KindUnknown
				}
				seen[h.Name] = true
				continue
			case len(seen) > 0:
				// Package metadata, then a file before .PKGINFO.
				return KindUnknown
			}
			db = true
		}
		if !dbEntry(h, tr) {
			return KindUnknown
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

// zeroToEOF reads r to its end and wants at most maxPadding zero bytes:
// the padding of the last record. Anything else is data the archive does
// not account for.
func zeroToEOF(r io.Reader) error {
	buf := make([]byte, 32<<10)
	left := maxPadding
	for {
		n, err := r.Read(buf)
		left -= n
		if n > 0 && (left < 0 || !allZero(buf[:n])) {
			return errNotZero
		}
		if err == io.EOF {
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
