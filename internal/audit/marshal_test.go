package audit

import (
	"bytes"
	"encoding/json"
	"testing"
)

// stdMarshal is what Marshal replaces: encoding/json without HTML escaping.
func stdMarshal(t testing.TB, r *Record) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

var awkward = []string{
	"", "plain", `quote " and \ backslash`, "<html>&amp;", "tab\tnewline\nreturn\rbell\a",
	"\b\f\x00\x1f\x7f", "bad utf-8 \xff\xfe end", "\xe2\x80", "line sep \u2028 para sep \u2029",
	"ünïcödé ✓ 𝄞", "\ufffd", "/etc/passwd", "a\x00b",
}

func TestMarshalMatchesJSON(t *testing.T) {
	for i, s := range awkward {
		r := &Record{Seq: uint64(i) + 1, Time: s, User: s, SSHKey: s, Client: s, Command: s, Profile: s,
			Outcome: s, Reason: s, Name: s, Size: int64(i) - 3, Digest: s, HashedBy: s, Kind: s, Voter: s, Key: s, NextKey: s, Signature: s, Sandbox: s, Prev: s}
		got, _ := r.Marshal()
		if want := stdMarshal(t, r); !bytes.Equal(got, want) {
			t.Errorf("%q:\n got %s\nwant %s", s, got, want)
		}
		if seq, ok := recordSeq(got); !ok || seq != r.Seq {
			t.Errorf("%q: recordSeq = %d, %v; want %d", s, seq, ok, r.Seq)
		}
	}
}

// A record without a name (a single artifact) has no name field, as
// before the field existed, so old logs stay canonical; one with a name
// has it after reason.
func TestMarshalName(t *testing.T) {
	r := &Record{Seq: 1, Outcome: Signed}
	got, _ := r.Marshal()
	if bytes.Contains(got, []byte(`"name"`)) {
		t.Errorf("a record without a name: %s", got)
	}
	r.Name = "core.db"
	got, _ = r.Marshal()
	if !bytes.Contains(got, []byte(`"reason":"","name":"core.db","size":0`)) {
		t.Errorf("a record with a name: %s", got)
	}
	if want := stdMarshal(t, r); !bytes.Equal(got, want) {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

// TestMarshalNextKey: next_key follows key when a transition's next key
// signed too, and is absent otherwise, so that the lines of logs written
// before it keep their bytes.
func TestMarshalNextKey(t *testing.T) {
	r := &Record{Seq: 1, Outcome: Signed, Key: "AA", NextKey: "BB", Signature: "c2ln", Prev: ZeroHash}
	got, _ := r.Marshal()
	if want := `,"key":"AA","next_key":"BB","signature":"c2ln",`; !bytes.Contains(got, []byte(want)) {
		t.Errorf("got %s, want it to contain %s", got, want)
	}
	r.NextKey = ""
	got, _ = r.Marshal()
	if want := `,"key":"AA","signature":"c2ln",`; !bytes.Contains(got, []byte(want)) || bytes.Contains(got, []byte("next_key")) {
		t.Errorf("got %s, want it to contain %s and no next_key", got, want)
	}
}

// TestHashedByLine: hashed_by stands after digest when set and is left out
// otherwise, so the records of signstar-hashed requests keep their bytes.
func TestHashedByLine(t *testing.T) {
	r := &Record{Seq: 1, Digest: "sha512:ab", Kind: ""}
	plain, _ := r.Marshal()
	if bytes.Contains(plain, []byte("hashed_by")) {
		t.Fatalf("hashed_by written when empty: %s", plain)
	}
	r.HashedBy = HashedByClient
	got, _ := r.Marshal()
	if !bytes.Contains(got, []byte(`"digest":"sha512:ab","hashed_by":"client","kind":""`)) {
		t.Fatalf("%s", got)
	}
	if want := stdMarshal(t, r); !bytes.Equal(got, want) {
		t.Fatalf("\n got %s\nwant %s", got, want)
	}
	if fr, ok := fastRecord(got); !ok || *fr != *r {
		t.Fatalf("audit verify's fast path: %+v, %v", fr, ok)
	}
}

func TestRecordSeq(t *testing.T) {
	for in, want := range map[string]uint64{
		`{"seq":1,"time":""}`:                1,
		`{"seq":18446744073709551615,"x":1}`: 18446744073709551615,
		`{"seq":18446744073709551616,"x":1}`: 0, // overflows
		`{"seq":0,"x":1}`:                    0,
		`{"seq":01,"x":1}`:                   0,
		`{"seq":1}`:                          0, // not a record's shape
		`{"seq":1,"x":}`:                     0, // not JSON
		` {"seq":1,"x":1}`:                   0,
		`{"seq": 1,"x":1}`:                   0,
		`{"seq":-1,"x":1}`:                   0,
		`{"seq":1,"x":1}trailing`:            0,
		`{"seq":7,"time":"t","prev":"p"}`:    7,
	} {
		seq, ok := recordSeq([]byte(in))
		if ok != (want != 0) || seq != want {
			t.Errorf("recordSeq(%q) = %d, %v; want %d", in, seq, ok, want)
		}
	}
}

// FuzzMarshal holds Marshal to encoding/json for any field values, and
// recordSeq to the sequence number of any record Marshal writes.
func FuzzMarshal(f *testing.F) {
	for i, s := range awkward {
		f.Add(uint64(i), s, s, int64(i))
	}
	f.Fuzz(func(t *testing.T, seq uint64, a, b string, size int64) {
		r := &Record{Seq: seq, Time: a, User: b, SSHKey: a + b, Client: b, Command: a, Profile: b, Outcome: a,
			Reason: b + a, Size: size, Digest: a, HashedBy: b, Kind: b, Key: a, NextKey: b, Signature: b, Sandbox: a, Prev: b}
		got, _ := r.Marshal()
		if want := stdMarshal(t, r); !bytes.Equal(got, want) {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
		if s, ok := recordSeq(got); ok != (seq != 0) || s != seq {
			t.Fatalf("recordSeq = %d, %v; want %d", s, ok, seq)
		}
	})
}

// FuzzRecordSeq: whatever the last line of a log holds, recordSeq answers
// only for valid JSON that starts as a record does, with a sequence number.
func FuzzRecordSeq(f *testing.F) {
	for i, s := range awkward {
		line, _ := (&Record{Seq: uint64(i) + 1, Reason: s, Prev: ZeroHash}).Marshal()
		f.Add(line)
	}
	f.Add([]byte(`{"seq":0,"x":1}`))
	f.Add([]byte(`{"seq":18446744073709551616,"x":1}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		seq, ok := recordSeq(line)
		if ok && (seq == 0 || !json.Valid(line) || !bytes.HasPrefix(line, []byte(`{"seq":`))) {
			t.Fatalf("recordSeq(%q) = %d, true", line, seq)
		}
		if !ok && seq != 0 {
			t.Fatalf("recordSeq(%q) = %d, false", line, seq)
		}
	})
}
