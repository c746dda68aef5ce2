package audit

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestVotesIndexed: votes are chained by PrevVote and nothing else is;
// the refusal chain (PrevNonSigned) skips them; RecordOf reads a vote's
// record back, and an index rebuilt from the log is the same bytes.
func TestVotesIndexed(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	digest := "sha256:" + strings.Repeat("ab", 32)
	vote := func(voter string) *Record {
		r := record(0)
		r.Outcome, r.Voter, r.Digest, r.Reason = Vote, voter, digest, "vote recorded"
		return r
	}
	for _, r := range []*Record{record(1), vote("a"), record(3), vote("b"), record(5)} {
		if err := l.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := l.Lock()
	if err != nil {
		t.Fatal(err)
	}
	last, _ := tx.LastEntry()
	if last.PrevVote != 4 || last.PrevNonSigned != 3 || last.IsVote {
		t.Errorf("last entry %+v", last)
	}
	e4, err := tx.Entry(4)
	if err != nil || !e4.IsVote || e4.Outcome != Vote || e4.PrevVote != 2 || e4.PrevNonSigned != 3 {
		t.Errorf("entry 4 %+v, %v", e4, err)
	}
	e3, _ := tx.Entry(3)
	if e3.PrevNonSigned != 1 || e3.PrevVote != 2 {
		t.Errorf("entry 3 %+v: the refusal chain must skip the vote", e3)
	}
	r, err := tx.RecordOf(e4)
	if err != nil || r.Voter != "b" || r.Digest != digest || r.Seq != 4 {
		t.Errorf("RecordOf(4) = %+v, %v", r, err)
	}
	bad := e4
	bad.LineHash[0] ^= 1
	if _, err := tx.RecordOf(bad); err == nil {
		t.Error("RecordOf accepted an entry that does not name its line")
	}
	tx.Unlock()
	l.Close()

	want, _ := os.ReadFile(IndexPath(path))
	os.WriteFile(IndexPath(path), []byte("junk"), 0o600)
	if res, err := Rebuild(path, time.Second); err != nil || !res.Replaced || res.Records != 5 {
		t.Fatalf("rebuild: %+v, %v", res, err)
	}
	if got, _ := os.ReadFile(IndexPath(path)); !bytes.Equal(got, want) {
		t.Error("rebuilt index differs from the one kept with the log")
	}
}

// A version 1 index (before votes) is refused, naming the rebuild; the
// rebuild writes version 2.
func TestIndexVersion1(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 2)
	l.Close()
	idx, _ := os.ReadFile(IndexPath(path))
	v1 := bytes.Clone(idx)
	v1[32] = 1
	binary.LittleEndian.PutUint32(v1[124:], crc32.Checksum(v1[:124], crcTable))
	os.WriteFile(IndexPath(path), v1, 0o600)
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "of another version") || !strings.Contains(err.Error(), "signstar audit rebuild") {
		t.Fatalf("open with a version 1 index: %v", err)
	}
	if res, err := Rebuild(path, time.Second); err != nil || !res.Replaced {
		t.Fatalf("rebuild: %+v, %v", res, err)
	}
	if got, _ := os.ReadFile(IndexPath(path)); !bytes.Equal(got, idx) {
		t.Error("rebuilt index differs")
	}
}

// Verify: a vote needs a reason, a voter, a digest and a profile, and no
// signature; refusals and failures have no voter.
func TestVerifyVotes(t *testing.T) {
	good := record(1)
	good.Outcome, good.Voter, good.Digest = Vote, "SHA256:x", "sha256:00"
	for _, c := range []struct {
		edit func(r *Record)
		ok   bool
	}{
		{func(r *Record) {}, true},
		{func(r *Record) { r.Voter = "" }, false},
		{func(r *Record) { r.Reason = "" }, false},
		{func(r *Record) { r.Digest = "" }, false},
		{func(r *Record) { r.Profile = "" }, false},
		{func(r *Record) { r.Signature = "AAAA" }, false},
		{func(r *Record) { r.Outcome = Refused }, false},
		{func(r *Record) { r.Outcome = Failed }, false},
	} {
		r := *good
		c.edit(&r)
		r.Seq, r.Prev = 1, ZeroHash
		line, _ := r.Marshal()
		_, err := Verify(bytes.NewReader(append(line, '\n')))
		if (err == nil) != c.ok {
			t.Errorf("%s: %v", line, err)
		}
	}
	// Without a voter the field is absent: old records keep their bytes.
	line, _ := record(1).Marshal()
	if bytes.Contains(line, []byte("voter")) {
		t.Errorf("%s", line)
	}
}

// voteFields reads what encoding/json reads of every record Marshal
// writes, or declines.
func TestVoteFields(t *testing.T) {
	for i, s := range awkward {
		r := &Record{Seq: uint64(i) + 1, Command: `,"voter":"SHA256:forged",` + s, Profile: s, Digest: s, Voter: s, Reason: s, Prev: s}
		line, _ := r.Marshal()
		got, ok := voteFields(line)
		if !ok {
			if !strings.ContainsAny(s, "\"\\\x00\x01\x1f\x7f\b\f\n\r\t") && utf8ValidNoSep(s) {
				t.Errorf("%q: declined", s)
			}
			continue
		}
		if got.Seq != r.Seq || got.Profile != r.Profile || got.Digest != r.Digest || got.Voter != r.Voter {
			t.Errorf("%q: got %+v", s, got)
		}
	}
}

func utf8ValidNoSep(s string) bool {
	return !strings.ContainsAny(s, "\u2028\u2029") && strings.ToValidUTF8(s, "\ufffd") == s && !strings.Contains(s, "\ufffd")
}

// FuzzVoteFields: on any line, voteFields agrees with encoding/json where
// it answers, and never panics.
func FuzzVoteFields(f *testing.F) {
	for i, s := range awkward {
		r := &Record{Seq: uint64(i) + 1, Profile: "packages", Digest: "sha256:" + strings.Repeat("ab", 32), Voter: s, Command: s, Outcome: Vote}
		line, _ := r.Marshal()
		f.Add(line)
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		got, ok := voteFields(line)
		if !ok {
			return
		}
		var want Record
		if err := json.Unmarshal(line, &want); err != nil {
			return // recordSeq took a valid JSON prefix shape; not a record
		}
		if canon, _ := want.Marshal(); !bytes.Equal(canon, line) {
			return // only lines as Marshal writes them reach it (RecordOf checks the line's hash)
		}
		if got.Seq != want.Seq || got.Profile != want.Profile || got.Digest != want.Digest || got.Voter != want.Voter {
			t.Fatalf("%s: got %+v, json %+v", line, got, want)
		}
	})
}
