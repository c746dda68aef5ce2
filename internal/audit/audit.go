// Package audit keeps signstar's tamper-evident log: JSON Lines, one record
// per request, each line carrying the SHA-256 of the line before it.
//
// Appends take an exclusive flock on the log, read the last line to chain
// from it, write the new line with a single write(2) on an O_WRONLY|O_APPEND
// descriptor, and fsync before the lock is released. Two signers never
// interleave, and a record reported as written is on disk. Nothing here
// truncates or rewrites: a write cut short leaves a partial last line, and
// signing stops until an operator repairs it (README, "The audit log").
package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/tlog"
	"golang.org/x/sys/unix"
)

// Outcomes.
const (
	Signed  = "signed"
	Refused = "refused"
	Failed  = "failed"
	// Vote is a builder's vote for the bytes it sent, in a quorum profile:
	// recorded, not signed, not refused.
	Vote = "vote"
)

// HashedByClient is the record's hashed_by when the digest is the client's.
const HashedByClient = "client"

// ZeroHash is the prev of the first record.
var ZeroHash = strings.Repeat("0", 64)

// MaxLine bounds a record line. The longest fields are the command (at most
// 1024 bytes, up to 6 KiB once JSON-escaped) and an RSA-4096 signature.
const MaxLine = 64 << 10

// TimeFormat is RFC 3339 in UTC with microseconds.
const TimeFormat = "2006-01-02T15:04:05.000000Z"

// Record is one line of the log. The field order is the line's order.
type Record struct {
	Seq     uint64 `json:"seq"`
	Time    string `json:"time"`
	User    string `json:"user"`
	SSHKey  string `json:"ssh_key"`
	Client  string `json:"client"`
	Command string `json:"command"`
	Profile string `json:"profile"`
	Outcome string `json:"outcome"`
	Reason  string `json:"reason"`
	// Name is the member of a `sign --tar` archive the record is about;
	// "" (and left out of the line) for a single artifact, and for a
	// record about the archive as a whole.
	Name   string `json:"name,omitempty"`
	Size   int64  `json:"size"`
	Digest string `json:"digest"`
	// HashedBy is HashedByClient when the client hashed the artifact and
	// digest and size are its claim (a signstar-v1 request); "", and left
	// out of the line, when signstar hashed the bytes it read.
	HashedBy string `json:"hashed_by,omitempty"`
	Kind     string `json:"kind"`
	// Voter is the entry of the profile's voters that the caller is, on a
	// vote and on the signature that met a quorum; absent otherwise, so
	// that records without it keep their bytes.
	Voter string `json:"voter,omitempty"`
	Key   string `json:"key"`
	// NextKey is the fingerprint of a profile's next_key when it signed
	// beside Key, during a key transition: Signature then holds two
	// signature packets, Key's and NextKey's. Absent otherwise.
	NextKey   string `json:"next_key,omitempty"`
	Signature string `json:"signature"`
	Sandbox   string `json:"sandbox"`
	Prev      string `json:"prev"`
}

// Marshal is the record's line, without the newline: the JSON that
// encoding/json writes for Record with HTML escaping off, field for field
// and byte for byte (TestMarshalMatchesJSON, FuzzMarshal), written by hand
// because encoding/json's first use in a process costs more than the rest
// of the audit step (about 0.07 ms of reflection per request).
func (r *Record) Marshal() ([]byte, error) {
	b := make([]byte, 0, 600+len(r.Reason)+len(r.Name)+len(r.Signature))
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, r.Seq, 10)
	b = appendField(b, "time", r.Time)
	b = appendField(b, "user", r.User)
	b = appendField(b, "ssh_key", r.SSHKey)
	b = appendField(b, "client", r.Client)
	b = appendField(b, "command", r.Command)
	b = appendField(b, "profile", r.Profile)
	b = appendField(b, "outcome", r.Outcome)
	b = appendField(b, "reason", r.Reason)
	if r.Name != "" {
		b = appendField(b, "name", r.Name)
	}
	b = append(b, `,"size":`...)
	b = strconv.AppendInt(b, r.Size, 10)
	b = appendField(b, "digest", r.Digest)
	if r.HashedBy != "" {
		b = appendField(b, "hashed_by", r.HashedBy)
	}
	b = appendField(b, "kind", r.Kind)
	if r.Voter != "" {
		b = appendField(b, "voter", r.Voter)
	}
	b = appendField(b, "key", r.Key)
	if r.NextKey != "" {
		b = appendField(b, "next_key", r.NextKey)
	}
	b = appendField(b, "signature", r.Signature)
	b = appendField(b, "sandbox", r.Sandbox)
	b = appendField(b, "prev", r.Prev)
	return append(b, '}'), nil
}

func appendField(b []byte, name, value string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendJSONString(b, value)
}

// appendJSONString quotes s as encoding/json does without HTML escaping:
// \" and \\, \b \f \n \r \t, \u00XX for the other control bytes, \ufffd
// for each byte of invalid UTF-8, and \u2028, \u2029 escaped.
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// LineHash is the hex SHA-256 of a line's bytes without its newline.
func LineHash(line []byte) string {
	s := sha256.Sum256(line)
	return hex.EncodeToString(s[:])
}

// Log is an open audit log, through two descriptors: one read-only, for
// the lock and for reading the tail, and one write-only with O_APPEND, the
// only one that writes. Neither can rewrite what is there: the read one
// cannot write or map the file writable, the write one can only append, and
// the sandbox keeps it so (no fcntl that clears O_APPEND, no ftruncate or
// fallocate, no shared mappings).
type Log struct {
	r, w     *os.File
	ir, iw   *os.File // the index's, likewise (index.go)
	tr, tw   *os.File // the tree's, likewise (tree.go)
	path     string
	idxPath  string
	treePath string
	treeHead treeHeader
	gate     *os.File // the log's directory, flocked shared (rotate.go); nil for rotate's own
	syslog   *Syslog  // Forward's; nil when records stay here
	// LockTimeout bounds the wait for another signstar's lock.
	LockTimeout time.Duration
}

// Open opens (creating if needed, mode 0640) the log at path for appending.
// It is called before the sandbox locks down; afterwards only the
// descriptors are used.
func Open(path string) (*Log, error) {
	// The rotation gate (rotate.go): held shared for the process's life.
	gate, err := enterGate(path, 30*time.Second)
	if err != nil {
		return nil, err
	}
	l, err := open(path)
	if err != nil {
		gate.Close()
		return nil, err
	}
	l.gate = gate
	return l, nil
}

// open is Open without the rotation gate.
func open(path string) (*Log, error) {
	const wflags = os.O_WRONLY | os.O_APPEND | oNoFollow
	w, err := os.OpenFile(path, wflags, 0)
	if errors.Is(err, os.ErrNotExist) {
		w, err = os.OpenFile(path, wflags|os.O_CREATE|os.O_EXCL, 0o640)
		if err == nil {
			// Make the new directory entry durable too.
			if d, derr := os.Open(filepath.Dir(path)); derr == nil {
				d.Sync()
				d.Close()
			}
		} else if errors.Is(err, os.ErrExist) {
			w, err = os.OpenFile(path, wflags, 0)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cannot open audit log %s: %v", path, unwrapPath(err))
	}
	r, err := os.OpenFile(path, os.O_RDONLY|oNoFollow, 0)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("cannot open audit log %s: %v", path, unwrapPath(err))
	}
	if err := sameRegularFile(r, w); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("audit log %s %v", path, err)
	}
	fi, err := r.Stat()
	if err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("cannot stat audit log %s: %v", path, err)
	}
	ir, iw, err := openIndex(path, fi.Size())
	if err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	tr, tw, th, err := openTree(path, fi.Size())
	if err != nil {
		r.Close()
		w.Close()
		ir.Close()
		iw.Close()
		return nil, err
	}
	return &Log{r: r, w: w, ir: ir, iw: iw, tr: tr, tw: tw, treeHead: th, path: path, idxPath: IndexPath(path), treePath: TreePath(path), LockTimeout: 30 * time.Second}, nil
}

// oNoFollow opens the log and its side files: never through a symbolic
// link, and without blocking, so that a FIFO put at the path fails the open
// (ENXIO for a writer without a reader) or sameRegularFile instead of
// hanging the request. O_NONBLOCK does nothing to a regular file's I/O.
const oNoFollow = syscall.O_NOFOLLOW | syscall.O_NONBLOCK

// sameRegularFile checks that both descriptors are the one regular file: the
// name could have been replaced between the two opens.
func sameRegularFile(a, b *os.File) error {
	fa, err := a.Stat()
	if err != nil || !fa.Mode().IsRegular() {
		return errors.New("is not a regular file")
	}
	fb, err := b.Stat()
	if err != nil || !os.SameFile(fa, fb) {
		return errors.New("was replaced while it was opened")
	}
	return nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Path is the log's file name.
func (l *Log) Path() string { return l.path }

// FDs are the descriptors of the log and its side files, and the syslog
// socket records are forwarded to, for the sandbox to keep.
func (l *Log) FDs() []int {
	fds := []int{int(l.r.Fd()), int(l.w.Fd()), int(l.ir.Fd()), int(l.iw.Fd()), int(l.tr.Fd()), int(l.tw.Fd())}
	if l.gate != nil {
		fds = append(fds, int(l.gate.Fd()))
	}
	if l.syslog != nil && l.syslog.FD() >= 0 {
		fds = append(fds, l.syslog.FD())
	}
	return fds
}

// AppendFDs are the descriptors that write: opened O_WRONLY|O_APPEND, for
// the sandbox to check and keep append-only.
func (l *Log) AppendFDs() []int { return []int{int(l.w.Fd()), int(l.iw.Fd()), int(l.tw.Fd())} }

// Close closes the log, its side files and its syslog socket.
func (l *Log) Close() error {
	var err error
	for _, f := range []*os.File{l.w, l.r, l.iw, l.ir, l.tw, l.tr} {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if l.gate != nil {
		l.gate.Close()
	}
	if l.syslog != nil {
		l.syslog.Close()
	}
	return err
}

// Append writes r as the next record: it sets Seq and Prev, writes and
// fsyncs. It returns only once the line is on disk.
func (l *Log) Append(r *Record) error {
	tx, err := l.Lock()
	if err != nil {
		return err
	}
	defer tx.Unlock()
	return tx.Append(r)
}

// Tx holds the log's exclusive lock. Reading the log under the lock and
// appending under the same lock makes decisions taken from the log (a rate
// limit) safe against concurrent signers.
type Tx struct {
	l        *Log
	lastSeq  uint64
	lastHash string
	lastLeaf tlog.Hash // the tree's leaf hash of the last line
	size     int64
	done     bool
	idx      indexState
	tree     treeState
}

// Lock takes the exclusive lock, waiting at most LockTimeout.
func (l *Log) Lock() (*Tx, error) {
	deadline := time.Now().Add(l.LockTimeout)
	for {
		err := unix.Flock(int(l.r.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if err != unix.EWOULDBLOCK && err != unix.EINTR {
			return nil, fmt.Errorf("cannot lock audit log %s: %v", l.path, err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("audit log %s stayed locked by another signstar for %v", l.path, l.LockTimeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
	tx := &Tx{l: l}
	tx.tree.header = l.treeHead
	if err := tx.readTail(); err != nil {
		tx.Unlock()
		return nil, err
	}
	if err := tx.checkIndex(); err != nil {
		tx.Unlock()
		return nil, err
	}
	if err := tx.checkTree(); err != nil {
		tx.Unlock()
		return nil, err
	}
	return tx, nil
}

// Unlock releases the lock. It is safe to call twice.
func (tx *Tx) Unlock() {
	if tx.done {
		return
	}
	tx.done = true
	unix.Flock(int(tx.l.r.Fd()), unix.LOCK_UN)
}

func (tx *Tx) readTail() error {
	fi, err := tx.l.r.Stat()
	if err != nil {
		return fmt.Errorf("cannot stat audit log %s: %v", tx.l.path, err)
	}
	tx.size = fi.Size()
	if tx.size == 0 {
		// A rotated log's file starts after the record its tree's header
		// names (rotate.go).
		tx.lastSeq, tx.lastHash = tx.tree.header.Base, ZeroHash
		if tx.lastSeq > 0 {
			tx.lastHash = fmt.Sprintf("%x", tx.tree.header.BasePrev)
		}
		return nil
	}
	line, err := tx.lineBefore(tx.size)
	if err != nil {
		return err
	}
	seq, ok := recordSeq(line)
	if !ok {
		return fmt.Errorf("audit log %s: the last line is not a record: run 'signstar audit verify'", tx.l.path)
	}
	tx.lastSeq, tx.lastHash, tx.lastLeaf = seq, LineHash(line), tlog.RecordHash(line)
	return nil
}

// recordSeq is the sequence number of a record line: valid JSON that starts
// as Marshal starts every record, {"seq":N, with N > 0. It reads the one
// field the chain needs without decoding the record (see Marshal for why);
// `signstar audit verify` checks the rest of every line.
func recordSeq(line []byte) (uint64, bool) {
	rest, ok := bytes.CutPrefix(line, []byte(`{"seq":`))
	if !ok {
		return 0, false
	}
	i := 0
	for i < len(rest) && i < 20 && '0' <= rest[i] && rest[i] <= '9' {
		i++
	}
	if i == 0 || i >= len(rest) || rest[i] != ',' || (rest[0] == '0') {
		return 0, false
	}
	seq, err := strconv.ParseUint(string(rest[:i]), 10, 64)
	if err != nil || !json.Valid(line) {
		return 0, false
	}
	return seq, true
}

// lineBefore returns the line that ends (with its newline) at offset end.
func (tx *Tx) lineBefore(end int64) ([]byte, error) {
	var last [1]byte
	if _, err := tx.l.r.ReadAt(last[:], end-1); err != nil {
		return nil, fmt.Errorf("cannot read audit log %s: %v", tx.l.path, err)
	}
	if last[0] != '\n' {
		return nil, fmt.Errorf("audit log %s ends in a partial line: run 'signstar audit verify' and repair it before signing", tx.l.path)
	}
	start := end - 1
	const chunk = 4096
	var buf []byte
	for start > 0 {
		n := int64(chunk)
		if n > start {
			n = start
		}
		b := make([]byte, n)
		if _, err := tx.l.r.ReadAt(b, start-n); err != nil {
			return nil, fmt.Errorf("cannot read audit log %s: %v", tx.l.path, err)
		}
		if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
			buf = append(b[i+1:], buf...)
			break
		}
		buf = append(b, buf...)
		start -= n
		if int64(len(buf)) > MaxLine {
			return nil, fmt.Errorf("audit log %s: a line is longer than %d bytes", tx.l.path, MaxLine)
		}
	}
	return buf, nil
}

// Scan calls fn with the records from the newest to the oldest until fn
// returns false.
func (tx *Tx) Scan(fn func(*Record) bool) error {
	end := tx.size
	for end > 0 {
		line, err := tx.lineBefore(end)
		if err != nil {
			return err
		}
		var r Record
		if err := json.Unmarshal(line, &r); err != nil {
			return fmt.Errorf("audit log %s: a line is not a record: run 'signstar audit verify'", tx.l.path)
		}
		if !fn(&r) {
			return nil
		}
		end -= int64(len(line)) + 1
	}
	return nil
}

// AppendAll writes recs as the next records, in order, with one write and
// one fsync (see Batch).
func (tx *Tx) AppendAll(recs []*Record) error {
	if len(recs) == 1 {
		return tx.Append(recs[0])
	}
	b := tx.NewBatch()
	for _, r := range recs {
		if err := b.Add(r); err != nil {
			return err
		}
	}
	return b.Append()
}

// write appends buf, whole lines, to the log and fsyncs it.
func (tx *Tx) write(buf []byte) error {
	n, err := tx.l.w.Write(buf)
	if err == nil && n != len(buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		// A short write (disk full, file size limit) leaves part of a
		// line, which nothing here may cut off: the log is append-only,
		// to this process as to the sandbox. The next append sees the
		// partial line and refuses until an operator repairs the log.
		return fmt.Errorf("cannot write audit log %s: %v", tx.l.path, unwrapPath(err))
	}
	if err := tx.l.w.Sync(); err != nil {
		return fmt.Errorf("cannot fsync audit log %s: %v", tx.l.path, unwrapPath(err))
	}
	return nil
}

// Append writes r as the next record and fsyncs it, then sends it to the
// syslog socket when the log has one (Forward). A *SyslogError means the
// record is on disk but did not reach a required socket.
func (tx *Tx) Append(r *Record) error {
	if tx.done {
		return errors.New("audit: append after unlock")
	}
	r.Seq = tx.lastSeq + 1
	r.Prev = tx.lastHash
	line, err := r.Marshal()
	if err != nil {
		return err
	}
	if len(line) > MaxLine {
		return fmt.Errorf("audit record of %d bytes is longer than %d", len(line), MaxLine)
	}
	buf := append(line, '\n')
	e, err := nextEntry(&tx.idx.last, tx.headsAt, r, line, tx.size+int64(len(buf)))
	if err != nil {
		return err
	}
	hs, err := tx.treeHashes(line)
	if err != nil {
		return err
	}
	if err := tx.write(buf); err != nil {
		return err
	}
	tx.lastSeq, tx.lastHash, tx.lastLeaf = r.Seq, LineHash(line), tlog.RecordHash(line)
	tx.size += int64(len(buf))
	// Off the host as soon as it is on disk, under the lock, so that the
	// daemon receives the records in the log's order.
	ferr := tx.forward(r, line)
	// The side files are not fsynced: they are derived, and one that lost
	// its last entries in a crash is caught up from the log (checkIndex,
	// checkTree).
	if err := tx.writeIndex(e.marshal()); err != nil {
		return err
	}
	tx.idx.last, tx.idx.count = e, e.Seq
	if err := tx.writeTree(hs); err != nil {
		return err
	}
	return ferr
}
