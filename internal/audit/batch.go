package audit

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// Batch stages records to be appended together, with one write and one
// fsync: the records of a `sign --tar` session, which are on disk together
// or (a crash before the fsync returned) not reported written. Add numbers
// and chains each record and extends the tree in memory, so that
// Commitment is what the next record's signature commits to, as if the
// records staged before it were in the log already. The transaction's lock
// must be held from NewBatch to Append.
type Batch struct {
	tx    *Tx
	recs  []*Record
	lines [][]byte
	seq   uint64
	prev  string
	// hashes are the stored hashes of the staged records, after the
	// tree file's; records counts the tree's records with them.
	hashes  []tlog.Hash
	records int64
}

// NewBatch starts a batch after the log's last record.
func (tx *Tx) NewBatch() *Batch {
	return &Batch{tx: tx, seq: tx.lastSeq, prev: tx.lastHash, records: tx.tree.records}
}

// Len is the number of records staged.
func (b *Batch) Len() int { return len(b.recs) }

// batchHashes reads stored hashes from the tree file and, past its end,
// from the batch.
type batchHashes struct {
	file  *fileHashes
	extra []tlog.Hash
}

func (h batchHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x >= h.file.max {
			if x-h.file.max >= int64(len(h.extra)) {
				return nil, fmt.Errorf("audit tree %s has no stored hash %d", h.file.path, x)
			}
			out[i] = h.extra[x-h.file.max]
			continue
		}
		got, err := h.file.ReadHashes([]int64{x})
		if err != nil {
			return nil, err
		}
		out[i] = got[0]
	}
	return out, nil
}

func (b *Batch) hashReader() batchHashes {
	return batchHashes{file: b.tx.hashes(), extra: b.hashes}
}

// Commitment is what the next record's signature commits to: its seq and
// the root of the tree of every record before it, staged ones included.
func (b *Batch) Commitment() (seq uint64, root tlog.Hash, err error) {
	root, err = tlog.TreeHash(b.records, b.hashReader())
	if err != nil {
		return 0, root, b.tx.treeErr("cannot be read: %v", err)
	}
	return b.seq + 1, root, nil
}

// Add stages r as the next record: it sets Seq and Prev.
func (b *Batch) Add(r *Record) error {
	if b.tx.done {
		return errors.New("audit: append after unlock")
	}
	if _, err := time.Parse(TimeFormat, r.Time); err != nil {
		return fmt.Errorf("audit record has no valid time (%q)", r.Time)
	}
	r.Seq, r.Prev = b.seq+1, b.prev
	line, err := r.Marshal()
	if err != nil {
		return err
	}
	if len(line) > MaxLine {
		return fmt.Errorf("audit record of %d bytes is longer than %d", len(line), MaxLine)
	}
	hs, err := tlog.StoredHashes(b.records, line, b.hashReader())
	if err != nil {
		return b.tx.treeErr("cannot be read: %v", err)
	}
	b.seq, b.prev = r.Seq, LineHash(line)
	b.records++
	b.hashes = append(b.hashes, hs...)
	b.recs = append(b.recs, r)
	b.lines = append(b.lines, line)
	return nil
}

// Append writes the staged records, fsyncs them, and then adds their
// entries to the index and their hashes to the tree (which, derived from
// the log, are not fsynced: see Tx.Append). The transaction must not have
// appended anything since NewBatch.
func (b *Batch) Append() error {
	tx := b.tx
	if tx.done {
		return errors.New("audit: append after unlock")
	}
	if len(b.recs) == 0 {
		return nil
	}
	if b.recs[0].Seq != tx.lastSeq+1 {
		return fmt.Errorf("audit: a batch from seq %d appended after record %d", b.recs[0].Seq, tx.lastSeq)
	}
	var buf []byte
	for _, line := range b.lines {
		buf = append(append(buf, line...), '\n')
	}
	if err := tx.write(buf); err != nil {
		return err
	}
	// Off the host once on disk, each record a message, in order; the
	// first a required socket did not take is the error.
	var ferr error
	for i, r := range b.recs {
		if err := tx.forward(r, b.lines[i]); err != nil && ferr == nil {
			ferr = err
		}
	}
	// The index after the log, as catchUp does it: each entry needs the
	// ones before it.
	end := tx.size
	for i, r := range b.recs {
		line := b.lines[i]
		end += int64(len(line)) + 1
		e, err := nextEntry(&tx.idx.last, tx.headsAt, r, line, end)
		if err != nil {
			return err
		}
		tx.lastSeq, tx.lastHash, tx.lastLeaf, tx.size = r.Seq, LineHash(line), tlog.RecordHash(line), end
		if err := tx.writeIndex(e.marshal()); err != nil {
			return err
		}
		tx.idx.last, tx.idx.count = e, e.Seq
	}
	n := tlog.StoredHashCount(b.records) - tx.tree.stored
	if n != int64(len(b.hashes)) {
		return fmt.Errorf("audit: a batch of %d stored hashes where the tree needs %d", len(b.hashes), n)
	}
	if err := tx.writeTreeHashes(b.hashes, int64(len(b.recs))); err != nil {
		return err
	}
	b.recs, b.lines, b.hashes = nil, nil, nil
	return ferr
}
