package tarstream

import (
	"archive/tar"
	"bytes"
	"time"
)

// Signature is one member of the answer: the signature of the input member
// Name, written as Name plus Suffix.
type Signature struct {
	Name string
	Data []byte
}

// Suffixes of the answer's members.
const (
	SuffixBinary = ".sig"
	SuffixArmor  = ".asc"
)

// WriteSignatures is the answer to an archive: a tar (ustar, or pax for a
// name ustar cannot hold) of one regular file per signature, NAME+suffix in
// the order given, mode 0644, owned by root, dated mtime (to the second),
// ended by its two zero blocks and padded to a 10 KiB record as GNU tar
// and bsdtar pad. Writing to a bytes.Buffer does not fail, and every name
// has passed Reader's checks, so neither does this.
func WriteSignatures(sigs []Signature, suffix string, mtime time.Time) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mt := mtime.UTC().Truncate(time.Second)
	for _, s := range sigs {
		h := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     s.Name + suffix,
			Size:     int64(len(s.Data)),
			Mode:     0o644,
			ModTime:  mt,
			Uname:    "root",
			Gname:    "root",
		}
		if err := tw.WriteHeader(h); err != nil {
			panic("tarstream: " + err.Error())
		}
		tw.Write(s.Data)
	}
	tw.Close()
	if r := buf.Len() % recordSize; r != 0 {
		buf.Write(make([]byte, recordSize-r))
	}
	return buf.Bytes()
}

// recordSize is GNU tar's and bsdtar's default record: 20 blocks.
const recordSize = 20 * blockSize
