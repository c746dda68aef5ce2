package audit

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sort"

	"golang.org/x/mod/sumdb/tlog"
)

// The log is also an RFC 6962 Merkle tree (computed with
// golang.org/x/mod/sumdb/tlog): leaf i is record seq i+1, and its leaf
// hash is tlog.RecordHash of the record's line without its newline, that
// is SHA-256(0x00 || line). The tree's stored hashes (tlog's numbering:
// every leaf hash and every complete subtree's hash, in the order an
// append makes them) are kept in a side file next to the log (TreePath):
// a TreeHeaderSize header, then the hashes, 32 bytes each, stored hash i
// at TreeHeaderSize + 32*i. An append reads the O(log N) hashes it needs
// (tlog.StoredHashes) and writes the new ones in one write(2); a root, an
// inclusion or a consistency proof read O(log N) too.
//
// It follows the index's rules (index.go): derived from the log, written
// under the log's lock through an O_WRONLY|O_APPEND descriptor, not
// fsynced, checked whenever the log is locked (its size must be the stored
// hashes of exactly the log's records, its last leaf the hash of the log's
// last line), caught up from the log when it lags by at most maxCatchUp
// records, and otherwise an IndexError that stops all requests until
// `signstar audit rebuild` rewrites it.

// TreeHeaderSize is the size of the tree file's header.
const TreeHeaderSize = 128

const treeMagic = "signstar audit tree\n"

const treeVersion = 1

// TreePath is the tree file of the log at logPath.
func TreePath(logPath string) string { return logPath + ".tree" }

// treeHeader is the tree file's header: magic, version, hash size, and
// (for a log that continues rotated ones, rotate.go) the seq of the record
// before this file's first one and its line's hash; 0 and ZeroHash
// otherwise.
type treeHeader struct {
	Base     uint64
	BasePrev [32]byte
}

func (h treeHeader) marshal() []byte {
	b := make([]byte, TreeHeaderSize)
	copy(b, treeMagic)
	le := binary.LittleEndian
	le.PutUint32(b[24:], treeVersion)
	le.PutUint32(b[28:], tlog.HashSize)
	le.PutUint64(b[32:], h.Base)
	copy(b[40:72], h.BasePrev[:])
	le.PutUint32(b[124:], crc32.Checksum(b[:124], crcTable))
	return b
}

// parseTreeHeader reads a tree file's header.
func parseTreeHeader(b []byte) (treeHeader, error) {
	var h treeHeader
	le := binary.LittleEndian
	if len(b) != TreeHeaderSize || !bytes.HasPrefix(b, []byte(treeMagic)) || le.Uint32(b[124:]) != crc32.Checksum(b[:124], crcTable) {
		return h, errors.New("has no valid header (not a signstar audit tree)")
	}
	if le.Uint32(b[24:]) != treeVersion || le.Uint32(b[28:]) != tlog.HashSize {
		return h, errors.New("is of another version")
	}
	for _, c := range b[len(treeMagic):24] {
		if c != 0 {
			return h, errors.New("has no valid header (not a signstar audit tree)")
		}
	}
	for _, c := range b[72:124] {
		if c != 0 {
			return h, errors.New("has no valid header (reserved bytes set)")
		}
	}
	h.Base = le.Uint64(b[32:])
	copy(h.BasePrev[:], b[40:72])
	if (h.Base == 0) != (h.BasePrev == [32]byte{}) {
		return h, errors.New("has no valid header (a base without its hash)")
	}
	return h, nil
}

// ParseTreeFile checks a whole tree file held in memory: a valid header
// and a whole number of records' stored hashes. It returns the header and
// the number of records (for fuzzing and doctor).
func ParseTreeFile(b []byte) (base uint64, records int64, err error) {
	if len(b) < TreeHeaderSize {
		return 0, 0, errors.New("has no header")
	}
	h, err := parseTreeHeader(b[:TreeHeaderSize])
	if err != nil {
		return 0, 0, err
	}
	body := int64(len(b) - TreeHeaderSize)
	if body%tlog.HashSize != 0 {
		return 0, 0, errors.New("ends in a partial hash")
	}
	n, ok := recordsOfStored(body / tlog.HashSize)
	if !ok {
		return 0, 0, errors.New("ends in a partial record's hashes")
	}
	if uint64(n) < h.Base {
		return 0, 0, errors.New("holds fewer records than its base")
	}
	return h.Base, n, nil
}

// recordsOfStored is the number of records whose tree has exactly count
// stored hashes.
func recordsOfStored(count int64) (int64, bool) {
	if count < 0 {
		return 0, false
	}
	// StoredHashCount(n) is at least n: search [0, count].
	n := int64(sort.Search(int(count)+1, func(n int) bool { return tlog.StoredHashCount(int64(n)) >= count }))
	return n, tlog.StoredHashCount(n) == count
}

// fileHashes reads stored hashes from a tree file.
type fileHashes struct {
	f    io.ReaderAt
	path string
	max  int64 // the number of stored hashes there are
	read *int  // hashes read, for tests and benchmarks
}

func (r *fileHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= r.max {
			return nil, fmt.Errorf("audit tree %s has no stored hash %d", r.path, x)
		}
		*r.read++
		if _, err := r.f.ReadAt(out[i][:], TreeHeaderSize+x*tlog.HashSize); err != nil {
			return nil, fmt.Errorf("cannot read audit tree %s: %v", r.path, err)
		}
	}
	return out, nil
}

// treeState is what a locked transaction knows of the tree.
type treeState struct {
	header  treeHeader
	records int64 // records the tree holds: the log's, once checked
	stored  int64 // stored hashes in the file
	read    int   // stored hashes read in this transaction
}

func (tx *Tx) treeErr(format string, args ...any) error {
	return &IndexError{What: "tree", Path: tx.l.treePath, Msg: fmt.Sprintf(format, args...)}
}

func (tx *Tx) hashes() *fileHashes {
	return &fileHashes{f: tx.l.tr, path: tx.l.treePath, max: tx.tree.stored, read: &tx.tree.read}
}

// checkTree holds the tree file against the log (readTail and checkIndex
// have run), catching up a tree that lags.
func (tx *Tx) checkTree() error {
	fi, err := tx.l.tr.Stat()
	if err != nil {
		return fmt.Errorf("cannot stat audit tree %s: %v", tx.l.treePath, err)
	}
	size := fi.Size()
	if size < TreeHeaderSize {
		return tx.treeErr("has no header")
	}
	body := size - TreeHeaderSize
	if body%tlog.HashSize != 0 {
		return tx.treeErr("ends in a partial hash")
	}
	tx.tree.stored = body / tlog.HashSize
	n, ok := recordsOfStored(tx.tree.stored)
	if !ok {
		return tx.treeErr("ends in a partial record's hashes")
	}
	tx.tree.records = n
	last := int64(tx.lastSeq)
	switch {
	case n > last:
		return tx.treeErr("holds %d records, the log %d", n, last)
	case n == last && tx.size == 0:
		// Empty: nothing, or a rotated log's new file, whose tree was
		// copied from the old one's (rotate.go).
		return nil
	case n == last:
		if n > 0 && !tx.lastGroupIs(n, tx.lastLeaf) {
			return tx.treeErr("does not agree with the log's last record %d", last)
		}
		return nil
	case uint64(last-n) > maxCatchUp:
		return tx.treeErr("is %d records behind the log", last-n)
	case uint64(n) < tx.tree.header.Base:
		return tx.treeErr("holds fewer records than the log before this file")
	}
	return tx.catchUpTree()
}

// lastGroupIs reports whether the hashes that the tree's last record (n)
// added, the last in the file, are those of leaf: its leaf hash and the
// subtree hashes it completed, recomputed from the left siblings. A write
// cut short or a block of zeros after a crash shows here.
func (tx *Tx) lastGroupIs(n int64, leaf tlog.Hash) bool {
	r := tx.hashes()
	want, err := tlog.StoredHashesForRecordHash(n-1, leaf, r)
	if err != nil {
		return false
	}
	first := tlog.StoredHashIndex(0, n-1)
	if first+int64(len(want)) != tx.tree.stored {
		return false
	}
	idx := make([]int64, len(want))
	for i := range idx {
		idx[i] = first + int64(i)
	}
	got, err := r.ReadHashes(idx)
	if err != nil {
		return false
	}
	for i := range want {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

// catchUpTree appends the hashes of the records the tree lacks, read from
// the log after the tree's last record (where the index says it ends).
func (tx *Tx) catchUpTree() error {
	n := tx.tree.records
	var start int64
	if uint64(n) > tx.tree.header.Base {
		e, err := tx.Entry(uint64(n))
		if err != nil {
			return err
		}
		start = e.End
		line, err := tx.lineBefore(start)
		if err != nil {
			return tx.treeErr("does not agree with the log at record %d", n)
		}
		if seq, ok := recordSeq(line); !ok || seq != uint64(n) || !tx.lastGroupIs(n, tlog.RecordHash(line)) {
			return tx.treeErr("does not agree with the log at record %d", n)
		}
	}
	data := make([]byte, tx.size-start)
	if _, err := tx.l.r.ReadAt(data, start); err != nil && err != io.EOF {
		return fmt.Errorf("cannot read audit log %s: %v", tx.l.path, err)
	}
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return tx.treeErr("cannot be caught up: the log ends in a partial line")
		}
		line := data[:i]
		data = data[i+1:]
		if seq, ok := recordSeq(line); !ok || seq != uint64(tx.tree.records)+1 {
			return tx.treeErr("cannot be caught up: record %d of the log does not follow record %d (run 'signstar audit verify')", tx.tree.records+1, tx.tree.records)
		}
		if err := tx.appendTree(line); err != nil {
			return err
		}
	}
	return nil
}

// treeHashes are the stored hashes that record line adds, as the next
// record after the tree's.
func (tx *Tx) treeHashes(line []byte) ([]tlog.Hash, error) {
	hs, err := tlog.StoredHashes(tx.tree.records, line, tx.hashes())
	if err != nil {
		return nil, tx.treeErr("cannot be read: %v", err)
	}
	return hs, nil
}

// appendTree adds the record line to the tree.
func (tx *Tx) appendTree(line []byte) error {
	hs, err := tx.treeHashes(line)
	if err != nil {
		return err
	}
	return tx.writeTree(hs)
}

func (tx *Tx) writeTree(hs []tlog.Hash) error { return tx.writeTreeHashes(hs, 1) }

// writeTreeHashes appends the stored hashes hs of the next records
// records.
func (tx *Tx) writeTreeHashes(hs []tlog.Hash, records int64) error {
	b := make([]byte, 0, len(hs)*tlog.HashSize)
	for _, h := range hs {
		b = append(b, h[:]...)
	}
	n, err := tx.l.tw.Write(b)
	if err == nil && n != len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return fmt.Errorf("cannot write audit tree %s: %v", tx.l.treePath, unwrapPath(err))
	}
	tx.tree.records += records
	tx.tree.stored += int64(len(hs))
	return nil
}

// TreeHashesRead is how many stored hashes this transaction has read.
func (tx *Tx) TreeHashesRead() int { return tx.tree.read }

// TreeSize is the number of records in the tree: the log's, seq 1 to
// TreeSize.
func (tx *Tx) TreeSize() int64 { return tx.tree.records }

// TreeRoot is the root hash of the tree of the first n records (n at most
// TreeSize).
func (tx *Tx) TreeRoot(n int64) (tlog.Hash, error) {
	if n < 0 || n > tx.tree.records {
		return tlog.Hash{}, fmt.Errorf("audit tree %s has no tree of size %d", tx.l.treePath, n)
	}
	h, err := tlog.TreeHash(n, tx.hashes())
	if err != nil {
		return h, tx.treeErr("cannot be read: %v", err)
	}
	return h, nil
}

// ProveRecord is the inclusion proof of record seq in the tree of size n.
func (tx *Tx) ProveRecord(seq uint64, n int64) (tlog.RecordProof, error) {
	if seq == 0 || int64(seq) > n || n > tx.tree.records {
		return nil, fmt.Errorf("audit log %s has no record %d in a tree of %d", tx.l.path, seq, n)
	}
	p, err := tlog.ProveRecord(n, int64(seq-1), tx.hashes())
	if err != nil {
		return nil, tx.treeErr("cannot be read: %v", err)
	}
	return p, nil
}

// ProveTree is the consistency proof from the tree of size m to that of
// size n.
func (tx *Tx) ProveTree(n, m int64) (tlog.TreeProof, error) {
	if m < 0 || m > n || n > tx.tree.records {
		return nil, fmt.Errorf("audit log %s has no tree of size %d to prove from %d", tx.l.path, n, m)
	}
	if m == 0 || m == n {
		return tlog.TreeProof{}, nil
	}
	p, err := tlog.ProveTree(n, m, tx.hashes())
	if err != nil {
		return nil, tx.treeErr("cannot be read: %v", err)
	}
	return p, nil
}

// Frontier computes the tree of a stream of records in O(log N) memory: it
// keeps only the roots of the complete subtrees that the next record's
// hashes and the tree's root are made from. audit rebuild writes a tree
// file from it and audit verify checks one with it.
type Frontier struct {
	n     int64
	roots map[int64]tlog.Hash // stored index -> hash
	read  []int64
}

// NewFrontier starts an empty tree.
func NewFrontier() *Frontier { return &Frontier{roots: map[int64]tlog.Hash{}} }

// Size is the number of records added.
func (f *Frontier) Size() int64 { return f.n }

// ReadHashes serves tlog the hashes it asks of the frontier.
func (f *Frontier) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		h, ok := f.roots[x]
		if !ok {
			return nil, fmt.Errorf("audit tree: stored hash %d is not on the frontier", x)
		}
		out[i] = h
		f.read = append(f.read, x)
	}
	return out, nil
}

// Add adds the record line as record Size()+1 and returns the stored hashes
// it makes.
func (f *Frontier) Add(line []byte) ([]tlog.Hash, error) {
	return f.AddHash(tlog.RecordHash(line))
}

// AddHash is Add of a leaf hash.
func (f *Frontier) AddHash(leaf tlog.Hash) ([]tlog.Hash, error) {
	f.read = f.read[:0]
	hs, err := tlog.StoredHashesForRecordHash(f.n, leaf, f)
	if err != nil {
		return nil, err
	}
	// The left siblings just merged are no longer roots; the new top is.
	for _, x := range f.read {
		delete(f.roots, x)
	}
	f.roots[tlog.StoredHashIndex(len(hs)-1, f.n>>(len(hs)-1))] = hs[len(hs)-1]
	f.n++
	return hs, nil
}

// Root is the root hash of the records added so far.
func (f *Frontier) Root() (tlog.Hash, error) {
	h, err := tlog.TreeHash(f.n, f)
	f.read = f.read[:0]
	return h, err
}

// openTree opens the tree file of the log at path, creating it (header
// only) when the log is empty. A missing tree next to records is an
// IndexError.
func openTree(path string, logSize int64) (r, w *os.File, h treeHeader, err error) {
	tp := TreePath(path)
	r, w, err = openSide(tp, "tree", logSize, treeHeader{}.marshal())
	if err != nil {
		return nil, nil, h, err
	}
	head := make([]byte, TreeHeaderSize)
	if _, err := r.ReadAt(head, 0); err != nil {
		r.Close()
		w.Close()
		return nil, nil, h, &IndexError{What: "tree", Path: tp, Msg: "has no header"}
	}
	h, err = parseTreeHeader(head)
	if err != nil {
		r.Close()
		w.Close()
		return nil, nil, h, &IndexError{What: "tree", Path: tp, Msg: err.Error()}
	}
	return r, w, h, nil
}

// Commitment is what the next record's signature commits to: its seq and
// the root of the tree of every record before it.
func (tx *Tx) Commitment() (seq uint64, root tlog.Hash, err error) {
	root, err = tx.TreeRoot(tx.tree.records)
	return tx.lastSeq + 1, root, err
}

// RecordLine is the line of record seq (without its newline), found
// through the index and held against the tree's leaf.
func (tx *Tx) RecordLine(seq uint64) ([]byte, error) {
	if seq == 0 || int64(seq) > tx.tree.records {
		return nil, fmt.Errorf("audit log %s has no record %d", tx.l.path, seq)
	}
	if seq <= tx.tree.header.Base {
		return nil, fmt.Errorf("record %d is in a log file before %s (rotated away)", seq, tx.l.path)
	}
	e, err := tx.Entry(seq)
	if err != nil {
		return nil, err
	}
	line, err := tx.lineBefore(e.End)
	if err != nil {
		return nil, err
	}
	h, err := tx.hashes().ReadHashes([]int64{tlog.StoredHashIndex(0, int64(seq-1))})
	if err != nil {
		return nil, err
	}
	if s, ok := recordSeq(line); !ok || s != seq || h[0] != tlog.RecordHash(line) {
		return nil, tx.treeErr("does not agree with the log at record %d", seq)
	}
	return line, nil
}
