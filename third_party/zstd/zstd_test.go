package zstd

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	kzstd "github.com/klauspost/compress/zstd"

	"github.com/signstar/signstar/internal/testsupport/testenv"
)

// policyWindow is internal/policy's window limit, the one that matters.
const policyWindow = 32 << 20

// decode decompresses b with a window limit.
func decode(b []byte, maxWindow int) ([]byte, error) {
	return io.ReadAll(NewReaderWindow(bytes.NewReader(b), maxWindow))
}

// decodeKlauspost decompresses b with klauspost's decoder as policy used it.
func decodeKlauspost(b []byte, maxWindow int) ([]byte, error) {
	d, err := kzstd.NewReader(bytes.NewReader(b),
		kzstd.WithDecoderConcurrency(1),
		kzstd.WithDecoderLowmem(true),
		kzstd.WithDecoderMaxWindow(uint64(maxWindow)))
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return io.ReadAll(d)
}

var (
	cliMu    sync.Mutex
	cliCache = map[string][]byte{}
)

// cli runs the zstd program on in. From a pipe (file false) zstd declares
// the window its level or --long asks for; from a file it knows the size,
// shrinks the window to it and writes single-segment frames. Results are
// kept for the other tests: the high levels are slow.
func cli(t testing.TB, in []byte, file bool, args ...string) []byte {
	t.Helper()
	zstd := testenv.NeedTool(t, "zstd", "zstd")
	key := fmt.Sprintf("%x %v %q", sha256.Sum256(in), file, args)
	cliMu.Lock()
	defer cliMu.Unlock()
	if out, ok := cliCache[key]; ok {
		return out
	}
	args = append([]string{"-q", "-c"}, args...)
	cmd := exec.Command(zstd, args...)
	if file {
		p := filepath.Join(t.TempDir(), "in")
		if err := os.WriteFile(p, in, 0o600); err != nil {
			t.Fatal(err)
		}
		cmd.Args = append(cmd.Args, p)
	} else {
		cmd.Stdin = bytes.NewReader(in)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("zstd %s: %v: %s", strings.Join(args, " "), err, stderr.Bytes())
	}
	cliCache[key] = out
	return out
}

// skippable is a skippable frame (RFC 8878 3.1.2) holding payload; zstd
// cannot write one.
func skippable(magicLow byte, payload []byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, 0x184d2a50|uint32(magicLow&0xf))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

// declaredWindow is the window a frame header at b asks for: the
// Window_Descriptor, or the content size of a single-segment frame.
func declaredWindow(b []byte) uint64 {
	fhd := b[4]
	if fhd&(1<<5) == 0 {
		wd := b[5]
		base := uint64(1) << (10 + wd>>3)
		return base + base/8*uint64(wd&7)
	}
	off := 5 + []int{0, 1, 2, 4}[fhd&3]
	switch fhd >> 6 {
	case 0:
		return uint64(b[off])
	case 1:
		return 256 + uint64(binary.LittleEndian.Uint16(b[off:]))
	case 2:
		return uint64(binary.LittleEndian.Uint32(b[off:]))
	}
	return binary.LittleEndian.Uint64(b[off:])
}

var words = strings.Fields(`the package signs a database file with key of and to
in is for on that by this pacman makepkg depends license url arch x86_64 any
version release build description optional provides conflicts replaces`)

// text is deterministic word salad with some line structure.
func text(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
		if r.IntN(12) == 0 {
			b.WriteByte('\n')
		} else {
			b.WriteByte(' ')
		}
	}
	return b.Bytes()[:n]
}

func random(seed uint64, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed)}).Read(b)
	return b
}

type input struct {
	name string
	data []byte
}

var inputs = sync.OnceValue(func() []input {
	big := append(text(2, 900<<10), random(3, 300<<10)...)
	big = append(big, text(4, 400<<10)...) // 1.6 MiB
	return []input{
		{"empty", nil},
		{"byte", []byte{'x'}},
		{"text", text(1, 200<<10)},
		{"random", random(1, 256<<10)},
		{"repetitive", bytes.Repeat([]byte("pkgname = hello\npkgver = 1.0-1\n"), 50000)}, // 1.5 MiB
		{"big", big},
	}
})

// stream is one compressed test stream and what it must decode to.
type stream struct {
	name   string
	data   []byte
	want   []byte
	refuse bool // the declared window is above policyWindow
}

// cliStreams compresses every input at every setting the task names.
func cliStreams(t testing.TB) []stream {
	t.Helper()
	var out []stream
	for _, in := range inputs() {
		for _, level := range [][]string{{"-1"}, {"-19"}, {"--ultra", "-20"}, {"--long=25"}, {"--long=27"}} {
			for _, check := range [][]string{nil, {"--no-check"}} {
				for _, file := range []bool{false, true} {
					if file && check != nil {
						continue
					}
					args := append(append([]string{}, level...), check...)
					c := cli(t, in.data, file, args...)
					out = append(out, stream{
						name:   fmt.Sprintf("%s/%s/file=%v", in.name, strings.Join(args, " "), file),
						data:   c,
						want:   in.data,
						refuse: declaredWindow(c) > policyWindow,
					})
				}
			}
		}
	}
	return out
}

// farStream is data whose second half repeats the first 9 MiB back: past
// Go's old 8 MiB cap, within the 32 MiB window of --long=25.
func farStream(t testing.TB) stream {
	half := random(9, 9<<20)
	data := append(bytes.Clone(half), half...)
	return stream{name: "far/-1 --long=25", data: cli(t, data, false, "-1", "--long=25"), want: data}
}

// multiStreams are concatenated frames and skippable frames.
func multiStreams(t testing.TB) []stream {
	in := inputs()
	txt, rnd, rep := in[2].data, in[3].data, in[4].data
	a := cli(t, txt, false, "-1")
	b := cli(t, rnd, false, "--ultra", "-20", "--no-check")
	c := cli(t, rep, true, "-19")
	e := cli(t, nil, false)
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	skip := skippable(0, []byte("signstar skippable payload"))
	return []stream{
		{name: "concat3", data: join(a, b, c), want: join(txt, rnd, rep)},
		{name: "concat-empty", data: join(e, a, e, e, c, e), want: join(txt, rep)},
		{name: "skip-first", data: join(skip, a), want: txt},
		{name: "skip-between", data: join(a, skip, skippable(0xf, nil), b), want: join(txt, rnd)},
		{name: "skip-last", data: join(a, b, skippable(7, random(5, 70000))), want: join(txt, rnd)},
		{name: "skip-only", data: join(skip, skippable(1, nil)), want: nil},
	}
}

func allStreams(t testing.TB) []stream {
	s := cliStreams(t)
	s = append(s, farStream(t))
	return append(s, multiStreams(t)...)
}

// TestCLI: whatever the zstd program writes decodes to the original, unless
// its window is above the limit, when it fails with ErrWindowSize.
func TestCLI(t *testing.T) {
	var refused, farAccepted int
	for _, s := range allStreams(t) {
		got, err := decode(s.data, policyWindow)
		switch {
		case s.refuse:
			if !errors.Is(err, ErrWindowSize) {
				t.Errorf("%s: window %d: err %v, want ErrWindowSize", s.name, declaredWindow(s.data), err)
			}
			refused++
		case err != nil:
			t.Errorf("%s: %v", s.name, err)
		case !bytes.Equal(got, s.want):
			t.Errorf("%s: got %d bytes, want %d, differing", s.name, len(got), len(s.want))
		default:
			if declaredWindow(s.data) > 8<<20 {
				farAccepted++
			}
		}
	}
	// The cases that matter are there: --long=27 from a pipe refused,
	// windows over Go's old 8 MiB cap accepted.
	if refused < 10 || farAccepted < 10 {
		t.Errorf("%d streams refused, %d over 8 MiB accepted", refused, farAccepted)
	}
}

// TestWindowLimit: the limit is the declared window, exactly.
func TestWindowLimit(t *testing.T) {
	in := inputs()[2].data
	for _, tc := range []struct {
		args  []string
		limit int
		ok    bool
	}{
		{[]string{"--long=20"}, 1 << 20, true},
		{[]string{"--long=20"}, 1<<20 - 1, false},
		{[]string{"--long=25"}, 32 << 20, true},
		{[]string{"--long=26"}, 32 << 20, false},
		{[]string{"--long=27"}, 32 << 20, false},
	} {
		c := cli(t, in, false, tc.args...)
		got, err := decode(c, tc.limit)
		if tc.ok && (err != nil || !bytes.Equal(got, in)) {
			t.Errorf("%v limit %d: %v", tc.args, tc.limit, err)
		}
		if !tc.ok && !errors.Is(err, ErrWindowSize) {
			t.Errorf("%v limit %d: %v, want ErrWindowSize", tc.args, tc.limit, err)
		}
	}
	// Single-segment: the content size is the window.
	c := cli(t, in, true, "-1")
	if _, err := decode(c, len(in)); err != nil {
		t.Errorf("single segment, limit = size: %v", err)
	}
	if _, err := decode(c, len(in)-1); !errors.Is(err, ErrWindowSize) {
		t.Errorf("single segment, limit = size-1: %v", err)
	}
}

// TestFlippedByte: a changed byte in a checksummed stream is an error,
// never a panic or wrong output. A few changes mean the same data (a larger
// window; in periodic input, an offset a multiple of the period further
// back) and may decode, to the original.
func TestFlippedByte(t *testing.T) {
	in := inputs()
	for _, x := range []struct {
		in   int
		args []string
	}{{2, []string{"-19"}}, {3, []string{"-1"}}, {4, []string{"--ultra", "-20"}}, {2, []string{"-1"}}} {
		name := in[x.in].name + " " + strings.Join(x.args, " ")
		orig, want := cli(t, in[x.in].data, false, x.args...), in[x.in].data
		var tries, same int
		for pos := 0; pos < len(orig); pos += max(1, len(orig)/120) {
			for _, mask := range []byte{0x01, 0x80, 0xff} {
				bad := bytes.Clone(orig)
				bad[pos] ^= mask
				got, err := decode(bad, policyWindow)
				kgot, kerr := decodeKlauspost(bad, policyWindow)
				if (err == nil) != (kerr == nil) || (err == nil && !bytes.Equal(got, kgot)) {
					t.Errorf("%s: byte %d ^ %#x: go %v, klauspost %v", name, pos, mask, err, kerr)
				}
				tries++
				if err == nil {
					if !bytes.Equal(got, want) {
						t.Errorf("%s: byte %d ^ %#x: wrong output without error", name, pos, mask)
					}
					same++
				}
			}
		}
		if same*20 > tries {
			t.Errorf("%s: %d of %d changed streams decoded", name, same, tries)
		}
	}
}

// TestDifferential: Go's decoder and klauspost's agree, output or error, on
// every stream above and on truncations of them. (One known difference, no
// input at all, is an error here, as upstream, and nothing to klauspost.)
func TestDifferential(t *testing.T) {
	streams := allStreams(t)
	streams = append(streams,
		stream{name: "magic only", data: []byte{0x28, 0xb5, 0x2f, 0xfd}},
		stream{name: "garbage after", data: append(cli(t, []byte("x"), false), "junk"...)},
	)
	for _, s := range streams {
		check := func(name string, data []byte) {
			got, err := decode(data, policyWindow)
			kgot, kerr := decodeKlauspost(data, policyWindow)
			if (err == nil) != (kerr == nil) || !bytes.Equal(got, kgot) && err == nil {
				t.Errorf("%s: go %d bytes, %v; klauspost %d bytes, %v", name, len(got), err, len(kgot), kerr)
			}
		}
		check(s.name, s.data)
		if len(s.data) < 1<<20 {
			for _, cut := range []int{1, 5, 9, len(s.data) / 2, len(s.data) - 4, len(s.data) - 1} {
				if cut > 0 && cut < len(s.data) {
					check(fmt.Sprintf("%s/cut %d", s.name, cut), s.data[:cut])
				}
			}
		}
	}
}

// TestReset: a Reader is reusable, and keeps its limit.
func TestReset(t *testing.T) {
	in := inputs()[2].data
	ok := cli(t, in, false, "--long=20")
	r := NewReaderWindow(bytes.NewReader(ok), 1<<20)
	for i := range 3 {
		r.Reset(bytes.NewReader(ok))
		if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, in) {
			t.Fatalf("round %d: %v", i, err)
		}
	}
	r.Reset(bytes.NewReader(cli(t, in, false, "--long=21")))
	if _, err := io.ReadAll(r); !errors.Is(err, ErrWindowSize) {
		t.Fatalf("after Reset: %v, want ErrWindowSize", err)
	}
}
