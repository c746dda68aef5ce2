package audit

import (
	"encoding/json"
	"testing"
)

// FuzzFastRecord: whatever the fast reader accepts as canonical, encoding/
// json reads as the same record (so audit verify's fast path accepts
// nothing the slow one would refuse, and reads it the same).
func FuzzFastRecord(f *testing.F) {
	for i := 0; i < 3; i++ {
		r := record(i)
		r.Seq, r.Prev, r.Reason = uint64(i+1), ZeroHash, "a \"quoted\"\n\ttab \u2028 \x01 reason ü"
		line, _ := r.Marshal()
		f.Add(line)
		r.Name, r.Voter = "core.db.tar.xz", "builder-1"
		line, _ = r.Marshal()
		f.Add(line)
		r.Name, r.Voter, r.NextKey = "", "", "F2BDA20E273E7207A1CE8CA5EF2E40F4016C8C35"
		line, _ = r.Marshal()
		f.Add(line)
		r.NextKey, r.HashedBy = "", HashedByClient
		line, _ = r.Marshal()
		f.Add(line)
	}
	f.Add([]byte(`{"seq":1,"time":"x\ud800"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		fr, ok := fastRecord(line)
		if !ok {
			return
		}
		canon, err := fr.Marshal()
		if err != nil || string(canon) != string(line) {
			return
		}
		var r Record
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("%q: fast path read %+v, encoding/json: %v", line, fr, err)
		}
		if r != *fr {
			t.Fatalf("%q: fast path %+v, encoding/json %+v", line, fr, r)
		}
	})
}

// TestFastNextKey: the fast path reads a transition's next_key.
func TestFastNextKey(t *testing.T) {
	r := record(0)
	r.Seq, r.Prev, r.NextKey = 1, ZeroHash, "F2BDA20E273E7207A1CE8CA5EF2E40F4016C8C35"
	line, _ := r.Marshal()
	fr, ok := fastRecord(line)
	if !ok || *fr != *r {
		t.Fatalf("fast path: %v %+v, want %+v", ok, fr, r)
	}
}
