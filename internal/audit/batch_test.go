package audit

import (
	"path/filepath"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// A batch's commitments are those the records would have met one Append
// at a time: each staged record's seq and the root of every record before
// it, staged ones included.
func TestBatchCommitments(t *testing.T) {
	dir := t.TempDir()
	one, err := Open(filepath.Join(dir, "one.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	all, err := Open(filepath.Join(dir, "all.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	appendN(t, one, 5)
	appendN(t, all, 5)
	type commitment struct {
		seq  uint64
		root tlog.Hash
	}
	var want []commitment
	for i := 0; i < 40; i++ {
		tx, err := one.Lock()
		if err != nil {
			t.Fatal(err)
		}
		seq, root, err := tx.Commitment()
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, commitment{seq, root})
		if err := tx.Append(record(i)); err != nil {
			t.Fatal(err)
		}
		tx.Unlock()
	}
	tx, err := all.Lock()
	if err != nil {
		t.Fatal(err)
	}
	b := tx.NewBatch()
	for i := 0; i < 40; i++ {
		seq, root, err := b.Commitment()
		if err != nil || seq != want[i].seq || root != want[i].root {
			t.Fatalf("record %d: commitment %d %x (%v), want %d %x", i, seq, root, err, want[i].seq, want[i].root)
		}
		if err := b.Add(record(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Append(); err != nil {
		t.Fatal(err)
	}
	seq, root, err := tx.Commitment()
	tx.Unlock()
	if err != nil || seq != 46 {
		t.Fatalf("after the batch: %d %v", seq, err)
	}
	tx, _ = one.Lock()
	seq1, root1, _ := tx.Commitment()
	tx.Unlock()
	if seq1 != seq || root1 != root {
		t.Errorf("after the batch the tree differs")
	}
	// A batch cannot land after another append.
	tx, _ = all.Lock()
	defer tx.Unlock()
	b = tx.NewBatch()
	b.Add(record(1))
	tx.Append(record(2))
	if err := b.Append(); err == nil {
		t.Error("a stale batch was appended")
	}
}
