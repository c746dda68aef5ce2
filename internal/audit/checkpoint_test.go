package audit

import (
	"bytes"
	"crypto/sha256"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func testKey(t testing.TB, origin string) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := NewCheckpointKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseSignerKey([]byte(skey + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := ParseVerifierKey([]byte(vkey + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := VerifierOf([]byte(skey)); err != nil || got != vkey {
		t.Fatalf("VerifierOf: %q, %v; want %q", got, err, vkey)
	}
	return s, v
}

// TestCheckpointRoundTrip: a signed checkpoint opens with the verifier key
// and no other; its text is C2SP's three lines.
func TestCheckpointRoundTrip(t *testing.T) {
	s, v := testKey(t, "example.org/signstar")
	c := Checkpoint{Origin: "example.org/signstar", Size: 42, Root: tlog.RecordHash([]byte("x"))}
	msg, err := SignCheckpoint(c, s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(msg), "example.org/signstar\n42\n") || !strings.Contains(string(msg), "\n\n— example.org/signstar ") {
		t.Fatalf("checkpoint %q", msg)
	}
	got, err := OpenCheckpoint(msg, v)
	if err != nil || got != c {
		t.Fatalf("open: %+v, %v", got, err)
	}
	_, other := testKey(t, "example.org/signstar")
	if _, err := OpenCheckpoint(msg, other); err == nil {
		t.Fatal("opened with another key of the same name")
	}
	s2, _ := testKey(t, "example.org/other")
	if _, err := SignCheckpoint(c, s2); err == nil {
		t.Fatal("signed with a key named for another origin")
	}
	for _, text := range []string{
		"example.org/signstar\n042\nAAAA\n",
		"example.org/signstar\n42\n" + strings.Repeat("A", 43) + "=\nextension\n",
		"example.org/signstar\n-1\n" + strings.Repeat("A", 43) + "=\n",
		"ex ample\n1\n" + strings.Repeat("A", 43) + "=\n",
	} {
		if _, err := ParseCheckpointText(text); err == nil {
			t.Errorf("accepted %q", text)
		}
	}
}

// TestRootBefore: the root of the records before a leaf, read off its
// inclusion proof, is the tree's root at that size, for every leaf of
// every tree up to 70.
func TestRootBefore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	appendN(t, l, 70)
	tx, err := l.Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Unlock()
	for size := int64(1); size <= 70; size++ {
		for seq := uint64(1); seq <= uint64(size); seq++ {
			p, err := tx.ProveRecord(seq, size)
			if err != nil {
				t.Fatal(err)
			}
			got, err := RootBefore(p, size, int64(seq-1))
			want, _ := tx.TreeRoot(int64(seq - 1))
			if err != nil || got != want {
				t.Fatalf("size %d seq %d: %x, %v; want %x", size, seq, got, err, want)
			}
		}
	}
	if r, _ := RootBefore(nil, 1, 0); r != tlog.Hash(sha256.Sum256(nil)) {
		t.Fatal("the root before the first record is not the empty tree's")
	}
}

// TestProofRoundTrip: Marshal and ParseProof, ParseConsistency agree.
func TestProofRoundTrip(t *testing.T) {
	p := &Proof{Record: []byte(`{"seq":3}`), Index: 2, Hashes: tlog.RecordProof{tlog.RecordHash([]byte("a")), tlog.RecordHash([]byte("b"))}, Checkpoint: []byte("cp\n\n— x y\n")}
	b := p.Marshal()
	q, err := ParseProof(b)
	if err != nil || !bytes.Equal(q.Marshal(), b) {
		t.Fatalf("proof: %+v, %v", q, err)
	}
	c := &Consistency{Old: 7, Proof: tlog.TreeProof{tlog.RecordHash([]byte("a"))}, Checkpoint: []byte("cp\n")}
	d, err := ParseConsistency(c.Marshal())
	if err != nil || !bytes.Equal(d.Marshal(), c.Marshal()) {
		t.Fatalf("consistency: %+v, %v", d, err)
	}
}

// FuzzCheckpoint: any bytes through OpenCheckpoint and ParseCheckpointText
// without a panic; what opens was signed, and its text is canonical.
func FuzzCheckpoint(f *testing.F) {
	s, v := testKey(f, "example.org/signstar")
	for _, n := range []int64{0, 1, 1000000} {
		msg, _ := SignCheckpoint(Checkpoint{Origin: "example.org/signstar", Size: n, Root: tlog.RecordHash([]byte{byte(n)})}, s)
		f.Add(msg)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := ParseCheckpointText(string(b)); err == nil && c.Text() != string(b) {
			t.Fatalf("text %q parses as %+v, which is %q", b, c, c.Text())
		}
		c, err := OpenCheckpoint(b, v)
		if err != nil {
			return
		}
		if c.Origin != "example.org/signstar" || !bytes.HasPrefix(b, []byte(c.Text()+"\n")) {
			t.Fatalf("opened %q as %+v", b, c)
		}
	})
}

// FuzzProof: a proof file parses or is refused, never a panic; what parses
// marshals back to the same bytes.
func FuzzProof(f *testing.F) {
	s, _ := testKey(f, "example.org/signstar")
	cp, _ := SignCheckpoint(Checkpoint{Origin: "example.org/signstar", Size: 3, Root: tlog.RecordHash([]byte("r"))}, s)
	f.Add((&Proof{Record: []byte(`{"seq":2}`), Index: 1, Hashes: tlog.RecordProof{tlog.RecordHash([]byte("a")), tlog.RecordHash([]byte("b"))}, Checkpoint: cp}).Marshal())
	f.Add((&Proof{Record: []byte(`{"seq":1}`), Index: 0, Checkpoint: cp}).Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseProof(b)
		if err != nil {
			return
		}
		if !bytes.Equal(p.Marshal(), b) {
			t.Fatalf("%q parses as %+v, which marshals as %q", b, p, p.Marshal())
		}
		RootBefore(p.Hashes, p.Index+1, p.Index)
	})
}

// FuzzConsistency: likewise for checkpoint --from's reply.
func FuzzConsistency(f *testing.F) {
	s, _ := testKey(f, "example.org/signstar")
	cp, _ := SignCheckpoint(Checkpoint{Origin: "example.org/signstar", Size: 9, Root: tlog.RecordHash([]byte("r"))}, s)
	f.Add((&Consistency{Old: 4, Proof: tlog.TreeProof{tlog.RecordHash([]byte("a"))}, Checkpoint: cp}).Marshal())
	f.Add((&Consistency{Old: 0, Checkpoint: cp}).Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConsistency(b)
		if err != nil {
			return
		}
		if !bytes.Equal(c.Marshal(), b) {
			t.Fatalf("%q parses as %+v, which marshals as %q", b, c, c.Marshal())
		}
	})
}

// FuzzNotation: ParseNotation accepts only what FormatNotation writes.
func FuzzNotation(f *testing.F) {
	f.Add(FormatNotation(1, tlog.Hash(sha256.Sum256(nil))))
	f.Add(FormatNotation(1234567, tlog.RecordHash([]byte("x"))))
	f.Add("seq=01 root=")
	f.Fuzz(func(t *testing.T, s string) {
		seq, root, err := ParseNotation(s)
		if err == nil && FormatNotation(seq, root) != s {
			t.Fatalf("%q parses as %d %x", s, seq, root)
		}
	})
}
