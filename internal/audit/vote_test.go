package audit

import (
	"bytes"
	"encoding/binary"
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
	// RecordOf's fast reader reads a vote's voter, without encoding/json.
	v := *good
	v.Seq, v.Prev = 1, ZeroHash
	vl, _ := v.Marshal()
	if r, ok := fastRecord(vl); !ok || r.Voter != v.Voter || r.Digest != v.Digest || r.Profile != v.Profile {
		t.Errorf("fastRecord(%s) = %+v, %v", vl, r, ok)
	}
	// Without a voter the field is absent: old records keep their bytes.
	line, _ := record(1).Marshal()
	if bytes.Contains(line, []byte("voter")) {
		t.Errorf("%s", line)
	}
}
