package tarstream

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// readAll reads an archive through Reader: the members' names and bodies,
// or the error that stopped it.
func readAll(data []byte, max int) (names []string, bodies [][]byte, err error) {
	r := NewReader(bytes.NewReader(data), max)
	for {
		m, err := r.Next()
		if err == io.EOF {
			return names, bodies, nil
		}
		if err != nil {
			return names, bodies, err
		}
		body, err := io.ReadAll(r)
		if err != nil {
			return names, bodies, err
		}
		if int64(len(body)) != m.Size || m.Index != len(names)+1 {
			return names, bodies, errors.New("size or index does not match")
		}
		names = append(names, m.Name)
		bodies = append(bodies, body)
	}
}

var long = strings.Repeat("n", 150) + ".pkg.tar.zst"

// The samples are real GNU tar and bsdtar outputs (testdata/mksamples.sh).
var sampleTests = []struct {
	file    string
	names   []string
	refusal string // a substring of the error; "" when read
	trunc   bool
}{
	{"gnu-default.tar", []string{"a.txt", "empty", "b.bin", "sub/dir/c.txt"}, "", false},
	{"gnu-longname.tar", []string{"a.txt", long}, "", false},
	{"gnu-posix.tar", []string{"a.txt", long, "sub/dir/c.txt"}, "", false},
	{"gnu-ustar.tar", []string{"a.txt", "b.bin", "sub/dir/c.txt"}, "", false},
	{"bsdtar-default.tar", []string{"a.txt", "empty", "b.bin", long}, "", false},
	{"bsdtar-pax.tar", []string{"a.txt", "sub/dir/c.txt"}, "", false},
	{"bsdtar-ustar.tar", []string{"a.txt", "b.bin"}, "", false},
	{"empty.tar", nil, "", false},
	{"bad-symlink.tar", []string{"a.txt"}, `member "link": a symbolic link: only regular files are signed`, false},
	{"bad-hardlink.tar", []string{"a.txt"}, `member "hard": a hard link`, false},
	{"bad-device.tar", nil, `member "dev": a character device`, false},
	{"bad-fifo.tar", nil, `member "fifo": a FIFO`, false},
	{"bad-directory.tar", nil, `member "sub/": a directory`, false},
	{"bad-absolute.tar", nil, "an absolute name", false},
	{"bad-dotdot.tar", nil, `member "../a.txt": the name has a '..' component`, false},
	{"bad-dot.tar", nil, `member "./a.txt": the name has a '.' component`, false},
	{"bad-duplicate.tar", []string{"a.txt", "b.bin"}, `member "a.txt": a second member of the same name`, false},
	{"bad-sparse-gnu.tar", nil, `member "sparse": a GNU sparse file`, false},
	{"bad-sparse-pax.tar", nil, "a sparse file (pax keyword GNU.sparse.", false},
	{"bad-global.tar", nil, "a pax global extended header", false},
	{"bad-v7.tar", nil, "neither ustar, pax nor GNU tar", false},
	{"bad-truncated-body.tar", []string{"a.txt"}, `truncated archive: the member ends after 0 of its 1300 bytes`, true},
	{"bad-truncated-end.tar", []string{"a.txt"}, "truncated archive: the archive ends without its two end-of-archive blocks", true},
	{"bad-one-end-block.tar", []string{"a.txt"}, "truncated archive: the archive ends after one of its two end-of-archive blocks", true},
	{"bad-trailing.tar", []string{"a.txt"}, "trailing data after the end of the archive at byte 2048", false},
	{"bad-concatenated.tar", []string{"a.txt"}, "trailing data after the end of the archive", false},
}

func TestSamples(t *testing.T) {
	files, _ := filepath.Glob("testdata/samples/*.tar")
	if len(files) != len(sampleTests) {
		t.Errorf("%d samples, %d tests: every sample needs its test", len(files), len(sampleTests))
	}
	for _, tc := range sampleTests {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile("testdata/samples/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			names, _, err := readAll(data, 0)
			if strings.Join(names, "|") != strings.Join(tc.names, "|") {
				t.Errorf("members %q, want %q", names, tc.names)
			}
			if tc.refusal == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var te *Error
			if !errors.As(err, &te) || !strings.Contains(err.Error(), tc.refusal) {
				t.Fatalf("error %v, want one with %q", err, tc.refusal)
			}
			if IsTruncated(err) != tc.trunc {
				t.Errorf("IsTruncated = %v", !tc.trunc)
			}
		})
	}
}

func TestSampleBodies(t *testing.T) {
	data, err := os.ReadFile("testdata/samples/gnu-default.tar")
	if err != nil {
		t.Fatal(err)
	}
	_, bodies, err := readAll(data, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"hello\n", "", strings.Repeat("x", 1300), "deep\n"}
	for i, b := range bodies {
		if string(b) != want[i] {
			t.Errorf("body %d = %q", i, b)
		}
	}
}

func TestMaxMembers(t *testing.T) {
	data, _ := os.ReadFile("testdata/samples/gnu-default.tar")
	names, _, err := readAll(data, 3)
	if err == nil || !strings.Contains(err.Error(), `member "sub/dir/c.txt": more than max_files 3 members`) || len(names) != 3 {
		t.Fatalf("names %q, err %v", names, err)
	}
	if _, _, err := readAll(data, 4); err != nil {
		t.Fatal(err)
	}
}

// build is a tar made by archive/tar from hdrs, each with body "x" * Size.
func build(t *testing.T, hdrs ...*tar.Header) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
	}
	tw.Close()
	return buf.Bytes()
}

func TestNames(t *testing.T) {
	for name, want := range map[string]string{
		"a":                       "",
		"x86_64/core.db":          "",
		"ünïcödé.pkg":             "",
		"a//b":                    "empty component",
		"a/./b":                   "'.' component",
		"a/..":                    "'..' component",
		"..":                      "'..' component",
		"/etc/passwd":             "absolute name",
		"tab\tname":               "control character",
		"bad\xffutf8":             "not UTF-8",
		"c1\u0085":                "control character",
		strings.Repeat("a", 1025): "a name of 1025 bytes",
	} {
		data := build(t, &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: 1, Mode: 0o644, Format: tar.FormatPAX})
		_, _, err := readAll(data, 0)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("%q: %v, want %q", name, err, want)
		}
	}
}

func TestPAXKeywords(t *testing.T) {
	for k, want := range map[string]string{
		"SCHILY.xattr.user.x":     "",
		"LIBARCHIVE.creationtime": "",
		"comment":                 "",
		"GNU.sparse.major":        "sparse file",
		"SCHILY.realsize":         "sparse file",
		"linkpath":                "link target",
		"frobnicate":              `pax keyword "frobnicate" is not one signstar reads`,
	} {
		data := paxTar(k+"=1", "f", 3)
		_, _, err := readAll(data, 0)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("%q: %v, want %q", k, err, want)
		}
	}
}

func TestLargeSizeFields(t *testing.T) {
	// A size beyond ustar's 8 GiB octal field, as pax (bsdtar, GNU
	// --format=posix) and GNU's base-256 give it: only the header is built,
	// and the body is cut short, which is what the reader must say.
	for _, f := range []tar.Format{tar.FormatPAX, tar.FormatGNU} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "big", Size: 9 << 30, Mode: 0o644, Format: f}); err != nil {
			t.Fatal(err)
		}
		buf.WriteString("abc")
		r := NewReader(&buf, 0)
		m, err := r.Next()
		if err != nil || m.Size != 9<<30 {
			t.Fatalf("%v: %+v %v", f, m, err)
		}
		_, err = io.ReadAll(r)
		if !IsTruncated(err) || !strings.Contains(err.Error(), "after 3 of its 9663676416 bytes") {
			t.Errorf("%v: %v", f, err)
		}
	}
}

func TestBadBlocks(t *testing.T) {
	good, _ := os.ReadFile("testdata/samples/gnu-ustar.tar")
	flip := func(off int, b byte) []byte {
		d := bytes.Clone(good)
		d[off] = b
		return d
	}
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"checksum":       {flip(0, 'A'), "not a tar header (bad checksum)"},
		"padding":        {flip(512+100, 'z'), `member "a.txt": the padding after the member's body is not zeros`},
		"zero then data": {append(append(bytes.Clone(good[:len(good)-1024]), make([]byte, 512)...), good[:512]...), "a zero block at byte"},
		"unaligned end":  {append(bytes.Clone(good), 0), "does not end on a 512-byte block"},
		"long padding":   {append(bytes.Clone(good), make([]byte, MaxPadding+512)...), "trailing data"},
	} {
		_, _, err := readAll(tc.data, 0)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	// Padding of up to MaxPadding is the last record's.
	if _, _, err := readAll(append(bytes.Clone(good), make([]byte, MaxPadding)...), 0); err != nil {
		t.Errorf("padding: %v", err)
	}
}

// An error stays: a caller that goes on gets it again.
func TestErrorSticks(t *testing.T) {
	data, _ := os.ReadFile("testdata/samples/bad-symlink.tar")
	r := NewReader(bytes.NewReader(data), 0)
	r.Next()
	_, err1 := r.Next()
	_, err2 := r.Next()
	if err1 == nil || err1 != err2 {
		t.Fatalf("%v, then %v", err1, err2)
	}
	if _, err := r.Read(make([]byte, 1)); err != err1 {
		t.Fatalf("Read after the error: %v", err)
	}
}

// The underlying reader's errors come back as they are, not as refusals.
func TestReadErrorPassesThrough(t *testing.T) {
	data, _ := os.ReadFile("testdata/samples/gnu-ustar.tar")
	boom := errors.New("boom")
	r := NewReader(io.MultiReader(bytes.NewReader(data[:2000]), iotestErr{boom}), 0)
	r.Next()
	r.Next()
	_, err := io.ReadAll(r)
	if err != boom {
		t.Fatalf("%v", err)
	}
}

type iotestErr struct{ err error }

func (e iotestErr) Read([]byte) (int, error) { return 0, e.err }

func TestWriteSignatures(t *testing.T) {
	sigs := []Signature{{"a.txt", []byte("sig-a")}, {long, []byte("sig-long")}, {"x/y", nil}}
	out := WriteSignatures(sigs, SuffixBinary, time.Unix(1700000000, 5e8))
	if len(out)%recordSize != 0 {
		t.Errorf("%d bytes: not whole records", len(out))
	}
	// What signstar writes, its own reader reads back.
	names, bodies, err := readAll(out, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range sigs {
		if names[i] != s.Name+".sig" || !bytes.Equal(bodies[i], s.Data) {
			t.Errorf("member %d: %q %q", i, names[i], bodies[i])
		}
	}
}

// block is a ustar header block by hand, for what archive/tar will not
// write.
func block(name string, typ byte, size int) []byte {
	h := make([]byte, 512)
	copy(h, name)
	copy(h[100:], "0000644\x00")
	copy(h[108:], "0000000\x00")
	copy(h[116:], "0000000\x00")
	copy(h[124:], fmt.Sprintf("%011o\x00", size))
	copy(h[136:], "00000000000\x00")
	h[156] = typ
	copy(h[257:], "ustar\x0000")
	copy(h[148:], "        ")
	sum := 0
	for _, c := range h {
		sum += int(c)
	}
	copy(h[148:], fmt.Sprintf("%06o\x00 ", sum))
	return h
}

func padded(b []byte) []byte { return append(b, make([]byte, (512-len(b)%512)%512)...) }

// paxTar is an archive of one member, name with size bytes of "x", after a
// pax header of one record "key=value".
func paxTar(kv, name string, size int) []byte {
	rec := kv + "\n"
	for n := len(rec) + 2; ; n++ {
		if s := fmt.Sprintf("%d %s", n, rec); len(s) == n {
			rec = s
			break
		}
	}
	var b []byte
	b = append(b, block("PaxHeaders/"+name, 'x', len(rec))...)
	b = append(b, padded([]byte(rec))...)
	b = append(b, block(name, '0', size)...)
	b = append(b, padded(bytes.Repeat([]byte("x"), size))...)
	return append(b, make([]byte, 1024)...)
}

func TestPAXRecordsMalformed(t *testing.T) {
	hdr := func(data string) []byte {
		var b []byte
		b = append(b, block("PaxHeaders/f", 'x', len(data))...)
		b = append(b, padded([]byte(data))...)
		b = append(b, block("f", '0', 0)...)
		return append(b, make([]byte, 1024)...)
	}
	for data, want := range map[string]string{
		"11 path=ab\n":             "",
		"12 path=ab\n":             "length is wrong",
		"011 path=ab\n":            "length is wrong",
		"path=ab\n":                "without a length",
		"6 =ab\n":                  "without a keyword",
		"7 path\n":                 "without a keyword",
		"11 path=ab\x00":           "length is wrong",
		"11 size=12\n":             "truncated archive",
		"11 size=-1\n":             "invalid size",
		"11 path=ab\n11 path=cd\n": "path twice",
	} {
		_, _, err := readAll(hdr(data), 0)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("%q: %v, want %q", data, err, want)
		}
	}
}
