// Package audit keeps signstar's tamper-evident log: JSON Lines, one record
// per request, each line carrying the SHA-256 of the line before it.
//
// Appends take an exclusive flock on the log, read the last line to chain
// from it, write the new line with a single write(2) on an O_APPEND
// descriptor, and fsync before the lock is released. Two signers never
// interleave, and a record reported as written is on disk.
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
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Outcomes.
const (
	Signed  = "signed"
	Refused = "refused"
	Failed  = "failed"
)

// ZeroHash is the prev of the first record.
var ZeroHash = strings.Repeat("0", 64)

// MaxLine bounds a record line. The longest fields are the command (at most
// 1024 bytes, up to 6 KiB once JSON-escaped) and an RSA-4096 signature.
const MaxLine = 64 << 10

// TimeFormat is RFC 3339 in UTC with microseconds.
const TimeFormat = "2006-01-02T15:04:05.000000Z"

// Record is one line of the log. The field order is the line's order.
type Record struct {
	Seq       uint64 `json:"seq"`
	Time      string `json:"time"`
	User      string `json:"user"`
	SSHKey    string `json:"ssh_key"`
	Client    string `json:"client"`
	Command   string `json:"command"`
	Profile   string `json:"profile"`
	Outcome   string `json:"outcome"`
	Reason    string `json:"reason"`
	Size      int64  `json:"size"`
	Digest    string `json:"digest"`
	Kind      string `json:"kind"`
	Key       string `json:"key"`
	Signature string `json:"signature"`
	Sandbox   string `json:"sandbox"`
	Prev      string `json:"prev"`
}

// Marshal is the record's line, without the newline.
func (r *Record) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// LineHash is the hex SHA-256 of a line's bytes without its newline.
func LineHash(line []byte) string {
	s := sha256.Sum256(line)
	return hex.EncodeToString(s[:])
}

// Log is an open audit log.
type Log struct {
	f    *os.File
	path string
	// LockTimeout bounds the wait for another signstar's lock.
	LockTimeout time.Duration
}

// Open opens (creating if needed, mode 0640) the log at path for appending.
// It is called before the sandbox locks down; afterwards only the
// descriptor is used.
func Open(path string) (*Log, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		f, err = os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o640)
		if err == nil {
			// Make the new directory entry durable too.
			if d, derr := os.Open(filepath.Dir(path)); derr == nil {
				d.Sync()
				d.Close()
			}
		} else if errors.Is(err, os.ErrExist) {
			f, err = os.OpenFile(path, os.O_RDWR|os.O_APPEND|syscall.O_NOFOLLOW, 0)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cannot open audit log %s: %v", path, unwrapPath(err))
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("audit log %s is not a regular file", path)
	}
	return &Log{f: f, path: path, LockTimeout: 30 * time.Second}, nil
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

// Fd is the log's descriptor, for the sandbox to keep.
func (l *Log) Fd() uintptr { return l.f.Fd() }

// Close closes the log.
func (l *Log) Close() error { return l.f.Close() }

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
	size     int64
	done     bool
}

// Lock takes the exclusive lock, waiting at most LockTimeout.
func (l *Log) Lock() (*Tx, error) {
	deadline := time.Now().Add(l.LockTimeout)
	for {
		err := unix.Flock(int(l.f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
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
	if err := tx.readTail(); err != nil {
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
	unix.Flock(int(tx.l.f.Fd()), unix.LOCK_UN)
}

func (tx *Tx) readTail() error {
	fi, err := tx.l.f.Stat()
	if err != nil {
		return fmt.Errorf("cannot stat audit log %s: %v", tx.l.path, err)
	}
	tx.size = fi.Size()
	if tx.size == 0 {
		tx.lastSeq, tx.lastHash = 0, ZeroHash
		return nil
	}
	line, err := tx.lineBefore(tx.size)
	if err != nil {
		return err
	}
	var r Record
	if err := json.Unmarshal(line, &r); err != nil || r.Seq == 0 {
		return fmt.Errorf("audit log %s: the last line is not a record: run 'signstar audit verify'", tx.l.path)
	}
	tx.lastSeq, tx.lastHash = r.Seq, LineHash(line)
	return nil
}

// lineBefore returns the line that ends (with its newline) at offset end.
func (tx *Tx) lineBefore(end int64) ([]byte, error) {
	var last [1]byte
	if _, err := tx.l.f.ReadAt(last[:], end-1); err != nil {
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
		if _, err := tx.l.f.ReadAt(b, start-n); err != nil {
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

// Last returns the sequence number of the last record (0 for an empty log).
func (tx *Tx) Last() uint64 { return tx.lastSeq }

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

// Append writes r as the next record and fsyncs it.
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
	n, err := tx.l.f.Write(buf)
	if err == nil && n != len(buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		// A short write (disk full, file size limit) leaves half a line;
		// cut it off so the log stays a chain. If even that fails (an
		// append-only file), the next append sees the partial line and
		// refuses until an operator repairs the log.
		tx.l.f.Truncate(tx.size)
		return fmt.Errorf("cannot write audit log %s: %v", tx.l.path, unwrapPath(err))
	}
	if err := tx.l.f.Sync(); err != nil {
		tx.l.f.Truncate(tx.size)
		return fmt.Errorf("cannot fsync audit log %s: %v", tx.l.path, unwrapPath(err))
	}
	tx.lastSeq, tx.lastHash = r.Seq, LineHash(line)
	tx.size += int64(len(buf))
	return nil
}
