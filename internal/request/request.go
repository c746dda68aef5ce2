package request

import (
	"bytes"
	"crypto"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"

	"github.com/signstar/signstar/internal/archreq"
	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/backend"
	"github.com/signstar/signstar/internal/command"
	"github.com/signstar/signstar/internal/config"
	"github.com/signstar/signstar/internal/digest"
	"github.com/signstar/signstar/internal/policy"
	"github.com/signstar/signstar/internal/sandbox"
	"github.com/signstar/signstar/internal/signer"
)

// IdleTimeout bounds how long an upload may stall. A client that keeps the
// connection open without sending would otherwise hold the process, and
// with a PIV profile the card, for ever.
const IdleTimeout = 10 * time.Minute

// SignalGrace is how long a sign request runs before SIGHUP, SIGINT and
// SIGTERM stop it (see Sign).
const SignalGrace = 10 * time.Millisecond

// Request is one request, from the moment its audit log is open. The
// command line fills in the first group of fields; the second has defaults
// and is there for tests.
type Request struct {
	Config *config.Config
	Log    *audit.Log
	Caller Caller
	// Command is the command as received, for the record.
	Command string
	// ServerProfile is the server side's --profile, "" when none.
	ServerProfile string
	// Remote is a request from an ssh client: the lock-down then also
	// empties the bounding set (sandbox.Options.BoundingSet).
	Remote bool
	Stdin  *os.File
	Stdout io.Writer
	// KeepFDs are further descriptors of the command line's that must
	// survive the lock-down.
	KeepFDs []int

	// Now is the clock (default time.Now).
	Now func() time.Time
	// Open opens a profile's key before the lock-down (default
	// OpenBackend).
	Open func(*config.Profile, time.Time) (*backend.Key, error)
	// Lockdown applies the sandbox (default sandbox.Lockdown).
	Lockdown func(sandbox.Options) (sandbox.Report, error)
	// Simulate names sandbox parts to treat as missing from the kernel.
	Simulate sandbox.Parts
	// Idle is the longest upload stall (default IdleTimeout).
	Idle time.Duration
	// SignalGrace is how long signals are ignored (default SignalGrace).
	SignalGrace time.Duration
}

// session is the state of one request as its phases fill it in; the audit
// record is built from it (record) and nowhere else.
type session struct {
	*Request
	profile *config.Profile
	sandbox string // the record's sandbox field
	// key signs; during a key transition next signs too, after key
	// (transition.go). After the transition key is the next key, alone.
	key    *backend.Key
	next   *backend.Key
	hash   crypto.Hash
	size   int64
	digest string
	kind   string
	// emptyCommand is the client's empty command; hashedBy is the
	// record's hashed_by: audit.HashedByClient once the profile makes
	// that a signstar-v1 request.
	emptyCommand bool
	hashedBy     string
	// voter is the caller's entry of a quorum profile's voters, for the
	// record of its vote or of the signature its vote gave.
	voter string
	// tx holds the log's lock from the rate or vote count to the append,
	// so two signers cannot both take the last slot, and two last votes
	// give one signature.
	tx     *audit.Tx
	upload *uploadReader
	// batch is the archive of `sign --tar`, nil for one artifact.
	batch *batch
}

func (r *Request) start() *session {
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.Open == nil {
		r.Open = OpenBackend
	}
	if r.Lockdown == nil {
		r.Lockdown = sandbox.Lockdown
	}
	if r.Idle == 0 {
		r.Idle = IdleTimeout
	}
	if r.SignalGrace == 0 {
		r.SignalGrace = SignalGrace
	}
	return &session{Request: r, sandbox: "none"}
}

func (s *session) close() {
	if s.tx != nil {
		s.tx.Unlock()
	}
	s.key.Close()
	s.next.Close()
}

// record is the audit record of this request with outcome o: the caller,
// the request as far as it got, and the outcome. It is the only place a
// record is made.
func (s *session) record(o Outcome, reason, signature string, t time.Time) *audit.Record {
	rec := &audit.Record{
		Time:      t.UTC().Format(audit.TimeFormat),
		User:      s.Caller.User,
		SSHKey:    s.Caller.SSHKey,
		Client:    s.Caller.Client,
		Command:   s.Command,
		Outcome:   Table[o].Audit,
		Reason:    reason,
		Size:      s.size,
		Digest:    s.digest,
		HashedBy:  s.hashedBy,
		Kind:      s.kind,
		Signature: signature,
		Sandbox:   s.sandbox,
	}
	if s.profile != nil {
		rec.Profile = s.profile.Name
	}
	if o == Voted || o == Signed {
		rec.Voter = s.voter
	}
	if s.key != nil && s.key.Public != nil {
		rec.Key = backend.Fingerprint(s.key.Public)
	}
	if s.next != nil && s.next.Public != nil {
		rec.NextKey = backend.Fingerprint(s.next.Public)
	}
	return rec
}

// finish turns a phase's stop into the result, appending the record when
// the table says so: through the held lock if there is one.
func (s *session) finish(st *stop) Result {
	if st == nil {
		return Result{Outcome: Signed, Exit: ExitOK}
	}
	row := Table[st.outcome]
	msg := oneLine(st.msg)
	// A reason may quote what the caller sent (a local argument can be
	// 128 KiB); the record must still fit one log line.
	if len(msg) > maxReason {
		msg = msg[:maxReason] + "...(" + strconv.Itoa(len(msg)) + " bytes)"
	}
	res := Result{Outcome: st.outcome, Exit: row.Exit, Message: msg}
	if row.Audit == "" {
		return res
	}
	recs := []*audit.Record{s.record(st.outcome, msg, "", s.Now())}
	if s.batch != nil {
		recs = s.batchRecords(st, msg)
	}
	appendRecs := s.appendRefusals
	if st.outcome == Voted {
		appendRecs = s.appendVotes
	}
	err := appendRecs(recs)
	var se *audit.SyslogError
	switch {
	case errors.As(err, &se):
		// On disk, which is what the exit code promises; a failed
		// FailedSyslog's record cannot reach the socket either.
		if st.outcome != FailedSyslog {
			res.Message = msg + "; and " + oneLine(se.Error())
		}
	case err != nil:
		res.Exit = ExitFailed
		res.Message = msg + "; and the audit record could not be written: " + oneLine(err.Error())
	}
	return res
}

// Refuse audits a request refused before any phase ran: the command line
// or command string (RefusedCommand), or stdin (RefusedTerminal).
func (r *Request) Refuse(o Outcome, reason string) Result {
	s := r.start()
	return s.finish(halt(o, reason))
}

// Crashed audits a request that ended in a panic (FailedInternal). The
// record has what the request was given, not how far it got.
func (r *Request) Crashed(reason string) Result {
	return r.start().finish(halt(FailedInternal, reason))
}

// Pubkey serves the certificate of the caller's profile.
func (r *Request) Pubkey(c *command.Request) Result {
	s := r.start()
	p, st := selectProfile(s.Config, s.Caller, c.Profile, s.ServerProfile)
	if st != nil {
		return s.finish(st)
	}
	s.profile = p
	file := PubkeyFile(p, s.Now())
	out, err := backend.ReadPublic(file)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return s.finish(halt(FailedCertificate, fmt.Sprintf("cannot read key %s: %s", file, errText(err))))
		}
		return s.finish(halt(FailedCertificate, err.Error()))
	}
	return Result{Outcome: Served, Exit: ExitOK, Output: out}
}

// Sign is the sign command: one artifact on stdin, one signature on
// stdout; with --tar, a tar of artifacts and a tar of signatures (tar.go).
func (r *Request) Sign(c *command.Request) Result {
	s := r.start()
	defer s.close()
	return s.finish(s.sign(c))
}

func (s *session) sign(c *command.Request) *stop {
	// SIGHUP, SIGINT and SIGTERM are ignored for the first SignalGrace,
	// and after that turned into an audited failure of the read
	// (stopOnSignal). Catching them costs three threads (os/signal's), a
	// tenth of a small request's time; a request done within the grace is
	// done, and audited, before anyone could have meant to stop it.
	// Before this line a signal kills the process, before any key or input
	// was touched.
	signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	if IsTerminal(s.Stdin) {
		return halt(RefusedTerminal, "stdin is a terminal: pipe the artifact in (signstar sign < FILE > FILE.sig)")
	}
	up, err := newUploadReader(s.Stdin, s.Idle)
	if err != nil {
		return halt(FailedUpload, err.Error())
	}
	s.upload = up
	time.AfterFunc(s.SignalGrace, up.stopOnSignal)

	s.emptyCommand = c.Empty
	if st := s.open(c.Profile); st != nil {
		return st
	}
	if st := s.lockdown(); st != nil {
		return st
	}
	if c.Tar {
		return s.signTar(c)
	}
	var a *artifact
	var st *stop
	if s.hashedBy == audit.HashedByClient {
		a, st = s.receiveRequest()
	} else {
		a, st = s.receiveStdin(c.Expect)
	}
	if st != nil {
		return st
	}
	if st := s.decide(a); st != nil {
		return st
	}
	return s.commit(a, c.Armor)
}

// open is the first phase: the caller's profile, its hash and its key.
// Everything the request will need from the filesystem or the network is
// opened here, before the lock-down.
func (s *session) open(asked string) *stop {
	p, st := selectProfile(s.Config, s.Caller, asked, s.ServerProfile)
	if st != nil {
		return st
	}
	s.profile = p
	// An empty command to a profile that accepts signstar-v1 is such a
	// request, and nothing else: stdin is never taken for the file, so
	// JSON cannot be mistaken for an artifact or the other way round
	// (an upload of the file itself says `sign`).
	if s.emptyCommand && p.Accepts(archreq.Accept) {
		s.hashedBy = audit.HashedByClient
	}
	s.sandbox = withEnforced(s.sandbox, p)
	if sl := s.Log.Syslog(); sl != nil && sl.Required && sl.Err() != nil {
		return halt(FailedSyslog, fmt.Sprintf("not signing: [audit] syslog_required is set and the syslog socket %s does not answer (%v): start the syslog daemon, or fix [audit] syslog in %s", sl.Path(), sl.Err(), s.Config.Path))
	}
	s.hash = p.HashFunc
	return s.openKeys()
}

// lockdown is the second phase: the sandbox, keeping the log's, the
// backend's and the command line's descriptors (see sandbox.Options).
func (s *session) lockdown() *stop {
	keep := append(s.Log.FDs(), s.key.FDs...)
	if s.next != nil {
		keep = append(keep, s.next.FDs...)
	}
	keep = append(keep, s.KeepFDs...)
	rep, err := s.Lockdown(sandbox.Options{
		Mode:           s.Config.Sandbox.Mode,
		KeepFDs:        keep,
		AppendFDs:      s.Log.AppendFDs(),
		BoundingSet:    s.Remote,
		KeepOwnSockets: true,
		Simulate:       s.Simulate,
	})
	s.sandbox = withEnforced(rep.String(), s.profile)
	if err != nil {
		var se *sandbox.Error
		if errors.As(err, &se) && se.Mode == sandbox.Enforce {
			return halt(FailedSandbox, fmt.Sprintf("%v: not signing; run 'signstar sandbox check', or set [sandbox] mode = \"best-effort\" in %s to sign without it", err, s.Config.Path))
		}
		return halt(FailedSandbox, err.Error())
	}
	return nil
}

// artifact is what a receive step hands to decide and commit: the bytes'
// hash state and what was learnt about them on the way.
type artifact struct {
	in   *signer.Input
	kind string
	note string // the detector's Note: why the kind is unknown, when it could say
	// expect is the client's --expect, nil without one; got is the
	// upload's digest under expect's hash.
	expect *command.Expect
	got    []byte
	// notes go into the signature's hashed area.
	notes []signer.Notation
	// respond, when set, is what stdout gets for the signature (a
	// request shape's own response) instead of the packet or its armor.
	respond func(sig []byte) []byte
}

// receiveStdin is the sign command's receive step: stdin read to EOF in one
// pass that hashes, sniffs the kind and, for an --expect of another hash,
// hashes that too.
func (s *session) receiveStdin(expect *command.Expect) (*artifact, *stop) {
	// The soft memory limit: a decoder holding a large window (up to
	// 64 MiB) would otherwise leave the garbage collector a heap goal of
	// twice that.
	debug.SetMemoryLimit(policy.MemoryLimit)
	det := policy.NewDetector()
	defer det.Close()
	var extra hash.Hash // --expect with another algorithm than the profile's
	if expect != nil && expect.Hash != s.hash {
		extra = expect.Hash.New()
	}
	observe := func(b []byte) {
		det.Write(b)
		if extra != nil {
			extra.Write(b)
		}
	}
	p := s.profile
	in, err := signer.Read(s.upload, s.hash, p.MaxSize, observe)
	if err != nil {
		var part *signer.Partial
		if errors.As(err, &part) {
			s.size, s.digest = part.Input.Size, part.Input.DigestString()
		}
		if signer.IsTooLarge(err) {
			return nil, halt(RefusedTooLarge, fmt.Sprintf("input larger than max_size %s of profile %s", p.MaxSizeText, p.Name))
		}
		if sig := s.upload.interrupted(); sig != nil {
			return nil, halt(FailedInterrupted, fmt.Sprintf("interrupted by %v while reading the artifact", sig))
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, halt(FailedIdle, fmt.Sprintf("no data from the client for %v after %d bytes; nothing was signed", s.upload.idle, s.size))
		}
		return nil, halt(FailedUpload, "cannot read the artifact from stdin: "+errText(err))
	}
	s.size, s.digest = in.Size, in.DigestString()
	s.kind = det.Kind()
	if sig := s.upload.interrupted(); sig != nil {
		return nil, halt(FailedInterrupted, fmt.Sprintf("interrupted by %v while reading the artifact", sig))
	}
	if clientGone(s.Stdout) {
		return nil, halt(FailedClientGone, "the client disconnected before the upload finished; nothing was signed")
	}
	a := &artifact{in: in, kind: s.kind, note: det.Note(), expect: expect}
	if expect != nil {
		a.got = in.Digest()
		if extra != nil {
			a.got = extra.Sum(nil)
		}
	}
	return a, nil
}

// decide is the phase that may refuse what was received: --expect, the
// kind, the quorum (which may end the request with a vote), the rate. With
// a quorum or a rate the log's lock is taken here and held until the
// record is appended.
func (s *session) decide(a *artifact) *stop {
	p := s.profile
	if a.expect != nil && subtle.ConstantTimeCompare(a.got, a.expect.Digest) != 1 {
		return halt(RefusedDigest, fmt.Sprintf("digest mismatch: expected %s, received %d bytes hashing to %s:%x", a.expect, a.in.Size, digest.Name(a.expect.Hash), a.got))
	}
	if err := policy.CheckKind(p.Name, p.Kinds, a.kind, a.note); err != nil {
		return halt(RefusedKind, err.Error())
	}
	// Without a rate or quorum the lock is taken for the append only, and
	// signers do not queue behind each other's (RSA, agent, card) signing.
	if p.Rate == nil && !p.IsQuorum() {
		return nil
	}
	tx, err := s.Log.Lock()
	if err != nil {
		return halt(FailedLog, err.Error())
	}
	s.tx = tx
	if p.IsQuorum() {
		if st := s.quorum(); st != nil {
			return st
		}
	}
	if p.Rate == nil {
		return nil
	}
	if err := policy.CheckRate(tx, p.Name, p.Rate, s.Now()); err != nil {
		var re *policy.RateError
		if errors.As(err, &re) {
			return halt(RefusedRate, err.Error())
		}
		return halt(FailedRateLog, err.Error())
	}
	return nil
}

// commit is the last phase: take the log's lock (if decide has not), sign
// with the log's notation (the record's seq and the tree root of every
// record before it: the lock is held from reading that root to appending
// the record), check the client is still there, append the signed record,
// and only then release the signature.
func (s *session) commit(a *artifact, armored bool) *stop {
	if s.tx == nil {
		tx, err := s.Log.Lock()
		if err != nil {
			return halt(FailedLog, "not signing: "+err.Error())
		}
		s.tx = tx
	}
	seq, root, err := s.tx.Commitment()
	if err != nil {
		return halt(FailedLog, "not signing: "+err.Error())
	}
	created := s.Now()
	notes := append([]signer.Notation{{Name: audit.NotationName, Value: audit.FormatNotation(seq, root)}}, a.notes...)
	sig, err := s.signAll(a.in, created, notes...)
	if err != nil {
		return halt(FailedSign, err.Error())
	}
	if clientGone(s.Stdout) {
		return halt(FailedClientGone, "the client disconnected before the signature could be sent; it was discarded")
	}
	out := sig
	switch {
	case a.respond != nil:
		out = a.respond(sig)
	case armored:
		out = armorSignature(sig)
	}
	rec := s.record(Signed, "", base64.StdEncoding.EncodeToString(sig), created)
	if err := s.tx.Append(rec); err != nil {
		var se *audit.SyslogError
		if errors.As(err, &se) {
			// The signed record is the truth and stays; the one after
			// it (finish, through the held lock) says the signature
			// never left.
			return halt(FailedSyslog, fmt.Sprintf("%v; [audit] syslog_required is set, so its signature was discarded: check the syslog daemon", se))
		}
		return halt(FailedLog, "not signing: "+err.Error())
	}
	if rec.Seq != seq {
		// Append numbers the record from the same locked state.
		return halt(FailedInternal, fmt.Sprintf("the record got seq %d, the signature %d", rec.Seq, seq))
	}
	s.tx.Unlock()
	s.tx = nil
	if _, err := s.Stdout.Write(out); err != nil {
		// The record says signed; a second one says it never arrived.
		return halt(FailedOutput, "the signature was made and audited but could not be written to stdout: "+errText(err))
	}
	return nil
}

// armorSignature is sig in ASCII armor. Writes to a bytes.Buffer do not
// fail, so neither does this.
func armorSignature(sig []byte) []byte {
	var buf bytes.Buffer
	w, _ := armor.Encode(&buf, "PGP SIGNATURE", nil)
	w.Write(sig)
	w.Close()
	buf.WriteByte('\n')
	return buf.Bytes()
}

// maxReason bounds a reason, for the record and the stderr line.
const maxReason = 2048

func errText(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	return strings.NewReplacer("\n", " ", "\r", " ").Replace(s)
}
