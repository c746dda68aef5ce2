package client

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// writeTar streams the items as a tar of regular files, each under its
// member name, the way `sign --tar` reads it: the same bytes each time for
// the same files, so that the stream measured for --expect is the stream
// sent. A file whose size changed in between aborts the stream; one whose
// bytes changed makes the enclave refuse the --expect.
func writeTar(w io.Writer, items []*Item) error {
	tw := tar.NewWriter(w)
	buf := make([]byte, 256<<10)
	for _, it := range items {
		f, err := os.Open(it.Path)
		if err != nil {
			return err
		}
		hdr := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     it.Name,
			Size:     it.Size,
			Mode:     0o644,
			ModTime:  it.ModTime,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			f.Close()
			return fmt.Errorf("%s: %w", it.Path, err)
		}
		n, err := io.CopyBuffer(tw, io.LimitReader(f, it.Size), buf)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", it.Path, err)
		}
		if n != it.Size {
			return fmt.Errorf("%s changed while it was being sent: nothing is signed", it.Path)
		}
	}
	return tw.Close()
}

// readSignatureTar reads `sign --tar`'s answer: a tar holding exactly one
// regular member NAME.sig (or NAME.asc, as ext says) per item, in the
// items' order, each at most limit bytes, and nothing after the archive's
// end but zeros.
func readSignatureTar(r io.Reader, names []string, ext string, limit int64) ([][]byte, error) {
	cr := &countingReader{r: r}
	r = cr
	tr := tar.NewReader(r)
	var lastSize int64
	out := make([][]byte, 0, len(names))
	for i, name := range names {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("the answer holds %d signatures for %d files", i, len(names))
		}
		if err != nil {
			return nil, fmt.Errorf("the answer is no tar: %v", err)
		}
		want := name + ext
		if hdr.Name != want {
			return nil, fmt.Errorf("the answer's member %d is %q, not %q", i+1, hdr.Name, want)
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("the answer's member %q is not a regular file", hdr.Name)
		}
		if hdr.Size > limit || hdr.Size <= 0 {
			return nil, fmt.Errorf("the answer's member %q is %d bytes: no signature", hdr.Name, hdr.Size)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("the answer's member %q: %v", hdr.Name, err)
		}
		out = append(out, b)
		lastSize = hdr.Size
	}
	before := cr.n
	hdr, err := tr.Next()
	switch {
	case err == nil:
		return nil, fmt.Errorf("the answer holds more members than the %d files sent (%q)", len(names), hdr.Name)
	case !errors.Is(err, io.EOF):
		return nil, fmt.Errorf("the answer is no tar: %v", err)
	}
	// tar.Reader takes a stream cut after a member for a whole archive:
	// the two zero blocks of the end must have been read.
	if pad := (512 - lastSize%512) % 512; cr.n-before < pad+1024 {
		return nil, errors.New("the answer is cut short: its tar has no end")
	}
	rest, err := io.ReadAll(io.LimitReader(r, 1<<20+1))
	if err != nil {
		return nil, err
	}
	if len(bytes.Trim(rest, "\x00")) != 0 || len(rest) > 1<<20 {
		return nil, errors.New("the answer has data after the end of its tar")
	}
	return out, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
