package client

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/signstar/signstar/internal/audit"
)

// ProofPath is where the proof file of a signature at out goes: FILE.proof
// next to FILE.sig (the contract's name for a mirror's proof files).
func ProofPath(out string) string {
	for _, ext := range []string{".sig", ".asc"} {
		if p, ok := strings.CutSuffix(out, ext); ok && p != "" {
			return p + ".proof"
		}
	}
	return out + ".proof"
}

// maxLogReply bounds a checkpoint or proof reply: a checkpoint, at most 63
// hashes and, for a proof, one record line.
const maxLogReply = audit.MaxLine*4/3 + 16<<10

// witnessTries is how often a batch's checkpoints are fetched again when
// the log grew between two of them (other signers at work).
const witnessTries = 3

// Witness holds the last checkpoint of the enclave's log it verified, and
// checks every new one against it: the log may only grow. It is the Go
// command's checksum database client, for signstar's log.
type Witness struct {
	Verifier note.Verifier
	Remote   *Remote
	// State is the file of the last verified checkpoint (a signed note).
	State string
	// Proofs asks for each record's proof file.
	Proofs bool

	pending []byte
}

// Witnessed is a verified checkpoint.
type Witnessed struct {
	audit.Checkpoint
	// Note is the signed note as served.
	Note []byte
}

// NewWitness is cfg's witness, nil when it is off.
func NewWitness(cfg *Config, r *Remote) *Witness {
	if cfg.Verifier == nil {
		return nil
	}
	return &Witness{Verifier: cfg.Verifier, Remote: r, State: cfg.StateDir + "/checkpoint", Proofs: cfg.Proofs}
}

// Load reads the last verified checkpoint; nil before the first.
func (w *Witness) Load() (*Witnessed, error) {
	b, err := os.ReadFile(w.State)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the witnessed checkpoint: %v", err)
	}
	cp, err := audit.OpenCheckpoint(b, w.Verifier)
	if err != nil {
		return nil, untrusted("the witnessed checkpoint %s does not open with log_key %s: %v (if the log key changed on purpose, move the file away and sign again)", w.State, w.Verifier.Name(), err)
	}
	return &Witnessed{Checkpoint: cp, Note: b}, nil
}

// Commit stores the checkpoint that Check verified last.
func (w *Witness) Commit() error {
	if w.pending == nil {
		return nil
	}
	if err := WriteFileAtomic(w.State, w.pending, 0o644); err != nil {
		return fmt.Errorf("storing the witnessed checkpoint: %v", err)
	}
	w.pending = nil
	return nil
}

// errMoved is a log that grew between two replies of one check.
var errMoved = errors.New("moved")

// notation is one signature's commitment to the log.
type notation struct {
	r    *Result
	seq  uint64
	root tlog.Hash
}

// Check verifies the log against the witnessed checkpoint old (nil before
// the first) around a batch's signatures: the enclave's newest checkpoint
// is signed by log_key and extends old (consistency proof), every
// signature's record is new and in it, the first signature's root is the
// tree of the records before it, and, with proofs, every record's
// inclusion proof and root. A rollback or fork is an *UntrustedError that
// says what was seen. On success the new checkpoint waits for Commit.
func (w *Witness) Check(ctx context.Context, old *Witnessed, results []*Result) error {
	var ns []notation
	for _, r := range results {
		seq, root, err := audit.SignatureNotation(r.Packet)
		if err != nil {
			return untrusted("the signature of %s: %v: the enclave does not commit its signatures to a log, and the witness (log_key) needs it to", r.Path, err)
		}
		if len(ns) > 0 && seq <= ns[len(ns)-1].seq {
			return untrusted("the signatures of %s and %s are records %d and %d of the log: a batch's records are in order", ns[len(ns)-1].r.Path, r.Path, ns[len(ns)-1].seq, seq)
		}
		ns = append(ns, notation{r, seq, root})
	}
	var oldSize int64
	oldRoot := tlog.Hash(sha256.Sum256(nil))
	since := "the empty log"
	if old != nil {
		oldSize, oldRoot = old.Size, old.Root
		since = fmt.Sprintf("the checkpoint witnessed before (%d records, root %s, in %s)", old.Size, b64(old.Root), w.State)
	}
	for _, n := range ns {
		if int64(n.seq) <= oldSize {
			return untrusted("the log was rolled back or replaced: the enclave gave %s record %d, but %s held %d records already; nothing is written", n.r.Path, n.seq, since, oldSize)
		}
	}
	for try := 0; try < witnessTries; try++ {
		err := w.check(ctx, ns, oldSize, oldRoot, since)
		if !errors.Is(err, errMoved) {
			return err
		}
	}
	return fmt.Errorf("the enclave's log grew while it was being checked, %d times: other signers are at work; sign again", witnessTries)
}

func (w *Witness) check(ctx context.Context, ns []notation, oldSize int64, oldRoot tlog.Hash, since string) error {
	cp, cpNote, proof, err := w.consistency(ctx, oldSize)
	if err != nil {
		return err
	}
	if cp.Size < oldSize {
		return untrusted("the log was rolled back: the enclave's checkpoint holds %d records (root %s), %s held %d; nothing is written", cp.Size, b64(cp.Root), since, oldSize)
	}
	if oldSize == 0 {
		// Every log extends the empty one.
	} else if err := tlog.CheckTree(proof, cp.Size, cp.Root, oldSize, oldRoot); err != nil {
		return untrusted("the log forked: the enclave's checkpoint of %d records (root %s) does not extend %s: %v; nothing is written", cp.Size, b64(cp.Root), since, err)
	}
	last := ns[len(ns)-1]
	if int64(last.seq) > cp.Size {
		return untrusted("the enclave gave %s record %d, but its newest checkpoint holds %d records: the record is not in its log", last.r.Path, last.seq, cp.Size)
	}
	// The first signature's root: the tree of the records before it.
	first := ns[0]
	if k := int64(first.seq) - 1; k == oldSize {
		if first.root != oldRoot {
			return untrusted("the log forked: the signature of %s commits to %d records with root %s, but %s has root %s; nothing is written", first.r.Path, k, b64(first.root), since, b64(oldRoot))
		}
	} else if !w.Proofs {
		cp2, _, proof2, err := w.consistency(ctx, k)
		if err != nil {
			return err
		}
		if cp2 != cp {
			if cp2.Size != cp.Size {
				return errMoved
			}
			return untrusted("the log forked: two checkpoints of %d records have roots %s and %s; nothing is written", cp.Size, b64(cp.Root), b64(cp2.Root))
		}
		if err := tlog.CheckTree(proof2, cp.Size, cp.Root, k, first.root); err != nil {
			return untrusted("the log forked: the signature of %s commits to %d records with root %s, which the checkpoint of %d records (root %s) does not extend: %v; nothing is written", first.r.Path, k, b64(first.root), cp.Size, b64(cp.Root), err)
		}
	}
	if w.Proofs {
		for _, n := range ns {
			if err := w.proof(ctx, n, cp); err != nil {
				return err
			}
		}
	}
	w.pending = cpNote
	return nil
}

// consistency fetches `checkpoint --from n`: the newest checkpoint, opened
// with log_key, and the proof that it extends the tree of n records.
func (w *Witness) consistency(ctx context.Context, n int64) (audit.Checkpoint, []byte, tlog.TreeProof, error) {
	words := []string{"checkpoint", "--from", strconv.FormatInt(n, 10)}
	b, err := w.Remote.Output(ctx, words, maxLogReply)
	if err != nil {
		return audit.Checkpoint{}, nil, nil, err
	}
	c, err := audit.ParseConsistency(b)
	if err != nil {
		return audit.Checkpoint{}, nil, nil, untrusted("`checkpoint --from %d`: %v", n, err)
	}
	if c.Old != n {
		return audit.Checkpoint{}, nil, nil, untrusted("`checkpoint --from %d` answered a proof from %d records", n, c.Old)
	}
	cp, err := audit.OpenCheckpoint(c.Checkpoint, w.Verifier)
	if err != nil {
		return audit.Checkpoint{}, nil, nil, untrusted("`checkpoint --from %d`: %v", n, err)
	}
	return cp, c.Checkpoint, c.Proof, nil
}

// proof fetches the record's proof file and checks it: in the checkpoint
// cp, holding this very signature, its root before it the notation's.
func (w *Witness) proof(ctx context.Context, n notation, cp audit.Checkpoint) error {
	words := []string{"proof", strconv.FormatUint(n.seq, 10)}
	b, err := w.Remote.Output(ctx, words, maxLogReply)
	if err != nil {
		return err
	}
	p, err := audit.ParseProof(b)
	if err != nil {
		return untrusted("`proof %d`: %v", n.seq, err)
	}
	pcp, err := audit.OpenCheckpoint(p.Checkpoint, w.Verifier)
	if err != nil {
		return untrusted("`proof %d`: %v", n.seq, err)
	}
	if pcp != cp {
		if pcp.Size != cp.Size {
			return errMoved
		}
		return untrusted("the log forked: two checkpoints of %d records have roots %s and %s; nothing is written", cp.Size, b64(cp.Root), b64(pcp.Root))
	}
	idx := int64(n.seq) - 1
	if p.Index != idx {
		return untrusted("`proof %d` is the proof of leaf %d, not %d", n.seq, p.Index, idx)
	}
	if err := tlog.CheckRecord(p.Hashes, cp.Size, cp.Root, idx, tlog.RecordHash(p.Record)); err != nil {
		return untrusted("the log forked: record %d (%s) is not in the checkpoint of %d records (root %s): %v; nothing is written", n.seq, n.r.Path, cp.Size, b64(cp.Root), err)
	}
	var rec struct {
		Seq       uint64 `json:"seq"`
		Signature string `json:"signature"`
	}
	if err := json.Unmarshal(p.Record, &rec); err != nil || rec.Seq != n.seq {
		return untrusted("`proof %d`: the record is not the log's record %d", n.seq, n.seq)
	}
	bin, err := binarySignature(n.r.Sig)
	if err != nil {
		return err
	}
	if rec.Signature != base64.StdEncoding.EncodeToString(bin) {
		return untrusted("the log's record %d does not hold the signature the enclave gave for %s: nothing is written", n.seq, n.r.Path)
	}
	before, err := audit.RootBefore(p.Hashes, cp.Size, idx)
	if err != nil || before != n.root {
		return untrusted("the log forked: the signature of %s commits to %d records with root %s, the log's tree has %s there; nothing is written", n.r.Path, idx, b64(n.root), b64(before))
	}
	n.r.Proof = b
	return nil
}

func b64(h tlog.Hash) string { return base64.StdEncoding.EncodeToString(h[:]) }

// binarySignature is sig without its armor.
func binarySignature(sig []byte) ([]byte, error) {
	if !isArmored(sig) {
		return sig, nil
	}
	return dearmorSignature(sig)
}
