package request

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"runtime/debug"
	"time"

	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/command"
	"github.com/signstar/signstar/internal/digest"
	"github.com/signstar/signstar/internal/policy"
	"github.com/signstar/signstar/internal/signer"
	"github.com/signstar/signstar/internal/tarstream"
)

// `sign --tar`: one session, many artifacts. The receive step reads the
// archive member by member (internal/tarstream), each through its own hash
// pass and kind detector, and refuses a member on its own (max_size, kind)
// as soon as it has passed; decide checks --expect against the whole stream
// and the rate for all members at once; commit signs every member, appends
// all their records with one write and one fsync, and only then writes the
// tar of signatures. As for one artifact, the lock is held from the first
// signature to the append: each signature commits to its record's place in
// the log (audit.NotationName).
//
// All or nothing: a stop anywhere writes no signature, and finishBatch
// records the member (or the archive) that caused it and, for every other
// member received, that it was withheld, with the same outcome. Members are
// signed only once every member has been received and decided, and no
// record says signed before the write that releases them all, so the log
// never claims that a signature left when none did.

// member is one member of the archive as the receive step learnt it.
type member struct {
	name   string
	size   int64
	digest string
	kind   string
	in     *signer.Input
	sig    []byte
}

// batch is the archive of a `sign --tar` session.
type batch struct {
	members []*member
	// stream hashes every byte read from stdin, with the profile's hash:
	// the digest of a record about the archive as a whole. expect hashes
	// them with --expect's hash when it is another.
	stream, expect hash.Hash
	size           int64
}

// Read feeds the tar reader from the upload, hashing what passes.
func (b *batch) reader(r io.Reader) io.Reader {
	return readFunc(func(p []byte) (int, error) {
		n, err := r.Read(p)
		if n > 0 {
			b.stream.Write(p[:n])
			if b.expect != nil {
				b.expect.Write(p[:n])
			}
			b.size += int64(n)
		}
		return n, err
	})
}

type readFunc func([]byte) (int, error)

func (f readFunc) Read(p []byte) (int, error) { return f(p) }

// haltMember stops the session because of member m.
func haltMember(o Outcome, m *member, msg string) *stop {
	return &stop{outcome: o, msg: msg, member: m}
}

// memberMessage is how a stop for member m of the archive reads.
func memberMessage(m *member, msg string) string {
	return fmt.Sprintf("member %q: %s; no signature was written", m.name, msg)
}

// signTar runs the phases after the lock-down for an archive.
func (s *session) signTar(c *command.Request) *stop {
	if p := s.profile; p.IsQuorum() {
		return halt(RefusedArchive, fmt.Sprintf("profile %s is a quorum profile, whose votes are one artifact each: send each file with sign, not sign --tar", p.Name))
	}
	b := &batch{stream: s.hash.New()}
	if c.Expect != nil && c.Expect.Hash != s.hash {
		b.expect = c.Expect.Hash.New()
	}
	s.batch = b
	if st := s.receiveTar(b); st != nil {
		return st
	}
	if st := s.decideTar(b, c.Expect); st != nil {
		return st
	}
	return s.commitTar(b, c.Armor)
}

// receiveTar is the receive step of `sign --tar`.
func (s *session) receiveTar(b *batch) *stop {
	debug.SetMemoryLimit(policy.MemoryLimit)
	p := s.profile
	defer func() {
		s.size = b.size
		s.digest = digest.Name(s.hash) + ":" + hex.EncodeToString(b.stream.Sum(nil))
	}()
	tr := tarstream.NewReader(b.reader(s.upload), p.MaxFiles)
	buf := make([]byte, signer.BufferSize)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			var te *tarstream.Error
			if errors.As(err, &te) && te.Name != "" {
				return s.tarReadStop(err, &member{name: te.Name})
			}
			return s.tarReadStop(err, nil)
		}
		m := &member{name: h.Name}
		det := policy.NewDetector()
		in, err := signer.ReadBuffer(tr, s.hash, p.MaxSize, det.Observe, buf)
		if err != nil {
			det.Close()
			var part *signer.Partial
			if errors.As(err, &part) {
				m.size, m.digest = part.Input.Size, part.Input.DigestString()
			}
			if signer.IsTooLarge(err) {
				return haltMember(RefusedTooLarge, m, memberMessage(m, fmt.Sprintf("larger than max_size %s of profile %s", p.MaxSizeText, p.Name)))
			}
			return s.tarReadStop(err, m)
		}
		m.in, m.size, m.digest = in, in.Size, in.DigestString()
		m.kind = det.Kind()
		note := det.Note()
		det.Close()
		if err := policy.CheckKind(p.Name, p.Kinds, m.kind, note); err != nil {
			return haltMember(RefusedKind, m, memberMessage(m, err.Error()))
		}
		b.members = append(b.members, m)
	}
	if sig := s.upload.interrupted(); sig != nil {
		return halt(FailedInterrupted, fmt.Sprintf("interrupted by %v while reading the archive; no signature was written", sig))
	}
	if clientGone(s.Stdout) {
		return halt(FailedClientGone, "the client disconnected before the upload finished; no signature was written")
	}
	if len(b.members) == 0 {
		return halt(RefusedArchive, "the archive holds no files: send a tar of the files to sign")
	}
	return nil
}

// tarReadStop turns an error of the tar reader into the session's stop: a
// fault of the archive is a refusal, unless the archive was cut short by a
// signal, a stall or the client going away; m is the member being read,
// nil between members.
func (s *session) tarReadStop(err error, m *member) *stop {
	stop := func(o Outcome, msg string) *stop {
		if m != nil {
			return haltMember(o, m, memberMessage(m, msg))
		}
		return halt(o, msg+"; no signature was written")
	}
	if sig := s.upload.interrupted(); sig != nil {
		return stop(FailedInterrupted, fmt.Sprintf("interrupted by %v while reading the archive", sig))
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return stop(FailedIdle, fmt.Sprintf("no data from the client for %v after %d bytes", s.upload.idle, s.tarSize()))
	}
	var te *tarstream.Error
	if errors.As(err, &te) {
		if te.Truncated && clientGone(s.Stdout) {
			return stop(FailedClientGone, "the client disconnected before the upload finished")
		}
		if m != nil {
			return haltMember(RefusedArchive, m, "refused archive: "+err.Error()+"; no signature was written")
		}
		return halt(RefusedArchive, "refused archive: "+err.Error()+"; no signature was written")
	}
	return stop(FailedUpload, "cannot read the archive from stdin: "+errText(err))
}

func (s *session) tarSize() int64 {
	if s.batch == nil {
		return 0
	}
	return s.batch.size
}

// decideTar is decide for an archive: --expect over the whole stream, then
// the rate for every member at once (the lock is taken here and held to the
// append, as for one artifact).
func (s *session) decideTar(b *batch, expect *command.Expect) *stop {
	p := s.profile
	if expect != nil {
		h := b.expect
		if h == nil {
			h = b.stream
		}
		got := h.Sum(nil)
		if subtle.ConstantTimeCompare(got, expect.Digest) != 1 {
			return halt(RefusedDigest, fmt.Sprintf("digest mismatch: expected %s, received an archive of %d bytes hashing to %s:%x; no signature was written", expect, b.size, digest.Name(expect.Hash), got))
		}
	}
	if p.Rate == nil {
		return nil
	}
	tx, err := s.Log.Lock()
	if err != nil {
		return halt(FailedLog, err.Error())
	}
	s.tx = tx
	if err := policy.CheckRateN(tx, p.Name, p.Rate, s.Now(), len(b.members)); err != nil {
		var re *policy.RateError
		if errors.As(err, &re) {
			m := b.members[re.Room]
			return haltMember(RefusedRate, m, memberMessage(m, err.Error()))
		}
		return halt(FailedRateLog, err.Error())
	}
	return nil
}

// commitTar takes the log's lock (if decide has not) and signs every
// member in turn, each signature committing to its record's seq and the
// tree root of the records before it, the members' records before it
// included (audit.Batch stages them); then it appends all the records
// with one write and one fsync, and only then writes the tar of
// signatures.
func (s *session) commitTar(b *batch, armored bool) *stop {
	if s.tx == nil {
		tx, err := s.Log.Lock()
		if err != nil {
			return halt(FailedLog, "not signing: "+err.Error())
		}
		s.tx = tx
	}
	created := s.Now()
	staged := s.tx.NewBatch()
	recs := make([]*audit.Record, len(b.members))
	for i, m := range b.members {
		seq, root, err := staged.Commitment()
		if err != nil {
			return halt(FailedLog, "not signing: "+err.Error())
		}
		sig, err := s.signAll(m.in, created, signer.Notation{Name: audit.NotationName, Value: audit.FormatNotation(seq, root)})
		if err != nil {
			return haltMember(FailedSign, m, memberMessage(m, err.Error()))
		}
		m.sig = sig
		recs[i] = s.memberRecord(m, Signed, "", base64.StdEncoding.EncodeToString(sig), created)
		if err := staged.Add(recs[i]); err != nil {
			return halt(FailedLog, "not signing: "+err.Error())
		}
		if recs[i].Seq != seq {
			return halt(FailedInternal, fmt.Sprintf("the record got seq %d, the signature %d", recs[i].Seq, seq))
		}
	}
	if clientGone(s.Stdout) {
		return halt(FailedClientGone, "the client disconnected before the signatures could be sent; they were discarded")
	}
	sigs := make([]tarstream.Signature, len(b.members))
	suffix := tarstream.SuffixBinary
	for i, m := range b.members {
		sigs[i] = tarstream.Signature{Name: m.name, Data: m.sig}
		if armored {
			sigs[i].Data = armorSignature(m.sig)
			suffix = tarstream.SuffixArmor
		}
	}
	if err := staged.Append(); err != nil {
		var se *audit.SyslogError
		if errors.As(err, &se) {
			// The signed records stay; finish adds one per member (and
			// the archive's) saying its signature never left.
			return halt(FailedSyslog, fmt.Sprintf("%v; [audit] syslog_required is set, so the %d signatures (records %d to %d) were discarded: check the syslog daemon", se, len(recs), recs[0].Seq, recs[len(recs)-1].Seq))
		}
		return halt(FailedLog, "not signing: "+err.Error())
	}
	s.tx.Unlock()
	s.tx = nil
	// From here on the records say signed: a stop says so in one more
	// record, about the archive.
	b.members = nil
	out := tarstream.WriteSignatures(sigs, suffix, created)
	if _, err := s.Stdout.Write(out); err != nil {
		return halt(FailedOutput, fmt.Sprintf("the %d signatures were made and audited (records %d to %d) but could not be written to stdout: %s", len(recs), recs[0].Seq, recs[len(recs)-1].Seq, errText(err)))
	}
	return nil
}

// memberRecord is the record of member m: the session's record, about m.
func (s *session) memberRecord(m *member, o Outcome, reason, signature string, t time.Time) *audit.Record {
	rec := s.record(o, reason, signature, t)
	rec.Name, rec.Size, rec.Digest, rec.Kind = m.name, m.size, m.digest, m.kind
	return rec
}

// batchRecords are the records of a stopped archive session: the record of
// the member (or, when st names none, of the archive) that stopped it, and
// one for every other member received, withheld with the same outcome.
func (s *session) batchRecords(st *stop, msg string) []*audit.Record {
	t := s.Now()
	withheld := "withheld: no signature of the archive was written (" + msg + ")"
	if len(withheld) > maxReason {
		withheld = withheld[:maxReason] + "...)"
	}
	var recs []*audit.Record
	placed := false
	for _, m := range s.batch.members {
		if m == st.member {
			recs = append(recs, s.memberRecord(m, st.outcome, msg, "", t))
			placed = true
			continue
		}
		recs = append(recs, s.memberRecord(m, st.outcome, withheld, "", t))
	}
	switch {
	case st.member != nil && !placed:
		recs = append(recs, s.memberRecord(st.member, st.outcome, msg, "", t))
	case st.member == nil:
		recs = append(recs, s.record(st.outcome, msg, "", t))
	}
	return recs
}
