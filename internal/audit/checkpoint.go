package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoints are C2SP tlog-checkpoint signed notes (golang.org/x/mod/sumdb/
// note, Ed25519): the text is the origin line, the tree size in decimal and
// the root hash in standard base64, each ending in a newline, and nothing
// else; a blank line; one signature line "— ORIGIN BASE64" by the log's
// key, whose name is the origin.

// Checkpoint is a tree head: the log's origin, a size and its root.
type Checkpoint struct {
	Origin string
	Size   int64
	Root   tlog.Hash
}

// Text is the checkpoint's note text.
func (c Checkpoint) Text() string {
	return c.Origin + "\n" + strconv.FormatInt(c.Size, 10) + "\n" + base64.StdEncoding.EncodeToString(c.Root[:]) + "\n"
}

// ParseCheckpointText reads a checkpoint's note text, strictly: three
// lines, a size without leading zeros, a 32-byte root; no extension lines.
func ParseCheckpointText(text string) (Checkpoint, error) {
	var c Checkpoint
	lines := strings.SplitAfter(text, "\n")
	if len(lines) != 4 || lines[3] != "" {
		return c, errors.New("a checkpoint is three lines: origin, size, root")
	}
	c.Origin = strings.TrimSuffix(lines[0], "\n")
	if !ValidOrigin(c.Origin) {
		return c, fmt.Errorf("checkpoint origin %q is not a valid origin", clipNote(c.Origin))
	}
	size := strings.TrimSuffix(lines[1], "\n")
	n, err := strconv.ParseInt(size, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != size {
		return c, fmt.Errorf("checkpoint size %q is not a decimal number", clipNote(size))
	}
	c.Size = n
	root := strings.TrimSuffix(lines[2], "\n")
	b, err := base64.StdEncoding.Strict().DecodeString(root)
	if err != nil || len(b) != tlog.HashSize {
		return c, fmt.Errorf("checkpoint root %q is not a base64 SHA-256", clipNote(root))
	}
	copy(c.Root[:], b)
	return c, nil
}

// ValidOrigin reports whether s can be a checkpoint's origin and the name
// of its note key: 1 to 255 printable ASCII bytes without spaces or '+'
// (note's key name rule), as "example.org/signstar".
func ValidOrigin(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '+' {
			return false
		}
	}
	return true
}

// SignCheckpoint is the signed note of c.
func SignCheckpoint(c Checkpoint, s note.Signer) ([]byte, error) {
	if s.Name() != c.Origin {
		return nil, fmt.Errorf("the checkpoint key is named %q, the origin is %q: they must be the same", s.Name(), c.Origin)
	}
	return note.Sign(&note.Note{Text: c.Text()}, s)
}

// OpenCheckpoint checks a signed checkpoint against the log's verifier key
// v (whose name must be its origin) and returns it. Signatures by other
// keys (witnesses' cosignatures) are allowed and not checked.
func OpenCheckpoint(msg []byte, v note.Verifier) (Checkpoint, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		var ue *note.UnverifiedNoteError
		if errors.As(err, &ue) {
			return Checkpoint{}, fmt.Errorf("the checkpoint is not signed by the key %s", v.Name())
		}
		return Checkpoint{}, fmt.Errorf("the checkpoint is not a valid signed note: %v", err)
	}
	c, err := ParseCheckpointText(n.Text)
	if err != nil {
		return c, err
	}
	if c.Origin != v.Name() {
		return c, fmt.Errorf("the checkpoint's origin %q is not the key's name %q", c.Origin, v.Name())
	}
	return c, nil
}

// NewCheckpointKey makes a note key for origin: the signer key (the file's
// content) and the verifier key (to publish).
func NewCheckpointKey(origin string) (skey, vkey string, err error) {
	if !ValidOrigin(origin) {
		return "", "", fmt.Errorf("%q is not a valid origin: use 1 to 255 printable ASCII characters without spaces or '+', as example.org/signstar", origin)
	}
	return note.GenerateKey(rand.Reader, origin)
}

// ParseSignerKey reads a checkpoint key file's content: one signer key
// line (PRIVATE+KEY+NAME+HASH+KEY), an optional newline.
func ParseSignerKey(b []byte) (note.Signer, error) {
	line := string(bytes.TrimSuffix(b, []byte("\n")))
	if strings.ContainsAny(line, "\n\r") || !strings.HasPrefix(line, "PRIVATE+KEY+") {
		return nil, errors.New("not a signstar audit keygen key (one PRIVATE+KEY+ line)")
	}
	s, err := note.NewSigner(line)
	if err != nil {
		return nil, errors.New("not a valid note signer key")
	}
	return s, nil
}

// ParseVerifierKey reads a verifier key (NAME+HASH+KEY), from a file's
// content or an argument.
func ParseVerifierKey(b []byte) (note.Verifier, error) {
	line := strings.TrimSpace(string(b))
	v, err := note.NewVerifier(line)
	if err != nil {
		return nil, fmt.Errorf("not a note verifier key (NAME+HASH+KEY, as audit keygen prints): %v", err)
	}
	return v, nil
}

// Consistency is the reply to `checkpoint --from N`: the body of C2SP
// tlog-witness's add-checkpoint, which a client can hand a witness as it
// is: "old N", the RFC 6962 consistency proof from size N to the
// checkpoint's, one base64 hash per line, an empty line, the signed
// checkpoint.
type Consistency struct {
	Old        int64
	Proof      tlog.TreeProof
	Checkpoint []byte
}

// Marshal is the reply's bytes.
func (c *Consistency) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString("old " + strconv.FormatInt(c.Old, 10) + "\n")
	for _, h := range c.Proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h[:]) + "\n")
	}
	b.WriteString("\n")
	b.Write(c.Checkpoint)
	return b.Bytes()
}

// ParseConsistency reads what Marshal wrote (the checkpoint unchecked).
func ParseConsistency(b []byte) (*Consistency, error) {
	c := &Consistency{}
	rest, ok := bytes.CutPrefix(b, []byte("old "))
	if !ok {
		return nil, errors.New("a consistency reply starts with old N")
	}
	line, rest, ok := bytes.Cut(rest, []byte("\n"))
	n, err := strconv.ParseInt(string(line), 10, 64)
	if !ok || err != nil || n < 0 || strconv.FormatInt(n, 10) != string(line) {
		return nil, errors.New("a consistency reply starts with old N")
	}
	c.Old = n
	c.Proof, rest, err = parseHashLines(rest)
	if err != nil {
		return nil, err
	}
	c.Checkpoint = rest
	return c, nil
}

// parseHashLines reads base64 hash lines up to and including an empty
// line, at most 63 (a tree of 2^63 leaves needs no more).
func parseHashLines(b []byte) ([]tlog.Hash, []byte, error) {
	var hs []tlog.Hash
	for {
		line, rest, ok := bytes.Cut(b, []byte("\n"))
		if !ok {
			return nil, nil, errors.New("the proof's hash lines have no empty line after them")
		}
		b = rest
		if len(line) == 0 {
			return hs, b, nil
		}
		if len(hs) == 63 {
			return nil, nil, errors.New("more than 63 proof hashes")
		}
		d, err := base64.StdEncoding.Strict().DecodeString(string(line))
		if err != nil || len(d) != tlog.HashSize {
			return nil, nil, fmt.Errorf("proof line %q is not a base64 SHA-256", clipNote(string(line)))
		}
		var h tlog.Hash
		copy(h[:], d)
		hs = append(hs, h)
	}
}

// ProofHeader is the first line of a proof file.
const ProofHeader = "c2sp.org/tlog-proof@v1"

// Proof is the reply to `proof SEQ`, a C2SP tlog-proof: the header line;
// "extra " and the record's line (without its newline) in standard base64,
// the leaf data the proof is about; "index " and the record's leaf index
// (seq-1); the RFC 6962 inclusion proof, one base64 hash per line; an
// empty line; the signed checkpoint of the tree it is proven in.
type Proof struct {
	Record     []byte
	Index      int64
	Hashes     tlog.RecordProof
	Checkpoint []byte
}

// Marshal is the proof file's bytes.
func (p *Proof) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString(ProofHeader + "\n")
	b.WriteString("extra " + base64.StdEncoding.EncodeToString(p.Record) + "\n")
	b.WriteString("index " + strconv.FormatInt(p.Index, 10) + "\n")
	for _, h := range p.Hashes {
		b.WriteString(base64.StdEncoding.EncodeToString(h[:]) + "\n")
	}
	b.WriteString("\n")
	b.Write(p.Checkpoint)
	return b.Bytes()
}

// ParseProof reads a proof file, strictly (the checkpoint is checked by
// OpenCheckpoint, the rest by CheckProof).
func ParseProof(b []byte) (*Proof, error) {
	p := &Proof{}
	rest, ok := bytes.CutPrefix(b, []byte(ProofHeader+"\n"))
	if !ok {
		return nil, errors.New("not a proof file: the first line is not " + ProofHeader)
	}
	rest, ok = bytes.CutPrefix(rest, []byte("extra "))
	if !ok {
		return nil, errors.New("the proof has no extra line (the record)")
	}
	line, rest, ok := bytes.Cut(rest, []byte("\n"))
	rec, err := base64.StdEncoding.Strict().DecodeString(string(line))
	if !ok || err != nil || len(rec) == 0 || len(rec) > MaxLine {
		return nil, errors.New("the proof's extra line is not a base64 record")
	}
	p.Record = rec
	rest, ok = bytes.CutPrefix(rest, []byte("index "))
	if !ok {
		return nil, errors.New("the proof has no index line")
	}
	line, rest, ok = bytes.Cut(rest, []byte("\n"))
	n, err := strconv.ParseInt(string(line), 10, 64)
	if !ok || err != nil || n < 0 || strconv.FormatInt(n, 10) != string(line) {
		return nil, errors.New("the proof's index is not a decimal number")
	}
	p.Index = n
	p.Hashes, rest, err = parseHashLines(rest)
	if err != nil {
		return nil, err
	}
	p.Checkpoint = rest
	return p, nil
}

// RootBefore is the root of the tree of the index records before the one
// an inclusion proof is for, read off the proof: the left siblings on the
// leaf's path to the root are exactly the complete subtrees that tree is
// made of (RFC 9162 2.1.3.2's walk, keeping the hashes that come in from
// the left). The proof must check (tlog.CheckRecord) for this to mean
// anything.
func RootBefore(p tlog.RecordProof, size, index int64) (tlog.Hash, error) {
	if index < 0 || index >= size {
		return tlog.Hash{}, errors.New("index outside the tree")
	}
	fn, sn := index, size-1
	var left []tlog.Hash // bottom up: the smallest, rightmost subtree first
	for _, h := range p {
		if sn == 0 {
			return tlog.Hash{}, errors.New("the proof is too long")
		}
		if fn&1 == 1 || fn == sn {
			left = append(left, h)
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return tlog.Hash{}, errors.New("the proof is too short")
	}
	if len(left) == 0 {
		return tlog.Hash(sha256.Sum256(nil)), nil
	}
	acc := left[0]
	for _, h := range left[1:] {
		acc = tlog.NodeHash(h, acc)
	}
	return acc, nil
}

// ReadCheckpointKey reads the checkpoint key file at path ([audit]
// checkpoint_key): owned by whoever reads it, not open to group or others
// (as a key file), one signer key line whose name is origin.
func ReadCheckpointKey(path, origin string) (note.Signer, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|oNoFollow, 0)
	if err != nil {
		return nil, fmt.Errorf("cannot read checkpoint key %s: %v", path, unwrapPath(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("checkpoint key %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("checkpoint key %s has mode %04o, open to group or others: run chmod 0600 %s (or 0400)", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("cannot read checkpoint key %s: %v", path, err)
	}
	defer clear(b)
	s, err := ParseSignerKey(b)
	if err != nil {
		return nil, fmt.Errorf("checkpoint key %s: %v", path, err)
	}
	if s.Name() != origin {
		return nil, fmt.Errorf("checkpoint key %s is for origin %q, but [audit] origin is %q: make them the same", path, s.Name(), origin)
	}
	return s, nil
}

// VerifierOf is the verifier key (NAME+HASH+KEY) of a signer key line.
func VerifierOf(skey []byte) (string, error) {
	line := string(bytes.TrimSuffix(skey, []byte("\n")))
	parts := strings.SplitN(line, "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return "", errors.New("not a note signer key")
	}
	k, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(k) != 1+ed25519.SeedSize || k[0] != 1 {
		return "", errors.New("not an Ed25519 note signer key")
	}
	defer clear(k)
	pub := ed25519.NewKeyFromSeed(k[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(parts[2], pub)
}
