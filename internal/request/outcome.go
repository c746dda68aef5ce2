package request

import "github.com/signstar/signstar/internal/audit"

// Outcome is how a request ended. Every phase ends either by handing on to
// the next or with one of these; the outcome alone decides (through the
// table) whether the request is audited, the exit code and the kind of
// message stderr gets.
type Outcome int

// The outcomes, in the order a sign request can meet them.
const (
	// Signed: the signature is audited and written to stdout.
	Signed Outcome = iota
	// Served: a pubkey request's certificate, for the caller to write.
	// Only signatures are audited on success.
	Served

	// RefusedCommand: the command string or arguments are not signstar's
	// grammar, or a forced command added words it may not.
	RefusedCommand
	// RefusedTerminal: stdin is a terminal, not an artifact.
	RefusedTerminal
	// RefusedProfile: no profile is available to the caller (or the one
	// asked for is missing or forbidden: the same words for both).
	RefusedProfile
	// RefusedRequest: a signstar-v1 request (internal/archreq) that is
	// not one: not JSON, another major version, an unknown required
	// field or value, a state that is not sha2's, or longer than
	// archreq.MaxRequest.
	RefusedRequest
	// RefusedTooLarge: the upload passed the profile's max_size (for a
	// signstar-v1 request: the bytes its state says the client hashed).
	RefusedTooLarge
	// RefusedDigest: the upload does not hash to the client's --expect.
	RefusedDigest
	// RefusedKind: the artifact's kind is not among the profile's kinds.
	RefusedKind
	// RefusedRate: the profile's rate is used up.
	RefusedRate
	// RefusedRecord: proof's SEQ or checkpoint's --from is not in the
	// log, or the record is of a profile the caller may not use.
	RefusedRecord
	// RefusedArchive: a `sign --tar` archive that is not a plain tar of
	// regular files (a link, a directory, an absolute name, a duplicate,
	// a truncated archive, trailing data, more than max_files members), or
	// one sent to a quorum profile, whose votes are one artifact each.
	RefusedArchive
	// RefusedQuorum: a publisher asked for bytes that have too few votes
	// in the quorum profile's window.
	RefusedQuorum
	// RefusedVoter: the caller may use the quorum profile but is neither
	// one of its voters nor one of its publishers.
	RefusedVoter

	// Voted: a voter's request in a quorum profile that does not meet the
	// quorum yet; the vote is audited, nothing is signed.
	Voted

	// FailedProfile: the profile cannot sign as configured (its hash does
	// not suit its key).
	FailedProfile
	// FailedBackend: the key, agent, card or TPM could not be opened.
	FailedBackend
	// FailedSandbox: the lock-down could not be applied as the mode asks.
	FailedSandbox
	// FailedUpload: stdin could not be prepared or read.
	FailedUpload
	// FailedInterrupted: a signal stopped the upload.
	FailedInterrupted
	// FailedIdle: the client sent nothing for the idle timeout.
	FailedIdle
	// FailedClientGone: the client went away before the signature could
	// reach it; nothing is released.
	FailedClientGone
	// FailedRateLog: the log could not be read to count the rate or the
	// votes.
	FailedRateLog
	// FailedSign: the backend did not sign, or its signature does not
	// verify.
	FailedSign
	// FailedCertificate: the profile's certificate could not be read.
	FailedCertificate
	// FailedOutput: signed and audited, but stdout could not take the
	// signature; a second record says so.
	FailedOutput
	// FailedInternal: signstar itself failed (a panic, recovered by the
	// command line); the reason says what, in one short line.
	FailedInternal
	// FailedCheckpoint: the log's checkpoint key is not configured or
	// cannot be read, or the tree cannot be read for a proof.
	FailedCheckpoint
	// FailedSyslog: [audit] syslog_required is set and the syslog socket
	// cannot be connected (before stdin is read), or did not take the
	// signed record (which is on disk; a second record says the signature
	// was discarded). Nothing is released.
	FailedSyslog
	// FailedLog: the audit log cannot be locked or appended to, so the
	// request cannot be audited; nothing is signed or released.
	FailedLog

	numOutcomes
)

// Class is what the stderr line tells the reader.
type Class int

const (
	// Quiet: nothing on stderr.
	Quiet Class = iota
	// Refusal: the request breaks a rule; the caller can change it.
	Refusal
	// Failure: the server could not do it; the operator can fix it.
	Failure
	// Unaudited: a failure that could not even be recorded.
	Unaudited
	// Notice: the request was recorded, neither done nor refused (a
	// vote); the line says what is awaited.
	Notice
)

// Exit codes of the contract (docs/CONTRACT.md, "Exit codes").
const (
	ExitOK      = 0
	ExitFailed  = 1
	ExitRefused = 2
	// ExitVote: a vote was recorded; no signature yet.
	ExitVote = 3
)

// Row is one line of the outcome table.
type Row struct {
	// Audit is the record's outcome field, "" when no record is written.
	Audit string
	// Exit is the process's exit code when the record (if any) is on
	// disk. An audited outcome whose record cannot be written exits
	// ExitFailed instead, and its message says so.
	Exit  int
	Class Class
}

// Table maps each outcome to what it means outside. It is the only place
// that decides whether an outcome is audited, and with which exit code.
var Table = [numOutcomes]Row{
	Signed: {audit.Signed, ExitOK, Quiet},
	Served: {"", ExitOK, Quiet},

	RefusedCommand:  {audit.Refused, ExitRefused, Refusal},
	RefusedTerminal: {audit.Refused, ExitRefused, Refusal},
	RefusedProfile:  {audit.Refused, ExitRefused, Refusal},
	RefusedRequest:  {audit.Refused, ExitRefused, Refusal},
	RefusedTooLarge: {audit.Refused, ExitRefused, Refusal},
	RefusedDigest:   {audit.Refused, ExitRefused, Refusal},
	RefusedKind:     {audit.Refused, ExitRefused, Refusal},
	RefusedRate:     {audit.Refused, ExitRefused, Refusal},
	RefusedRecord:   {audit.Refused, ExitRefused, Refusal},
	RefusedArchive:  {audit.Refused, ExitRefused, Refusal},
	RefusedQuorum:   {audit.Refused, ExitRefused, Refusal},
	RefusedVoter:    {audit.Refused, ExitRefused, Refusal},

	Voted: {audit.Vote, ExitVote, Notice},

	FailedProfile:     {audit.Failed, ExitFailed, Failure},
	FailedBackend:     {audit.Failed, ExitFailed, Failure},
	FailedSandbox:     {audit.Failed, ExitFailed, Failure},
	FailedUpload:      {audit.Failed, ExitFailed, Failure},
	FailedInterrupted: {audit.Failed, ExitFailed, Failure},
	FailedIdle:        {audit.Failed, ExitFailed, Failure},
	FailedClientGone:  {audit.Failed, ExitFailed, Failure},
	FailedRateLog:     {audit.Failed, ExitFailed, Failure},
	FailedSign:        {audit.Failed, ExitFailed, Failure},
	FailedCertificate: {audit.Failed, ExitFailed, Failure},
	FailedOutput:      {audit.Failed, ExitFailed, Failure},
	FailedInternal:    {audit.Failed, ExitFailed, Failure},
	FailedCheckpoint:  {audit.Failed, ExitFailed, Failure},
	FailedSyslog:      {audit.Failed, ExitFailed, Failure},
	FailedLog:         {"", ExitFailed, Unaudited},
}

var outcomeNames = [numOutcomes]string{
	"Signed", "Served",
	"RefusedCommand", "RefusedTerminal", "RefusedProfile", "RefusedRequest", "RefusedTooLarge", "RefusedDigest", "RefusedKind", "RefusedRate", "RefusedRecord", "RefusedArchive",
	"RefusedQuorum", "RefusedVoter", "Voted",
	"FailedProfile", "FailedBackend", "FailedSandbox", "FailedUpload", "FailedInterrupted", "FailedIdle", "FailedClientGone",
	"FailedRateLog", "FailedSign", "FailedCertificate", "FailedOutput", "FailedInternal", "FailedCheckpoint", "FailedSyslog", "FailedLog",
}

func (o Outcome) String() string {
	if o < 0 || o >= numOutcomes {
		return "Outcome(?)"
	}
	return outcomeNames[o]
}

// Outcomes lists every outcome, for tests that walk the table.
func Outcomes() []Outcome {
	l := make([]Outcome, numOutcomes)
	for i := range l {
		l[i] = Outcome(i)
	}
	return l
}

// Result is what a request hands back to the command line.
type Result struct {
	Outcome Outcome
	// Exit is the process's exit code.
	Exit int
	// Message is the one stderr line, without "signstar: "; "" for none.
	Message string
	// Output is what the command line writes to stdout (Served only; a
	// signature is written by the pipeline itself, after its record).
	Output []byte
}

// stop ends a phase with an outcome; the message is the stderr line and,
// when audited, the record's reason.
type stop struct {
	outcome Outcome
	msg     string
	// member is the member of a `sign --tar` archive that caused the
	// stop; nil for one artifact, or the archive as a whole.
	member *member
}

func halt(o Outcome, msg string) *stop { return &stop{outcome: o, msg: msg} }
