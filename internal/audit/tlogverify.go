package audit

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/signstar/signstar/internal/digest"
)

// HeldSignature is a signature held outside the host (a .sig that a client
// or mirror kept): its packets and what its notation commits to.
type HeldSignature struct {
	Name string
	Raw  []byte // the binary packets, as the record's signature field holds them
	Seq  uint64
	Root tlog.Hash
}

// sigBinary is a .sig file's binary packets, dearmored when armored.
func sigBinary(b []byte) ([]byte, error) {
	if !bytes.HasPrefix(bytes.TrimSpace(b), []byte("-----BEGIN PGP SIGNATURE-----")) {
		return b, nil
	}
	blk, err := armor.Decode(bytes.NewReader(b))
	if err != nil || blk.Type != "PGP SIGNATURE" {
		return nil, errors.New("not an armored OpenPGP signature")
	}
	raw, err := io.ReadAll(io.LimitReader(blk.Body, 1<<20))
	if err != nil {
		return nil, errors.New("not an armored OpenPGP signature")
	}
	return raw, nil
}

// ReadHeldSignature reads a .sig file's content: one or more signature
// packets, each carrying the log's notation, all the same one.
func ReadHeldSignature(name string, b []byte) (*HeldSignature, error) {
	raw, err := sigBinary(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	sigs, err := ReadSignatures(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	h := &HeldSignature{Name: name, Raw: raw}
	for i, sig := range sigs {
		seq, root, err := SignatureNotation(sig)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", name, err)
		}
		if i > 0 && (seq != h.Seq || root != h.Root) {
			return nil, fmt.Errorf("%s: its signatures carry different %s notations", name, NotationName)
		}
		h.Seq, h.Root = seq, root
	}
	return h, nil
}

// TreeCheck is what `audit verify` holds the log against besides its own
// chain: an older checkpoint (its signature already checked) and held
// signatures.
type TreeCheck struct {
	Checkpoint *Checkpoint
	Signatures []*HeldSignature
}

// TreeResult is what a verification found.
type TreeResult struct {
	Records   uint64    // the last record's seq
	Root      tlog.Hash // the tree root of all records
	Notations int       // signed records whose notation the log's tree matched
	Legacy    int       // signed records from before the notation (no notation)
}

// FileError names the log file a VerifyError is in.
type FileError struct {
	Path string
	Err  error
}

func (e *FileError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *FileError) Unwrap() error { return e.Err }

// TreeError is a disagreement between the log and what is held outside:
// the first bad record is at least First and at most Last (First == Last
// when it is known exactly).
type TreeError struct {
	First, Last uint64
	Msg         string
}

func (e *TreeError) Error() string {
	if e.First == e.Last {
		return fmt.Sprintf("record %d: %s", e.First, e.Msg)
	}
	return fmt.Sprintf("records %d to %d: the first bad record is among them: %s", e.First, e.Last, e.Msg)
}

// anchor is one fact that held data states about the log.
type anchor struct {
	agree bool
	exact bool   // a disagreement that is known to be at size: a missing record
	size  uint64 // agree: the first size records are as held; disagree: a bad record is at or before size
	what  string
	msg   string // for a disagreement
}

// VerifyLogs checks the log files in order (older rotated files first),
// as Verify checks one, and beyond the chain: the tree of every record,
// each signed record's notation against the tree of the records before it,
// and the log against chk. A rotated file given first is continued from its
// tree file (its header names the record before it; its stored hashes the
// tree so far).
func VerifyLogs(files []string, chk TreeCheck) (*TreeResult, error) {
	res := &TreeResult{}
	if len(files) == 0 {
		return res, errors.New("no log file")
	}
	fr := NewFrontier()
	next, prev := uint64(1), ZeroHash
	if base, basePrev, roots, err := continued(files[0]); err != nil {
		return res, &FileError{files[0], err}
	} else if base > 0 {
		next, prev = base+1, basePrev
		fr = roots
	}
	var anchors []anchor
	held := map[uint64][]*HeldSignature{}
	for _, h := range chk.Signatures {
		held[h.Seq] = append(held[h.Seq], h)
	}
	firstSeq := next
	// atSize checks what is held about the tree of the records so far.
	atSize := func() error {
		n := uint64(fr.Size())
		var root *tlog.Hash
		get := func() (tlog.Hash, error) {
			if root == nil {
				r, err := fr.Root()
				if err != nil {
					return r, err
				}
				root = &r
			}
			return *root, nil
		}
		if cp := chk.Checkpoint; cp != nil && uint64(cp.Size) == n && n >= firstSeq-1 {
			r, err := get()
			if err != nil {
				return err
			}
			a := anchor{agree: r == cp.Root, size: n, what: fmt.Sprintf("the checkpoint of size %d", n)}
			a.msg = "the log's first " + fmt.Sprint(n) + " records are not those " + a.what + " commits to"
			anchors = append(anchors, a)
		}
		for _, h := range held[n+1] {
			r, err := get()
			if err != nil {
				return err
			}
			a := anchor{agree: r == h.Root, size: n, what: fmt.Sprintf("%s (record %d)", h.Name, h.Seq)}
			a.msg = fmt.Sprintf("the log's first %d records are not those %s commits to", n, a.what)
			anchors = append(anchors, a)
		}
		return nil
	}
	seenNotation := uint64(0)
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			return res, fmt.Errorf("cannot open %s: %v", path, unwrapPath(err))
		}
		n, err := verifyFrom(f, next, prev, func(rec *Record, line []byte, end int64) error {
			if err := atSize(); err != nil {
				return err
			}
			if rec.Outcome == Signed {
				raw, _ := base64.StdEncoding.DecodeString(rec.Signature)
				for _, h := range held[rec.Seq] {
					if !bytes.Equal(h.Raw, raw) {
						anchors = append(anchors, anchor{size: rec.Seq, what: fmt.Sprintf("%s (record %d)", h.Name, h.Seq),
							msg: fmt.Sprintf("its signature is not %s's (the record was rewritten or replaced, or this is another log)", h.Name)})
					}
				}
				if err := checkNotation(rec, raw, fr, &seenNotation, res); err != nil {
					return err
				}
			} else {
				for _, h := range held[rec.Seq] {
					anchors = append(anchors, anchor{size: rec.Seq, what: h.Name,
						msg: fmt.Sprintf("it is %s, but %s was issued as this record", rec.Outcome, h.Name)})
				}
			}
			if _, err := fr.Add(line); err != nil {
				return err
			}
			return nil
		})
		f.Close()
		if err != nil {
			return res, &FileError{path, err}
		}
		if n > 0 {
			next += uint64(n)
			prev, err = lastLineHash(path)
			if err != nil {
				return res, err
			}
		}
	}
	if err := atSize(); err != nil {
		return res, err
	}
	last := next - 1
	res.Records = last
	root, err := fr.Root()
	if err != nil {
		return res, err
	}
	res.Root = root
	if cp := chk.Checkpoint; cp != nil && uint64(cp.Size) > last {
		anchors = append(anchors, anchor{size: last + 1, exact: true, what: fmt.Sprintf("the checkpoint of size %d", cp.Size),
			msg: fmt.Sprintf("it is missing: the log ends at record %d, but the checkpoint of size %d was issued after records up to %d (the log was cut)", last, cp.Size, cp.Size)})
	}
	for _, h := range chk.Signatures {
		if h.Seq > last {
			anchors = append(anchors, anchor{size: last + 1, exact: true, what: h.Name,
				msg: fmt.Sprintf("it is missing: the log ends at record %d, but %s was issued as record %d (the log was cut)", last, h.Name, h.Seq)})
		}
	}
	return res, judge(anchors, firstSeq)
}

// judge turns the anchors into the first bad record, if any.
func judge(anchors []anchor, firstSeq uint64) error {
	var good uint64 = firstSeq - 1
	var bad *anchor
	for i := range anchors {
		a := &anchors[i]
		if a.agree {
			good = max(good, a.size)
		} else if bad == nil || a.size < bad.size {
			bad = a
		}
	}
	if bad == nil {
		return nil
	}
	if bad.size <= good {
		return &TreeError{First: bad.size, Last: bad.size, Msg: bad.msg + ", yet other held checkpoints or signatures agree with the log past it: they are of different logs"}
	}
	if bad.exact {
		return &TreeError{First: bad.size, Last: bad.size, Msg: bad.msg}
	}
	return &TreeError{First: good + 1, Last: bad.size, Msg: bad.msg}
}

// checkNotation holds a signed record's notation against the tree of the
// records before it. Signatures from before the notation existed have none;
// once one has it, every later one must.
func checkNotation(rec *Record, raw []byte, fr *Frontier, seen *uint64, res *TreeResult) error {
	p, err := packet.Read(bytes.NewReader(raw))
	sig, ok := p.(*packet.Signature)
	if err != nil || !ok {
		return errors.New("signature is not an OpenPGP signature")
	}
	seq, root, err := SignatureNotation(sig)
	if errors.Is(err, ErrNoNotation) {
		if *seen != 0 {
			return fmt.Errorf("signed record without the %s notation, after record %d had it", NotationName, *seen)
		}
		res.Legacy++
		return nil
	}
	if err != nil {
		return err
	}
	want, err := fr.Root()
	if err != nil {
		return err
	}
	if seq != rec.Seq {
		return fmt.Errorf("the signature's notation says record %d, the record is %d", seq, rec.Seq)
	}
	if root != want {
		return fmt.Errorf("the signature's notation commits to a tree of the %d records before it that is not this log's: a record before it was changed, removed or added", rec.Seq-1)
	}
	*seen = rec.Seq
	res.Notations++
	return nil
}

// lastLineHash is the SHA-256 of the last line of a verified file.
func lastLineHash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	tx := &Tx{l: &Log{r: f, path: path}}
	line, err := tx.lineBefore(fi.Size())
	if err != nil {
		return "", err
	}
	return LineHash(line), nil
}

// continued reads the tree file of a log that continues rotated ones: the
// seq of the record before its first, that line's hash and the frontier of
// the tree of the records before it. base is 0 for a log that starts at
// record 1 (or has no tree file beside it).
func continued(path string) (base uint64, prev string, fr *Frontier, err error) {
	f, err := os.Open(TreePath(path))
	if errors.Is(err, os.ErrNotExist) {
		return 0, "", nil, nil
	}
	if err != nil {
		return 0, "", nil, err
	}
	defer f.Close()
	b := make([]byte, TreeHeaderSize)
	if _, err := io.ReadFull(f, b); err != nil {
		return 0, "", nil, nil
	}
	h, err := parseTreeHeader(b)
	if err != nil || h.Base == 0 {
		return 0, "", nil, nil
	}
	fr, err = frontierFromFile(f, int64(h.Base))
	if err != nil {
		return 0, "", nil, fmt.Errorf("its tree file %s cannot give the tree of the %d records before it: %v", TreePath(path), h.Base, err)
	}
	return h.Base, fmt.Sprintf("%x", h.BasePrev), fr, nil
}

// frontierFromFile is the frontier of the tree of n records, read from a
// tree file's stored hashes.
func frontierFromFile(f io.ReaderAt, n int64) (*Frontier, error) {
	fr := &Frontier{n: n, roots: map[int64]tlog.Hash{}}
	r := &fileHashes{f: f, path: "tree", max: tlog.StoredHashCount(n), read: new(int)}
	// The complete subtrees of n: one per set bit, largest first.
	var start int64
	for level := 62; level >= 0; level-- {
		if n&(1<<level) == 0 {
			continue
		}
		idx := tlog.StoredHashIndex(level, start>>level)
		h, err := r.ReadHashes([]int64{idx})
		if err != nil {
			return nil, err
		}
		fr.roots[idx] = h[0]
		start += 1 << level
	}
	return fr, nil
}

// ProofResult is what CheckProof found.
type ProofResult struct {
	Origin string
	Size   int64 // the checkpoint's tree size
	Record *Record
}

// CheckProof is the check a mirror or a user runs with a proof file, the
// .sig, the artifact and the log's verifier key: the checkpoint is signed
// by the key; the record line is in its tree at the proof's index; the
// record is a well-formed signed record numbered index+1; its signature is
// exactly the .sig; the .sig's notation names that record and the tree of
// the records before it, read off the same proof; the artifact hashes to
// the record's digest. Checking the OpenPGP signature itself against the
// certificate is gpgv's or sqv's job.
func CheckProof(proofFile, sigFile []byte, artifact io.Reader, v note.Verifier) (*ProofResult, error) {
	p, err := ParseProof(proofFile)
	if err != nil {
		return nil, err
	}
	cp, err := OpenCheckpoint(p.Checkpoint, v)
	if err != nil {
		return nil, err
	}
	res := &ProofResult{Origin: cp.Origin, Size: cp.Size}
	if p.Index >= cp.Size {
		return nil, fmt.Errorf("the proof is for record %d, but its checkpoint's tree holds %d", p.Index+1, cp.Size)
	}
	if err := tlog.CheckRecord(p.Hashes, cp.Size, cp.Root, p.Index, tlog.RecordHash(p.Record)); err != nil {
		return nil, fmt.Errorf("the proof's record is not in the tree its checkpoint signs (the inclusion proof does not check)")
	}
	rec, err := parseLine(p.Record)
	if err != nil {
		return nil, fmt.Errorf("the proof's record: %v", err)
	}
	res.Record = rec
	if rec.Seq != uint64(p.Index)+1 {
		return nil, fmt.Errorf("the proof's record is seq %d at index %d", rec.Seq, p.Index)
	}
	if rec.Outcome != Signed {
		return nil, fmt.Errorf("record %d is %s, not a signature", rec.Seq, rec.Outcome)
	}
	held, err := ReadHeldSignature("the signature", sigFile)
	if err != nil {
		return nil, err
	}
	raw, _ := base64.StdEncoding.DecodeString(rec.Signature)
	if !bytes.Equal(raw, held.Raw) {
		return nil, fmt.Errorf("the signature is not the one record %d holds", rec.Seq)
	}
	before, err := RootBefore(p.Hashes, cp.Size, p.Index)
	if err != nil {
		return nil, err
	}
	if held.Seq != rec.Seq || held.Root != before {
		return nil, fmt.Errorf("the signature's %s notation (record %d) does not commit to the tree of the records before record %d that the proof shows", NotationName, held.Seq, rec.Seq)
	}
	algo, want, _ := bytes.Cut([]byte(rec.Digest), []byte(":"))
	h, ok := digest.Parse(string(algo))
	if !ok {
		return nil, fmt.Errorf("record %d names an unknown hash %q", rec.Seq, algo)
	}
	w := h.New()
	if _, err := io.Copy(w, artifact); err != nil {
		return nil, fmt.Errorf("cannot read the artifact: %v", err)
	}
	if got := fmt.Sprintf("%x", w.Sum(nil)); got != string(want) {
		return nil, fmt.Errorf("the artifact is not the one record %d signed: it hashes to %s:%s, the record says %s", rec.Seq, algo, got, rec.Digest)
	}
	return res, nil
}
