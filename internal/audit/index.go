package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/mod/sumdb/tlog"
	"golang.org/x/sys/unix"
)

// The index is a side file next to the log (IndexPath), kept under the
// log's lock, that answers the questions asked of the log on every request
// (the time of a profile's N-th newest signature, a client's recent
// refusals) without reading the log: fixed-size entries, one per record,
// entry s at offset s*EntrySize (entry 0 is the header), each with the
// record's time, outcome, profile, client and digest, and pointers (by
// seq) to the previous signed record, the previous signed record of the
// same profile, the previous refused or failed record and the previous
// vote (a record with a voter: a quorum profile's vote, or the signature
// that met its quorum). A walk along those pointers skips every record it
// does not ask about, so a rate check reads its N entries, and a quorum
// check one entry per vote in its window, whatever the log holds.
//
// The log stays the truth; the index is derived from it and is checked
// against it whenever the log is locked: its last entry must name the
// log's last line (seq, end offset, the line's hash). An index that lags
// (a process killed between the two writes, a power loss: the index is not
// fsynced) is caught up from the log's last lines, at most maxCatchUp of
// them; one that is missing, torn, ahead or disagrees stops all requests
// until `signstar audit rebuild` rewrites it from the log. Later side files
// (a transparency tree) follow the same rule: append-only,
// fixed-size, derived, checked at lock time, rebuilt by the same command.
//
// It is append-only like the log: written through an O_WRONLY|O_APPEND
// descriptor only, and `chattr +a` applies to it too.

// EntrySize is the size of an index entry and of its header.
const EntrySize = 128

// maxCatchUp bounds how many records an index may lag behind the log and
// still be caught up at lock time.
var maxCatchUp uint64 = 1024

// indexMagic opens the header.
const indexMagic = "signstar audit index\n"

// indexVersion 2 added votes (the vote outcome, the Vote flag and
// PrevVote); a version 1 index is rebuilt with `signstar audit rebuild`.
const indexVersion = 2

// IndexPath is the index file of the log at logPath.
func IndexPath(logPath string) string { return logPath + ".idx" }

// ID is a truncated SHA-256 of a name (profile, client), for the index;
// the zero ID stands for "".
type ID [8]byte

func makeID(domain, name string) ID {
	var id ID
	if name == "" {
		return id
	}
	s := sha256.Sum256([]byte("signstar-" + domain + "\x00" + name))
	copy(id[:], s[:])
	return id
}

// ProfileID is the index's ID of a profile name.
func ProfileID(name string) ID { return makeID("profile", name) }

// ClientID is the index's ID of a client: its address as in the record's
// client field, an IPv6 address by its /64 (what one host can be handed
// whole). "" (a local request) has the zero ID.
func ClientID(client string) ID {
	if a, err := netip.ParseAddr(client); err == nil && a.Is6() && !a.Is4In6() {
		p, _ := a.Prefix(64)
		client = p.String()
	}
	return makeID("client", client)
}

// Outcome codes in an entry.
const (
	codeSigned  = 1
	codeRefused = 2
	codeFailed  = 3
	codeVote    = 4
)

// Entry flags (byte 89).
const (
	flagHeadsComplete = 1 << 0
	flagVote          = 1 << 1
)

// Entry is one record's line in the index.
type Entry struct {
	Seq      uint64
	Time     int64    // the record's time, Unix microseconds
	End      int64    // offset in the log just past the record's newline
	LineHash [16]byte // the first 16 bytes of the SHA-256 of the line
	Profile  ID
	Client   ID
	Digest   [8]byte // the first 8 bytes of the record's digest, 0 if none
	Outcome  string
	// PrevSigned is the seq of the newest signed record before this one,
	// PrevNonSigned of the newest refused or failed record before this
	// one, PrevSignedSame of the newest signed record of this record's
	// profile before it, PrevVote of the newest vote (IsVote) before it;
	// 0 when there is none.
	PrevSigned, PrevNonSigned, PrevSignedSame, PrevVote uint64
	// IsVote says the record has a voter: a vote, or the signature that
	// met a quorum (which is its requester's vote too).
	IsVote bool
	// Carried is the newest signature (at or before this record) of one
	// profile, chosen so that every profile that ever signed is named,
	// by a signature or a carried head, in every HeadsWindow consecutive
	// entries: the newest block of the index names every profile's newest
	// signature. HeadsComplete says that holds here; it fails only with
	// HeadsWindow or more profiles, and then readers walk PrevSigned.
	CarriedProfile ID
	CarriedHead    uint64
	HeadsComplete  bool
}

// HeadsWindow is how many consecutive entries name every profile's newest
// signature (Entry.Carried).
const HeadsWindow = 256

// Signed reports whether the entry's record is a signature.
func (e *Entry) Signed() bool { return e.Outcome == Signed }

// RefusedOrFailed reports whether the entry's record is a refusal or a
// failure (what the refusal throttle counts; a vote is neither).
func (e *Entry) RefusedOrFailed() bool { return e.Outcome == Refused || e.Outcome == Failed }

var crcTable = crc32.MakeTable(crc32.Castagnoli)

func (e *Entry) marshal() []byte {
	b := make([]byte, EntrySize)
	le := binary.LittleEndian
	le.PutUint64(b[0:], e.Seq)
	le.PutUint64(b[8:], uint64(e.Time))
	le.PutUint64(b[16:], uint64(e.End))
	copy(b[24:40], e.LineHash[:])
	copy(b[40:48], e.Profile[:])
	copy(b[48:56], e.Client[:])
	copy(b[56:64], e.Digest[:])
	le.PutUint64(b[64:], e.PrevSigned)
	le.PutUint64(b[72:], e.PrevNonSigned)
	le.PutUint64(b[80:], e.PrevSignedSame)
	switch e.Outcome {
	case Signed:
		b[88] = codeSigned
	case Refused:
		b[88] = codeRefused
	case Vote:
		b[88] = codeVote
	default:
		b[88] = codeFailed
	}
	if e.HeadsComplete {
		b[89] |= flagHeadsComplete
	}
	if e.IsVote {
		b[89] |= flagVote
	}
	copy(b[96:104], e.CarriedProfile[:])
	le.PutUint64(b[104:], e.CarriedHead)
	le.PutUint64(b[112:], e.PrevVote)
	// 90..95 and 120..123 are free.
	le.PutUint32(b[124:], crc32.Checksum(b[:124], crcTable))
	return b
}

func unmarshalEntry(b []byte) (Entry, error) {
	var e Entry
	le := binary.LittleEndian
	if len(b) != EntrySize || le.Uint32(b[124:]) != crc32.Checksum(b[:124], crcTable) {
		return e, errors.New("entry checksum does not match")
	}
	e.Seq = le.Uint64(b[0:])
	e.Time = int64(le.Uint64(b[8:]))
	e.End = int64(le.Uint64(b[16:]))
	copy(e.LineHash[:], b[24:40])
	copy(e.Profile[:], b[40:48])
	copy(e.Client[:], b[48:56])
	copy(e.Digest[:], b[56:64])
	e.PrevSigned = le.Uint64(b[64:])
	e.PrevNonSigned = le.Uint64(b[72:])
	e.PrevSignedSame = le.Uint64(b[80:])
	if b[89]&^(flagHeadsComplete|flagVote) != 0 {
		return e, fmt.Errorf("entry flags %#x are not known", b[89])
	}
	e.HeadsComplete = b[89]&flagHeadsComplete != 0
	e.IsVote = b[89]&flagVote != 0
	copy(e.CarriedProfile[:], b[96:104])
	e.CarriedHead = le.Uint64(b[104:])
	e.PrevVote = le.Uint64(b[112:])
	switch b[88] {
	case codeSigned:
		e.Outcome = Signed
	case codeRefused:
		e.Outcome = Refused
	case codeFailed:
		e.Outcome = Failed
	case codeVote:
		e.Outcome = Vote
	default:
		return e, fmt.Errorf("entry outcome %d is not known", b[88])
	}
	return e, nil
}

func indexHeader() []byte {
	b := make([]byte, EntrySize)
	copy(b, indexMagic)
	binary.LittleEndian.PutUint32(b[32:], indexVersion)
	binary.LittleEndian.PutUint32(b[36:], EntrySize)
	binary.LittleEndian.PutUint32(b[124:], crc32.Checksum(b[:124], crcTable))
	return b
}

// nextEntry is the entry of the record after prev (the zero Entry for an
// empty log) whose line is line, ending at end. headsAt gives what the
// HeadsWindow entries up to prev say (readHeads). A record without a valid
// time has none: a rate check could not place it.
func nextEntry(prev *Entry, headsAt func(last uint64) (heads, error), r *Record, line []byte, end int64) (Entry, error) {
	e := Entry{
		Seq:     r.Seq,
		End:     end,
		Profile: ProfileID(r.Profile),
		Client:  ClientID(r.Client),
		Outcome: r.Outcome,
		IsVote:  r.Voter != "",
	}
	t, err := time.Parse(TimeFormat, r.Time)
	if err != nil {
		return e, fmt.Errorf("audit record %d has no valid time (%q): run 'signstar audit verify'", r.Seq, r.Time)
	}
	e.Time = t.UnixMicro()
	h := sha256.Sum256(line)
	copy(e.LineHash[:], h[:])
	if _, hexDigest, ok := strings.Cut(r.Digest, ":"); ok {
		if d, err := hex.DecodeString(hexDigest); err == nil {
			copy(e.Digest[:], d)
		}
	}
	if prev.Seq != 0 {
		e.PrevSigned, e.PrevNonSigned, e.PrevVote = prev.PrevSigned, prev.PrevNonSigned, prev.PrevVote
		if prev.Signed() {
			e.PrevSigned = prev.Seq
		} else if prev.RefusedOrFailed() {
			e.PrevNonSigned = prev.Seq
		}
		if prev.IsVote {
			e.PrevVote = prev.Seq
		}
	}
	hd, err := headsAt(prev.Seq)
	if err != nil {
		return e, err
	}
	e.PrevSignedSame = hd.head[e.Profile]
	// This entry names its own profile (by its signature, or by the head
	// it carries in PrevSignedSame); it carries the head of the profile
	// named longest ago, which would otherwise be the next to leave the
	// window (the smallest ID of those named as long ago). hd is shared:
	// it is only read.
	oldest := e.Seq
	for id, at := range hd.named {
		if id != e.Profile && (at < oldest || (at == oldest && bytes.Compare(id[:], e.CarriedProfile[:]) < 0)) {
			oldest, e.CarriedProfile = at, id
		}
	}
	if oldest != e.Seq {
		e.CarriedHead = hd.head[e.CarriedProfile]
	}
	e.HeadsComplete = hd.complete
	for id, at := range hd.named {
		if id != e.Profile && (id != e.CarriedProfile || oldest == e.Seq) && e.Seq-at >= HeadsWindow {
			e.HeadsComplete = false
		}
	}
	return e, nil
}

// heads is what a block of entries says of every profile: its newest
// signature, and the newest entry that names it.
type heads struct {
	head     map[ID]uint64
	named    map[ID]uint64
	complete bool // the newest entry said HeadsComplete (or there is none)
}

// readHeads reads the HeadsWindow entries up to last.
func readHeads(window func(seq uint64) (Entry, error), last uint64) (heads, error) {
	hd := heads{head: map[ID]uint64{}, named: map[ID]uint64{}, complete: true}
	first := uint64(1)
	if last >= HeadsWindow {
		first = last - HeadsWindow + 1
	}
	for seq := last; seq >= first && seq > 0; seq-- {
		e, err := window(seq)
		if err != nil {
			return hd, err
		}
		if seq == last {
			hd.complete = e.HeadsComplete
		}
		name := func(id ID, head uint64) {
			if id == (ID{}) && head == 0 {
				return
			}
			if _, ok := hd.named[id]; !ok {
				hd.named[id] = seq
			}
			hd.head[id] = max(hd.head[id], head)
		}
		own := e.PrevSignedSame
		if e.Signed() {
			own = e.Seq
		}
		if own != 0 {
			name(e.Profile, own)
		}
		if e.CarriedHead != 0 {
			name(e.CarriedProfile, e.CarriedHead)
		}
	}
	return hd, nil
}

// LatestSigned is the seq of the newest signed record of profile, 0 when
// it has none, read from the newest HeadsWindow entries of the index (one
// read of 32 KiB). ok is false when those do not name every profile
// (HeadsWindow profiles or more have signed): then the caller must walk
// back along PrevSigned, and may not trust PrevSignedSame.
func (tx *Tx) LatestSigned(profile ID) (seq uint64, ok bool, err error) {
	last, any := tx.LastEntry()
	if !any {
		return 0, true, nil
	}
	hd, err := tx.headsAt(last.Seq)
	if err != nil || !hd.complete {
		return 0, false, err
	}
	return hd.head[profile], true, nil
}

// headsAt is readHeads over the index up to last, kept for the next call:
// a rate check and the append after it read the same block.
func (tx *Tx) headsAt(last uint64) (heads, error) {
	if tx.idx.hd.head != nil && tx.idx.hdAt == last {
		return tx.idx.hd, nil
	}
	hd, err := readHeads(tx.Entry, last)
	if err == nil {
		tx.idx.hd, tx.idx.hdAt = hd, last
	}
	return hd, err
}

// indexState is what a locked transaction knows of the index.
type indexState struct {
	last  Entry // the entry of the log's last record; Seq 0 for an empty log
	count uint64
	// tail holds the newest entries, cache one older block (Entry).
	tailStart, cacheStart uint64
	tail, cache           []byte
	read                  int // entries asked of Entry, for tests and benchmarks
	recordsRead           int // records read by RecordOf, likewise
	hd                    heads
	hdAt                  uint64 // the last entry hd was read up to
}

// IndexError is an audit index that is missing or does not agree with the
// log; `signstar audit rebuild` repairs it.
type IndexError struct {
	What string // "index" (when empty) or "tree"
	Path string
	Msg  string
}

func (e *IndexError) Error() string {
	what := e.What
	if what == "" {
		what = "index"
	}
	return fmt.Sprintf("audit %s %s %s: nothing is signed until it is rebuilt: run 'signstar audit rebuild' as root", what, e.Path, e.Msg)
}

func (tx *Tx) indexErr(format string, args ...any) error {
	return &IndexError{Path: tx.l.idxPath, Msg: fmt.Sprintf(format, args...)}
}

// checkIndex reads the index's end and holds it against the log's last
// line (tx.readTail has run), catching up a lagging index.
func (tx *Tx) checkIndex() error {
	fi, err := tx.l.ir.Stat()
	if err != nil {
		return fmt.Errorf("cannot stat audit index %s: %v", tx.l.idxPath, err)
	}
	size := fi.Size()
	if size < EntrySize {
		return tx.indexErr("has no header")
	}
	if size%EntrySize != 0 {
		return tx.indexErr("ends in a partial entry")
	}
	tx.idx.count = uint64(size/EntrySize) - 1
	if tx.idx.count > 0 {
		e, err := tx.Entry(tx.idx.count)
		if err != nil {
			return err
		}
		tx.idx.last = e
		tx.idx.read = 0
	}
	switch {
	case tx.idx.count > tx.lastSeq:
		return tx.indexErr("has %d entries, the log %d records", tx.idx.count, tx.lastSeq)
	case tx.idx.count == tx.lastSeq && tx.size == 0 && tx.lastSeq > 0:
		// A rotated log's new file: its last record is the old file's.
		if hex.EncodeToString(tx.idx.last.LineHash[:]) != tx.lastHash[:32] {
			return tx.indexErr("does not agree with the log's last record %d", tx.lastSeq)
		}
		return nil
	case tx.idx.count == tx.lastSeq:
		if tx.lastSeq > 0 && (tx.idx.last.End != tx.size || hex.EncodeToString(tx.idx.last.LineHash[:]) != tx.lastHash[:32]) {
			return tx.indexErr("does not agree with the log's last record %d", tx.lastSeq)
		}
		return nil
	case tx.lastSeq-tx.idx.count > maxCatchUp:
		return tx.indexErr("is %d records behind the log", tx.lastSeq-tx.idx.count)
	}
	return tx.catchUp()
}

// catchUp appends the entries of the records the index lacks, read from
// the log after the index's last entry.
func (tx *Tx) catchUp() error {
	last := tx.idx.last
	var start int64
	prevHash := ZeroHash
	base := tx.tree.header.Base
	switch {
	case last.Seq < base:
		return tx.indexErr("has %d entries, fewer than the %d records before this log file", last.Seq, base)
	case last.Seq == base && base > 0:
		prevHash = fmt.Sprintf("%x", tx.tree.header.BasePrev)
		if hex.EncodeToString(last.LineHash[:]) != prevHash[:32] {
			return tx.indexErr("does not agree with the log at record %d", last.Seq)
		}
	case last.Seq > 0:
		start = last.End
		line, err := tx.lineBefore(last.End)
		if err != nil {
			return tx.indexErr("does not agree with the log at record %d", last.Seq)
		}
		seq, ok := recordSeq(line)
		h := sha256.Sum256(line)
		if !ok || seq != last.Seq || !bytes.Equal(h[:16], last.LineHash[:]) {
			return tx.indexErr("does not agree with the log at record %d", last.Seq)
		}
		prevHash = hex.EncodeToString(h[:])
	}
	data := make([]byte, tx.size-start)
	if _, err := tx.l.r.ReadAt(data, start); err != nil && err != io.EOF {
		return fmt.Errorf("cannot read audit log %s: %v", tx.l.path, err)
	}
	off := start
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return tx.indexErr("cannot be caught up: the log ends in a partial line")
		}
		line := data[:i]
		data = data[i+1:]
		off += int64(i) + 1
		var r Record
		if err := json.Unmarshal(line, &r); err != nil || r.Seq != last.Seq+1 || r.Prev != prevHash {
			return tx.indexErr("cannot be caught up: record %d of the log does not follow record %d (run 'signstar audit verify')", last.Seq+1, last.Seq)
		}
		e, err := nextEntry(&last, tx.headsAt, &r, line, off)
		if err != nil {
			return err
		}
		if err := tx.writeIndex(e.marshal()); err != nil {
			return err
		}
		last = e
		prevHash = LineHash(line)
		tx.idx.last, tx.idx.count = last, last.Seq
	}
	return nil
}

func (tx *Tx) writeIndex(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	n, err := tx.l.iw.Write(b)
	if err == nil && n != len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return fmt.Errorf("cannot write audit index %s: %v", tx.l.idxPath, unwrapPath(err))
	}
	// What was written is the newest entry now; the tail keeps it.
	if tx.idx.tail != nil {
		tx.idx.tail = append(tx.idx.tail, b...)
	}
	return nil
}

// Entry reads the index entry of record seq (1 to Last()). The newest
// HeadsWindow entries are read at once, the first time one of them is asked
// for (every append and rate check reads them), and kept; an older one is
// read with the 31 before it, for walks back along the pointers.
func (tx *Tx) Entry(seq uint64) (Entry, error) {
	const block = 32
	tx.idx.read++
	if seq == 0 || seq > tx.idx.count {
		return Entry{}, fmt.Errorf("audit index %s has no entry %d", tx.l.idxPath, seq)
	}
	var buf []byte
	var start uint64
	if tx.idx.count-seq < HeadsWindow {
		if tx.idx.tail == nil {
			first := uint64(1)
			if tx.idx.count > HeadsWindow {
				first = tx.idx.count - HeadsWindow + 1
			}
			b, err := tx.readEntries(first, tx.idx.count)
			if err != nil {
				return Entry{}, err
			}
			tx.idx.tail, tx.idx.tailStart = b, first
		}
		buf, start = tx.idx.tail, tx.idx.tailStart
	} else {
		if tx.idx.cache == nil || seq < tx.idx.cacheStart || seq >= tx.idx.cacheStart+uint64(len(tx.idx.cache)/EntrySize) {
			first := uint64(1)
			if seq > block {
				first = seq - block + 1
			}
			// A walk back along a sparse chain (votes, signatures) reads
			// a block per entry: the block's buffer is reused.
			b := tx.idx.cache
			if n := int(seq-first+1) * EntrySize; cap(b) >= n {
				b = b[:n]
			} else {
				b = make([]byte, n)
			}
			tx.idx.cache = nil
			if _, err := tx.l.ir.ReadAt(b, int64(first)*EntrySize); err != nil {
				return Entry{}, fmt.Errorf("cannot read audit index %s: %v", tx.l.idxPath, err)
			}
			tx.idx.cache, tx.idx.cacheStart = b, first
		}
		buf, start = tx.idx.cache, tx.idx.cacheStart
	}
	i := (seq - start) * EntrySize
	e, err := unmarshalEntry(buf[i : i+EntrySize])
	if err != nil || e.Seq != seq {
		return Entry{}, tx.indexErr("entry %d is damaged", seq)
	}
	return e, nil
}

// readEntries reads entries first to last.
func (tx *Tx) readEntries(first, last uint64) ([]byte, error) {
	buf := make([]byte, (last-first+1)*EntrySize)
	if _, err := tx.l.ir.ReadAt(buf, int64(first)*EntrySize); err != nil {
		return nil, fmt.Errorf("cannot read audit index %s: %v", tx.l.idxPath, err)
	}
	return buf, nil
}

// RecordOf reads the record of entry e from the log, for the fields the
// index does not hold (a vote's full digest and voter). The line must be
// the one the entry names (its hash), else the index is damaged.
func (tx *Tx) RecordOf(e Entry) (*Record, error) {
	if e.Seq <= tx.FileBase() && e.Seq > 0 {
		return nil, fmt.Errorf("audit record %d is in a rotated log file, not in %s", e.Seq, tx.l.path)
	}
	if e.Seq == 0 || e.Seq > tx.lastSeq || e.End > tx.size {
		return nil, tx.indexErr("entry %d names no record of the log", e.Seq)
	}
	line, err := tx.lineBefore(e.End)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(line)
	if !bytes.Equal(h[:16], e.LineHash[:]) {
		return nil, tx.indexErr("entry %d does not agree with the log", e.Seq)
	}
	// audit verify's fast reader, held against the line as verify holds
	// it; encoding/json (whose first use costs a one-shot process more
	// than the count's reads) only for a line it cannot read.
	r, ok := fastRecord(line)
	if ok {
		if canon, err := r.Marshal(); err != nil || !bytes.Equal(canon, line) {
			ok = false
		}
	}
	if !ok {
		r = &Record{}
		if err := json.Unmarshal(line, r); err != nil {
			return nil, tx.indexErr("entry %d does not agree with the log", e.Seq)
		}
	}
	if r.Seq != e.Seq {
		return nil, tx.indexErr("entry %d does not agree with the log", e.Seq)
	}
	tx.idx.recordsRead++
	return r, nil
}

// FileBase is how many records came before this log file (rotate.go): 0
// for a log that was never rotated. Their entries are in the index, their
// lines in the rotated files only.
func (tx *Tx) FileBase() uint64 { return tx.tree.header.Base }

// RecordsRead is how many records RecordOf read in this transaction.
func (tx *Tx) RecordsRead() int { return tx.idx.recordsRead }

// EntriesRead is how many entries Entry was asked for in this transaction.
func (tx *Tx) EntriesRead() int { return tx.idx.read }

// LastEntry is the entry of the log's last record; ok is false for an
// empty log.
func (tx *Tx) LastEntry() (e Entry, ok bool) { return tx.idx.last, tx.idx.last.Seq != 0 }

// createSide makes a new side file holding only header at p: written to a
// temporary file and linked into place, so that a concurrent Open never
// sees it without its header. One that appeared meanwhile is kept.
func createSide(p string, header []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(p), ".signstar-side-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(header)
	if err == nil {
		err = tmp.Chmod(0o640)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), p); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	if d, err := os.Open(filepath.Dir(p)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// openSide opens the side file p (what: "index", "tree") of a log of
// logSize bytes, creating it with header when the log is empty. A missing
// side file next to records is an IndexError.
func openSide(p, what string, logSize int64, header []byte) (r, w *os.File, err error) {
	const wflags = os.O_WRONLY | os.O_APPEND | oNoFollow
	w, err = os.OpenFile(p, wflags, 0)
	if errors.Is(err, os.ErrNotExist) {
		if logSize != 0 {
			return nil, nil, &IndexError{What: what, Path: p, Msg: "is missing"}
		}
		if err = createSide(p, header); errors.Is(err, os.ErrPermission) {
			return nil, nil, &IndexError{What: what, Path: p, Msg: "is missing and cannot be created here (" + unwrapPath(err).Error() + ")"}
		}
		if err == nil {
			w, err = os.OpenFile(p, wflags, 0)
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("cannot open audit %s %s: %v", what, p, unwrapPath(err))
	}
	r, err = os.OpenFile(p, os.O_RDONLY|oNoFollow, 0)
	if err != nil {
		w.Close()
		return nil, nil, fmt.Errorf("cannot open audit %s %s: %v", what, p, unwrapPath(err))
	}
	if err := sameRegularFile(r, w); err != nil {
		r.Close()
		w.Close()
		return nil, nil, fmt.Errorf("audit %s %s %v", what, p, err)
	}
	return r, w, nil
}

// openIndex opens the index of the log at path, creating it (header only)
// when the log is empty. A missing index next to records is an IndexError.
func openIndex(path string, logSize int64) (r, w *os.File, err error) {
	ip := IndexPath(path)
	r, w, err = openSide(ip, "index", logSize, indexHeader())
	if err != nil {
		return nil, nil, err
	}
	head := make([]byte, EntrySize)
	if _, err := r.ReadAt(head, 0); err != nil || !bytes.Equal(head, indexHeader()) {
		r.Close()
		w.Close()
		return nil, nil, &IndexError{Path: ip, Msg: "has no valid header (not a signstar audit index, or of another version)"}
	}
	return r, w, nil
}

// RebuildResult says what Rebuild did.
type RebuildResult struct {
	Records  int    // records in the log, all indexed now
	Appended int    // entries appended to an index that agreed so far
	Replaced bool   // the index was written anew and renamed into place
	Path     string // the index
	// The same for the tree file (tree.go): stored hashes appended.
	TreeAppended int
	TreeReplaced bool
	TreePath     string
}

// Rebuild makes the side files (index and tree) of the log at path agree
// with it, holding the log's lock (waiting at most lockTimeout for it): the
// whole log must verify (as `signstar audit verify`), and every entry and
// hash is derived from it again. A side file that agrees with the log as
// far as it goes only has what it lacks appended, which works on a
// `chattr +a` file. Any other is replaced by a new file with the log's
// owner, group and mode, renamed over it; that needs `chattr -a` on the old
// one first.
func Rebuild(path string, lockTimeout time.Duration) (RebuildResult, error) {
	res := RebuildResult{Path: IndexPath(path), TreePath: TreePath(path)}
	lf, err := os.OpenFile(path, os.O_RDONLY|oNoFollow, 0)
	if err != nil {
		return res, fmt.Errorf("cannot open audit log %s: %v", path, unwrapPath(err))
	}
	defer lf.Close()
	if err := flockWait(lf, path, lockTimeout); err != nil {
		return res, err
	}
	fi, err := lf.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return res, fmt.Errorf("audit log %s is not a regular file", path)
	}
	th, err := readTreeHeader(res.TreePath)
	if err != nil {
		return res, err
	}

	idx, err := newSideRebuild(res.Path, "index", indexHeader(), func(old []byte) bool { return bytes.Equal(old, indexHeader()) })
	if err != nil {
		return res, err
	}
	defer idx.close()
	tree, err := newSideRebuild(res.TreePath, "tree", th.marshal(), func(old []byte) bool { return bytes.Equal(old, th.marshal()) })
	if err != nil {
		return res, err
	}
	defer tree.close()

	var last Entry
	var ring [HeadsWindow]Entry // the newest entries, for nextEntry
	window := func(seq uint64) (Entry, error) {
		if seq == 0 || seq > last.Seq || last.Seq-seq >= HeadsWindow {
			return Entry{}, fmt.Errorf("audit rebuild: entry %d is not at hand", seq)
		}
		return ring[seq%HeadsWindow], nil
	}
	fr := NewFrontier()
	first, prev := uint64(1), ZeroHash
	if th.Base > 0 {
		// A rotated log's file: what comes before it is in the side files
		// already (rotate.go), and cannot be derived from this file.
		first, prev = th.Base+1, hex.EncodeToString(th.BasePrev[:])
		pi, pt, err := rotatedPrefix(res.Path, res.TreePath, th)
		if err != nil {
			return res, err
		}
		idx.add(pi)
		tree.add(pt)
		for s := uint64(1); s <= th.Base; s++ {
			if th.Base-s < HeadsWindow {
				e, _ := unmarshalEntry(pi[(s-1)*EntrySize : s*EntrySize])
				ring[s%HeadsWindow] = e
				last = e
			}
		}
		fr, err = frontierFromFile(bytes.NewReader(append(make([]byte, TreeHeaderSize), pt...)), int64(th.Base))
		if err != nil {
			return res, err
		}
	}
	hb := make([]byte, 0, 64*32)
	n, err := verifyFrom(bufioReader(lf), first, prev, func(rec *Record, line []byte, end int64) error {
		e, err := nextEntry(&last, func(l uint64) (heads, error) { return readHeads(window, l) }, rec, line, end)
		if err != nil {
			return err
		}
		last = e
		ring[e.Seq%HeadsWindow] = e
		idx.add(e.marshal())
		hs, err := fr.Add(line)
		if err != nil {
			return err
		}
		hb = hb[:0]
		for _, h := range hs {
			hb = append(hb, h[:]...)
		}
		tree.add(hb)
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("audit log %s does not verify, so it cannot be indexed: %v (repair it first: signstar audit verify)", path, err)
	}
	res.Records = n
	a, replaced, err := idx.finish(fi)
	if err != nil {
		return res, err
	}
	res.Appended, res.Replaced = a/EntrySize, replaced
	a, replaced, err = tree.finish(fi)
	if err != nil {
		return res, err
	}
	res.TreeAppended, res.TreeReplaced = a/32, replaced
	return res, nil
}

// rotatedPrefix is what a rotated log's side files hold of the records
// before its file: the index entries and the tree's stored hashes.
func rotatedPrefix(ip, tp string, th treeHeader) (idx, tree []byte, err error) {
	bad := func(what string) error {
		return fmt.Errorf("%s does not hold the %d records before this log file, which cannot be derived from it: copy them from the rotated files' (the log continues %d records kept elsewhere)", what, th.Base, th.Base)
	}
	idx = make([]byte, th.Base*EntrySize)
	f, err := os.Open(ip)
	if err != nil {
		return nil, nil, bad(ip)
	}
	defer f.Close()
	if _, err := f.ReadAt(idx, EntrySize); err != nil {
		return nil, nil, bad(ip)
	}
	for s := uint64(1); s <= th.Base; s++ {
		e, err := unmarshalEntry(idx[(s-1)*EntrySize : s*EntrySize])
		if err != nil || e.Seq != s {
			return nil, nil, bad(ip)
		}
		if s == th.Base && !bytes.Equal(e.LineHash[:], th.BasePrev[:16]) {
			return nil, nil, bad(ip)
		}
	}
	tree = make([]byte, tlog.StoredHashCount(int64(th.Base))*tlog.HashSize)
	g, err := os.Open(tp)
	if err != nil {
		return nil, nil, bad(tp)
	}
	defer g.Close()
	if _, err := g.ReadAt(tree, TreeHeaderSize); err != nil {
		return nil, nil, bad(tp)
	}
	return idx, tree, nil
}

// readTreeHeader is the header of the tree file at tp, the zero one when
// it is missing or damaged (then the tree is written anew).
func readTreeHeader(tp string) (treeHeader, error) {
	f, err := os.Open(tp)
	if errors.Is(err, os.ErrNotExist) {
		return treeHeader{}, nil
	}
	if err != nil {
		return treeHeader{}, fmt.Errorf("cannot open audit tree %s: %v", tp, unwrapPath(err))
	}
	defer f.Close()
	b := make([]byte, TreeHeaderSize)
	if _, err := io.ReadFull(f, b); err != nil {
		return treeHeader{}, nil
	}
	h, err := parseTreeHeader(b)
	if err != nil {
		return treeHeader{}, nil
	}
	return h, nil
}

// sideRebuild writes a side file anew into a temporary file while reading
// the old one alongside, as long as it agrees.
type sideRebuild struct {
	path, what string
	old        *os.File
	oldR       io.Reader
	agrees     bool
	oldEnded   bool
	tmp        *os.File
	w          *bufio.Writer
	tail       []byte // what goes past the old file's end, while it agrees
	buf        []byte
}

func newSideRebuild(p, what string, header []byte, headerOK func([]byte) bool) (*sideRebuild, error) {
	rb := &sideRebuild{path: p, what: what}
	old, err := os.Open(p)
	rb.agrees = err == nil
	if rb.agrees {
		rb.old = old
		rb.oldR = bufioReader(old)
		head := make([]byte, len(header))
		if _, err := io.ReadFull(rb.oldR, head); err != nil || !headerOK(head) {
			rb.agrees = false
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("cannot open audit %s %s: %v", what, p, unwrapPath(err))
	}
	rb.tmp, err = os.CreateTemp(filepath.Dir(p), ".signstar-side-*")
	if err != nil {
		rb.close()
		return nil, fmt.Errorf("cannot write the new audit %s next to %s: %v", what, p, unwrapPath(err))
	}
	rb.w = bufio.NewWriterSize(rb.tmp, 1<<20)
	rb.w.Write(header)
	return rb, nil
}

func (rb *sideRebuild) close() {
	if rb.old != nil {
		rb.old.Close()
	}
	if rb.tmp != nil {
		rb.tmp.Close()
		os.Remove(rb.tmp.Name())
	}
}

// add is the next bytes of the side file.
func (rb *sideRebuild) add(b []byte) {
	rb.w.Write(b)
	if !rb.agrees {
		return
	}
	if !rb.oldEnded {
		if cap(rb.buf) < len(b) {
			rb.buf = make([]byte, len(b))
		}
		old := rb.buf[:len(b)]
		k, err := io.ReadFull(rb.oldR, old)
		switch {
		case err == nil:
			if !bytes.Equal(old, b) {
				rb.agrees = false
			}
			return
		case err == io.EOF:
			rb.oldEnded = true
		default: // a partial end, or a read error
			_ = k
			rb.agrees = false
			return
		}
	}
	if len(rb.tail) < 64<<20 {
		rb.tail = append(rb.tail, b...)
	} else {
		rb.agrees = false // too much to keep; write the whole file
	}
}

// finish makes the side file what was added: it appends the tail to an old
// file that agreed, or renames the new one into place with the log's owner
// and mode. It returns the bytes appended.
func (rb *sideRebuild) finish(fi os.FileInfo) (appended int, replaced bool, err error) {
	if rb.agrees && !rb.oldEnded {
		// The old file may hold more than the log.
		var one [1]byte
		if _, err := io.ReadFull(rb.oldR, one[:]); err != io.EOF {
			rb.agrees = false
		}
	}
	if rb.agrees {
		if len(rb.tail) == 0 {
			return 0, false, nil
		}
		w, err := os.OpenFile(rb.path, os.O_WRONLY|os.O_APPEND|oNoFollow, 0)
		if err != nil {
			return 0, false, fmt.Errorf("cannot open audit %s %s: %v", rb.what, rb.path, unwrapPath(err))
		}
		defer w.Close()
		if _, err := w.Write(rb.tail); err != nil {
			return 0, false, fmt.Errorf("cannot write audit %s %s: %v", rb.what, rb.path, unwrapPath(err))
		}
		if err := w.Sync(); err != nil {
			return 0, false, fmt.Errorf("cannot fsync audit %s %s: %v", rb.what, rb.path, unwrapPath(err))
		}
		return len(rb.tail), false, nil
	}
	tmp := rb.tmp
	if err := rb.w.Flush(); err != nil {
		return 0, false, fmt.Errorf("cannot write the new audit %s %s: %v", rb.what, tmp.Name(), err)
	}
	// The signing user writes the side files as it writes the log.
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if err := tmp.Chown(int(st.Uid), int(st.Gid)); err != nil {
			return 0, false, fmt.Errorf("cannot give the new audit %s the log's owner: %v", rb.what, unwrapPath(err))
		}
	}
	if err := tmp.Chmod(fi.Mode().Perm()); err != nil {
		return 0, false, fmt.Errorf("cannot give the new audit %s the log's mode: %v", rb.what, unwrapPath(err))
	}
	if err := tmp.Sync(); err != nil {
		return 0, false, fmt.Errorf("cannot fsync the new audit %s: %v", rb.what, err)
	}
	if err := os.Rename(tmp.Name(), rb.path); err != nil {
		if errors.Is(err, os.ErrPermission) {
			return 0, false, fmt.Errorf("cannot replace audit %s %s: %v (if it is append-only, chattr -a it first, and chattr +a it again after)", rb.what, rb.path, unwrapPath(err))
		}
		return 0, false, fmt.Errorf("cannot replace audit %s %s: %v", rb.what, rb.path, unwrapPath(err))
	}
	if d, err := os.Open(filepath.Dir(rb.path)); err == nil {
		d.Sync()
		d.Close()
	}
	return 0, true, nil
}

func bufioReader(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(r, 1<<20) }

func flockWait(f *os.File, path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if err != unix.EWOULDBLOCK && err != unix.EINTR {
			return fmt.Errorf("cannot lock audit log %s: %v", path, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("audit log %s stayed locked by another signstar for %v", path, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
