package tarstream

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReader: no input panics or reads a body past its end, and whatever
// the reader accepts archive/tar reads as the same members with the same
// bodies, and only regular files. The seed corpus (testdata/fuzz/FuzzReader)
// is real GNU tar and bsdtar output, good and bad (testdata/mksamples.sh).
func FuzzReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, max uint8) {
		names, bodies, err := readAll(data, int(max))
		if err != nil {
			var te *Error
			if !errors.As(err, &te) {
				t.Fatalf("not a refusal: %v", err)
			}
			return
		}
		if max > 0 && len(names) > int(max) {
			t.Fatalf("%d members, max %d", len(names), max)
		}
		tr := tar.NewReader(bytes.NewReader(data))
		for i := range names {
			h, err := tr.Next()
			if err != nil {
				t.Fatalf("archive/tar: member %d: %v", i, err)
			}
			if h.Name != names[i] || (h.Typeflag != tar.TypeReg) {
				t.Fatalf("archive/tar reads %q (type %q), we read %q", h.Name, h.Typeflag, names[i])
			}
			b, err := io.ReadAll(tr)
			if err != nil || !bytes.Equal(b, bodies[i]) {
				t.Fatalf("archive/tar: body of %q differs (%v)", names[i], err)
			}
			if nameRefusal(names[i]) != "" {
				t.Fatalf("accepted name %q", names[i])
			}
		}
		if _, err := tr.Next(); err != io.EOF {
			t.Fatalf("archive/tar reads more members: %v", err)
		}
	})
}
