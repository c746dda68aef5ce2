package agent

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// replayConn is a conn reading a recorded reply stream; what we send back
// (inquiry answers) is kept for inspection.
func replayConn(reply []byte) (*conn, *bytes.Buffer) {
	var sent bytes.Buffer
	return &conn{r: bufio.NewReaderSize(bytes.NewReader(reply), maxLine), w: &sent}, &sent
}

// FuzzReply feeds whole agent replies (seeds recorded from a real
// gpg-agent, see -capture-seeds in agent_test.go) through the Assuan reader
// and the sig-val parser. Whatever the bytes, the result is data within the
// limits, or one of the package's errors.
func FuzzReply(f *testing.F) {
	f.Add([]byte("OK Pleased to meet you, process 1234\n"))
	f.Fuzz(func(t *testing.T, reply []byte) {
		c, sent := replayConn(reply)
		data, err := c.readReply("PKSIGN", func(kw, _ string) ([]byte, bool) {
			return []byte("pass%\r\n"), kw == "PASSPHRASE"
		})
		if err != nil {
			var ae *AgentError
			if !errors.As(err, &ae) && !errors.Is(err, ErrProtocol) && !errors.Is(err, ErrAgentDead) {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		if len(data) > maxReply {
			t.Fatalf("%d bytes of data passed the limit", len(data))
		}
		for _, line := range bytes.SplitAfter(sent.Bytes(), []byte("\n")) {
			if len(line) > maxLine {
				t.Fatalf("sent a %d-byte line", len(line))
			}
		}
		sv, err := parseSigVal(data)
		if err != nil {
			return
		}
		if len(sv.s) == 0 || (sv.algo != "rsa" && len(sv.r) == 0) {
			t.Fatalf("sig-val without values: %+v", sv)
		}
	})
}

// realSigVals returns the data of the PKSIGN replies recorded from a real
// agent in FuzzReply's corpus.
func realSigVals(tb testing.TB) [][]byte {
	files, err := filepath.Glob("testdata/fuzz/FuzzReply/pksign-*")
	if err != nil || len(files) == 0 {
		tb.Fatalf("no recorded PKSIGN replies: %v", err)
	}
	var out [][]byte
	for _, name := range files {
		raw, err := os.ReadFile(name)
		if err != nil {
			tb.Fatal(err)
		}
		lit, ok := strings.CutPrefix(strings.TrimSpace(string(raw)), "go test fuzz v1\n[]byte(")
		if !ok {
			tb.Fatalf("%s: not a fuzz corpus file", name)
		}
		reply, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
		if err != nil {
			tb.Fatalf("%s: %v", name, err)
		}
		c, _ := replayConn([]byte(reply))
		data, err := c.readReply("PKSIGN", func(string, string) ([]byte, bool) { return []byte("x"), true })
		if err == nil && len(data) > 0 {
			out = append(out, data)
		}
	}
	return out
}

// FuzzSexp checks that a canonical S-expression that parses re-encodes to
// exactly the bytes it came from. Seeds: the sig-vals of a real agent.
func FuzzSexp(f *testing.F) {
	for _, sv := range realSigVals(f) {
		f.Add(sv)
	}
	f.Add([]byte("(7:sig-val(5:eddsa(1:r32:01234567890123456789012345678901)(1:s32:01234567890123456789012345678901)))"))
	f.Add([]byte("(7:sig-val(3:rsa(1:s3:\x01\x02\x03)))"))
	f.Add([]byte("(3:abc[4:hint]1:x)"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseSexp(b)
		if err != nil {
			return
		}
		if got := encodeSexp(nil, s); !bytes.Equal(got, b) {
			t.Fatalf("re-encoded %q as %q", b, got)
		}
	})
}

// FuzzEscape checks that what we send as D lines decodes to the input, and
// that no line passes the Assuan limit or carries a raw line break.
func FuzzEscape(f *testing.F) {
	f.Add([]byte("correct horse % battery\r staple\n"))
	f.Add(bytes.Repeat([]byte("%"), 2000))
	f.Fuzz(func(t *testing.T, data []byte) {
		out := appendData(nil, data)
		var got []byte
		for _, line := range bytes.SplitAfter(out, []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			if len(line) > maxLine || !bytes.HasPrefix(line, []byte("D ")) || bytes.IndexByte(line[:len(line)-1], '\n') >= 0 || bytes.IndexByte(line, '\r') >= 0 {
				t.Fatalf("bad D line %q", line)
			}
			d, err := unescape(line[2 : len(line)-1])
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, d...)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("round trip: %q became %q", data, got)
		}
	})
}

func encodeSexp(dst []byte, s *sexp) []byte {
	if !s.isList {
		dst = strconv.AppendInt(dst, int64(len(s.atom)), 10)
		dst = append(dst, ':')
		return append(dst, s.atom...)
	}
	dst = append(dst, '(')
	for _, e := range s.list {
		dst = encodeSexp(dst, e)
	}
	return append(dst, ')')
}
