package audit

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// mth is RFC 6962's Merkle tree hash, section 2.1, written from the RFC
// and not from tlog: MTH({}) = SHA-256(), MTH({d0}) = SHA-256(0x00 || d0),
// MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n])) with k the
// largest power of two smaller than n.
func mth(leaves [][]byte) [32]byte {
	switch len(leaves) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return sha256.Sum256(append([]byte{0}, leaves[0]...))
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	l, r := mth(leaves[:k]), mth(leaves[k:])
	return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...))
}

func logLines(t *testing.T, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
}

// TestTreeIsRFC6962: the tree kept with the log has, at every size, the
// RFC 6962 root of the record lines (without their newlines); its
// inclusion and consistency proofs check; the frontier that rebuild and
// verify use gives the same roots; the file is what a rebuild writes.
func TestTreeIsRFC6962(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const n = 37
	appendN(t, l, n)
	lines := logLines(t, path)
	tx, err := l.Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Unlock()
	if tx.TreeSize() != n {
		t.Fatalf("tree of %d records, want %d", tx.TreeSize(), n)
	}
	fr := NewFrontier()
	for k := 0; k <= n; k++ {
		want := mth(lines[:k])
		got, err := tx.TreeRoot(int64(k))
		if err != nil || got != tlog.Hash(want) {
			t.Fatalf("root of %d: %x, %v; RFC 6962 says %x", k, got, err, want)
		}
		fg, err := fr.Root()
		if err != nil || fg != got {
			t.Fatalf("frontier root of %d: %x, %v", k, fg, err)
		}
		if k < n {
			if _, err := fr.Add(lines[k]); err != nil {
				t.Fatal(err)
			}
		}
		if len(fr.roots) > 7 {
			t.Fatalf("frontier of %d holds %d hashes", k, len(fr.roots))
		}
	}
	for size := int64(1); size <= n; size++ {
		root, _ := tx.TreeRoot(size)
		for seq := uint64(1); seq <= uint64(size); seq++ {
			p, err := tx.ProveRecord(seq, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckRecord(p, size, root, int64(seq-1), tlog.RecordHash(lines[seq-1])); err != nil {
				t.Fatalf("inclusion of %d in %d: %v", seq, size, err)
			}
			if tlog.CheckRecord(p, size, root, int64(seq-1), tlog.RecordHash(append(lines[seq-1], ' '))) == nil {
				t.Fatal("an inclusion proof checks another line")
			}
		}
		for m := int64(1); m <= size; m++ {
			p, err := tx.ProveTree(size, m)
			if err != nil {
				t.Fatal(err)
			}
			old, _ := tx.TreeRoot(m)
			if err := tlog.CheckTree(p, size, root, m, old); err != nil {
				t.Fatalf("consistency %d to %d: %v", m, size, err)
			}
		}
	}
	tx.Unlock()
	want := mustRead(t, TreePath(path))
	if got := rebuiltTree(t, path); !bytes.Equal(got, want) {
		t.Error("the tree kept with the log differs from the one rebuilt from it")
	}
}

func rebuiltTree(t *testing.T, logPath string) []byte {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "copy.jsonl")
	if err := os.WriteFile(p, mustRead(t, logPath), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := Rebuild(p, time.Second); err != nil {
		t.Fatal(err)
	}
	return mustRead(t, TreePath(p))
}

// TestTreeAppendReadsLogN: an append to a log of thousands of records
// reads O(log N) stored hashes: those StoredHashes needs and the root.
func TestTreeAppendReadsLogN(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	appendN(t, l, 4095)
	tx, err := l.Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Unlock()
	if _, _, err := tx.Commitment(); err != nil {
		t.Fatal(err)
	}
	if err := tx.Append(record(1)); err != nil {
		t.Fatal(err)
	}
	// 4095 = 12 ones: the root reads 12 hashes, the append 12 siblings,
	// the lock-time check of the last record 1 or 2 (its leaf and the
	// siblings it merged with, none here).
	if got := tx.TreeHashesRead(); got > 3*12+2 {
		t.Errorf("an append to 4095 records read %d stored hashes, want at most 38", got)
	}
}

// TestTreeCatchUp: a tree that lost its last records' hashes (it is not
// fsynced) is caught up from the log at the next lock.
func TestTreeCatchUp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	appendN(t, l, 20)
	want := mustRead(t, TreePath(path))
	for _, keep := range []int64{0, 1, 7, 16, 19} {
		if err := os.Truncate(TreePath(path), TreeHeaderSize+32*tlog.StoredHashCount(keep)); err != nil {
			t.Fatal(err)
		}
		tx, err := l.Lock()
		if err != nil {
			t.Fatalf("keep %d: %v", keep, err)
		}
		tx.Unlock()
		if got := mustRead(t, TreePath(path)); !bytes.Equal(got, want) {
			t.Fatalf("keep %d: caught-up tree differs", keep)
		}
	}
}

// TestTreeDisagrees: a tree file that is missing, torn, ahead, of another
// log or damaged stops the log (an IndexError naming audit rebuild), and
// Rebuild makes it again.
func TestTreeDisagrees(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, tp string)
		want   string
	}{
		{"missing", func(t *testing.T, tp string) { os.Remove(tp) }, "is missing"},
		{"torn hash", func(t *testing.T, tp string) { truncateBy(t, tp, 5) }, "ends in a partial hash"},
		{"torn record", func(t *testing.T, tp string) { truncateBy(t, tp, 32) }, "partial record's hashes"},
		{"ahead", func(t *testing.T, tp string) {
			b := mustRead(t, tp)
			// The hashes of one record more: a tree of 9 has 16 + 1.
			b = append(b, make([]byte, 32*(tlog.StoredHashCount(9)-tlog.StoredHashCount(8)))...)
			os.WriteFile(tp, b, 0o640)
		}, "holds 9 records, the log 8"},
		{"last leaf", func(t *testing.T, tp string) { flip(t, tp, -1) }, "does not agree with the log's last record 8"},
		{"header", func(t *testing.T, tp string) { flip(t, tp, 3) }, "has no valid header"},
		{"behind, wrong", func(t *testing.T, tp string) {
			// The first 4 records' hashes, the 4th leaf changed.
			b := mustRead(t, tp)[:TreeHeaderSize+32*tlog.StoredHashCount(4)]
			b[TreeHeaderSize+32*tlog.StoredHashIndex(0, 3)] ^= 1
			os.WriteFile(tp, b, 0o640)
		}, "does not agree with the log at record 4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			l, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			appendN(t, l, 8)
			l.Close()
			good := mustRead(t, TreePath(path))
			tc.damage(t, TreePath(path))
			before := mustRead(t, path)
			l, err = Open(path)
			if err == nil {
				err = l.Append(record(9))
				l.Close()
			}
			var ie *IndexError
			if !errors.As(err, &ie) || ie.What != "tree" || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "run 'signstar audit rebuild'") {
				t.Fatalf("append: %v, want a tree IndexError with %q", err, tc.want)
			}
			if !bytes.Equal(mustRead(t, path), before) {
				t.Fatal("the log changed")
			}
			res, err := Rebuild(path, time.Second)
			if err != nil || (!res.TreeReplaced && res.TreeAppended == 0) {
				t.Fatalf("rebuild: %+v, %v", res, err)
			}
			if !bytes.Equal(mustRead(t, TreePath(path)), good) {
				t.Fatal("rebuilt tree differs")
			}
		})
	}
}

func truncateBy(t *testing.T, p string, n int64) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, fi.Size()-n); err != nil {
		t.Fatal(err)
	}
}

// flip flips a bit of the byte at off (from the end when negative).
func flip(t *testing.T, p string, off int) {
	t.Helper()
	b := mustRead(t, p)
	if off < 0 {
		off += len(b)
	}
	b[off] ^= 1
	if err := os.WriteFile(p, b, 0o640); err != nil {
		t.Fatal(err)
	}
}

// TestTreeRebuildAppends: a tree that agrees but lags far (past the
// catch-up bound) gets only its missing hashes appended by Rebuild.
func TestTreeRebuildAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 12)
	l.Close()
	want := mustRead(t, TreePath(path))
	os.Truncate(TreePath(path), TreeHeaderSize+32*tlog.StoredHashCount(5))
	res, err := Rebuild(path, time.Second)
	if err != nil || res.TreeReplaced || res.TreeAppended != int(tlog.StoredHashCount(12)-tlog.StoredHashCount(5)) {
		t.Fatalf("rebuild: %+v, %v", res, err)
	}
	if !bytes.Equal(mustRead(t, TreePath(path)), want) {
		t.Fatal("appended tree differs")
	}
}

// FuzzTreeFile: ParseTreeFile takes any bytes without panicking, and what
// it accepts has a whole number of records' hashes.
func FuzzTreeFile(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	l, err := Open(path)
	if err != nil {
		f.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := l.Append(record(i)); err != nil {
			f.Fatal(err)
		}
	}
	l.Close()
	good, _ := os.ReadFile(TreePath(path))
	f.Add(good)
	f.Add(good[:TreeHeaderSize])
	f.Add(good[:len(good)-32])
	f.Fuzz(func(t *testing.T, b []byte) {
		_, n, err := ParseTreeFile(b)
		if err != nil {
			return
		}
		if int64(len(b)) != TreeHeaderSize+32*tlog.StoredHashCount(n) {
			t.Fatalf("accepted %d bytes as %d records", len(b), n)
		}
	})
}
