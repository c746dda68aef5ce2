package audit

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/signstar/signstar/internal/digest"
)

// VerifyError names the first line that does not fit the chain.
type VerifyError struct {
	Line int // 1-based
	Msg  string
}

func (e *VerifyError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// Verify reads a whole log and checks that every line is a well-formed
// record in canonical form, that seq counts 1, 2, 3, ... and that each prev
// is the SHA-256 of the line before. It returns the number of records.
//
// An edit to any line breaks the prev of the line after it; an edit to the
// last line is caught only when it is not canonical or not self-consistent,
// which is why the README tells operators to ship the log off the host.
func Verify(r io.Reader) (int, error) {
	return verifyEach(r, nil)
}

// verifyEach is Verify, calling fn (when not nil) with each good record,
// its line and the offset just past its newline.
func verifyEach(r io.Reader, fn func(rec *Record, line []byte, end int64) error) (int, error) {
	return verifyFrom(r, 1, ZeroHash, fn)
}

// verifyFrom is verifyEach of a stream whose first record is seq first,
// chained to prev (a log file that continues another).
func verifyFrom(r io.Reader, first uint64, prev string, fn func(rec *Record, line []byte, end int64) error) (int, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	n := 0
	var end int64 // where the last complete line ends
	for {
		line, err := readLine(br)
		if err == io.EOF {
			return n, nil
		}
		n++
		if err == errPartial {
			// Nothing in signstar cuts a write off again (the log is
			// append-only); the operator does, once the cause is fixed.
			return n - 1, &VerifyError{n, fmt.Sprintf("%v: the complete records end at byte %d; once the cause is fixed, cut the rest off as root (chattr -a, truncate -s %d, chattr +a)", err, end, end)}
		}
		if err != nil {
			return n - 1, &VerifyError{n, err.Error()}
		}
		end += int64(len(line)) + 1
		rec, err := parseLine(line)
		if err != nil {
			return n - 1, &VerifyError{n, err.Error()}
		}
		if want := first + uint64(n) - 1; rec.Seq != want {
			return n - 1, &VerifyError{n, fmt.Sprintf("seq is %d, expected %d (a record was removed, reordered or added)", rec.Seq, want)}
		}
		if rec.Prev != prev {
			return n - 1, &VerifyError{n, "prev does not match the line before (that line was edited, removed or reordered)"}
		}
		prev = LineHash(line)
		if fn != nil {
			if err := fn(rec, line, end); err != nil {
				return n - 1, err
			}
		}
	}
}

var errPartial = errors.New("incomplete line (the log was truncated or a write was cut off)")

func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > MaxLine+1 {
			return nil, fmt.Errorf("line longer than %d bytes", MaxLine)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			if len(line) == 0 {
				return nil, io.EOF
			}
			return nil, errPartial
		}
		if err != nil {
			return nil, err
		}
		return line[:len(line)-1], nil
	}
}

// parseLine checks one record line on its own.
func parseLine(line []byte) (*Record, error) {
	var r Record
	if fr, ok := fastRecord(line); ok {
		if canon, err := fr.Marshal(); err == nil && bytes.Equal(canon, line) {
			r = *fr
			return checkRecord(&r)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, errors.New("not a JSON audit record")
	}
	if dec.More() {
		return nil, errors.New("trailing data after the record")
	}
	canon, err := r.Marshal()
	if err != nil || !bytes.Equal(canon, line) {
		return nil, errors.New("record is not in signstar's form (edited by hand?)")
	}
	return checkRecord(&r)
}

// checkRecord is parseLine's check of a record in canonical form.
func checkRecord(rp *Record) (*Record, error) {
	r := *rp
	if _, err := time.Parse(TimeFormat, r.Time); err != nil {
		return nil, errors.New("time is not RFC 3339 UTC")
	}
	if r.HashedBy != "" && r.HashedBy != HashedByClient {
		return nil, fmt.Errorf("hashed_by %q is not %q", r.HashedBy, HashedByClient)
	}
	switch r.Outcome {
	case Signed:
		if r.Reason != "" || r.Signature == "" || r.Key == "" || r.Digest == "" {
			return nil, errors.New("signed record without signature, key or digest, or with a reason")
		}
		if err := checkSignature(&r); err != nil {
			return nil, err
		}
	case Refused, Failed:
		if r.Reason == "" || r.Signature != "" || r.Voter != "" {
			return nil, errors.New(r.Outcome + " record without a reason, or with a signature or a voter")
		}
	case Vote:
		if r.Reason == "" || r.Signature != "" || r.Voter == "" || r.Digest == "" || r.Profile == "" {
			return nil, errors.New("vote record without a reason, voter, digest or profile, or with a signature")
		}
	default:
		return nil, fmt.Errorf("outcome %q is not signed, refused, failed or vote", r.Outcome)
	}
	if len(r.Prev) != 64 {
		return nil, errors.New("prev is not a SHA-256")
	}
	return &r, nil
}

// checkSignature ties a signed record's signature to the record: it must be
// one v4 binary-document signature whose issuer is the record's key, made in
// the record's second, with the hash the digest names. An edit to time, key
// or digest algorithm of any line, the last one included, shows here.
func checkSignature(r *Record) error {
	raw, err := base64.StdEncoding.Strict().DecodeString(r.Signature)
	if err != nil {
		return errors.New("signature is not base64")
	}
	// One packet per key: Key's, then NextKey's during a key transition.
	keys := []string{r.Key}
	if r.NextKey != "" {
		keys = append(keys, r.NextKey)
	}
	rd := bytes.NewReader(raw)
	for _, key := range keys {
		if err := checkPacket(rd, r, key); err != nil {
			return err
		}
	}
	if rd.Len() != 0 {
		return fmt.Errorf("signature holds more than the %d packet(s) of the record's keys", len(keys))
	}
	return nil
}

// checkPacket reads the next signature packet of r's signature and checks
// it is key's, made at the record's time with the record's hash.
func checkPacket(rd *bytes.Reader, r *Record, key string) error {
	p, err := packet.Read(rd)
	sig, ok := p.(*packet.Signature)
	if err != nil || !ok || sig.Version != 4 || sig.SigType != packet.SigTypeBinary {
		return errors.New("signature is not a v4 binary-document OpenPGP signature")
	}
	if sig.IssuerFingerprint == nil || fmt.Sprintf("%X", sig.IssuerFingerprint) != key {
		return errors.New("signature was not made by the record's key")
	}
	t, _ := time.Parse(TimeFormat, r.Time)
	if sig.CreationTime.Unix() != t.Unix() {
		return errors.New("signature was not made at the record's time")
	}
	algo, _, _ := strings.Cut(r.Digest, ":")
	if want, ok := digest.Parse(algo); !ok || sig.Hash != want {
		return errors.New("signature hash does not match the record's digest algorithm")
	}
	return nil
}
