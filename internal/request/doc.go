// Package request runs one request to the enclave, from an open audit log
// to an exit code: the only place that decides what is signed, what is
// audited and what reaches stdout.
//
// # Phases
//
// A sign request runs in phases, each of which either hands on to the next
// or stops with an Outcome:
//
//	open      profile for the Caller, its hash, the backend's key, and in a
//	          key transition its next key (transition.go; before the
//	          lock-down: everything from the filesystem or network)
//	lock down sandbox.Lockdown, keeping the log's and backend's descriptors
//	receive   the request shape's own step: for `sign`, stdin streamed
//	          through one hash pass, the kind sniffer and --expect's hash;
//	          for a signstar-v1 request (an empty command to a profile that
//	          accepts it), the client's SHA-512 state (clientstate.go);
//	          for `sign --tar` (tar.go), each member of the archive
//	          streamed through its own hash pass and sniffer, the whole
//	          archive read before any member is decided
//	decide    --expect, the profile's kinds, its quorum (quorum.go: a
//	          voter's request short of it ends as a vote), its rate (the
//	          log's lock is taken here and held to the append)
//	commit    sign and self-verify (signAll: each key that signs now,
//	          into one .sig), check the client is still there, append the
//	          signed record (which also sends it to the syslog socket, when there
//	          is one), then release the signature
//
// Table maps every Outcome to the audit record's outcome (or none), the exit
// code and the class of the stderr line; finish applies it, and record is
// the one place an audit record is built (from the Caller, what the phases
// learnt, and the outcome). A phase never writes to the log or stderr
// itself.
//
// # Where things plug in
//
// A request shape (batch `sign --tar`, a client-hashed JSON request, a
// quorum vote): its grammar in internal/command (command.go, spec.go); here
// a receive step that yields an artifact (see receiveStdin) and an entry
// point beside Sign (request.go) that runs open, lockdown, the new receive,
// decide and commit; any new outcome in outcome.go with its row in Table
// and its test in request_test.go (rowTests, which TestTableComplete
// insists on); its dispatch in cmd/signstar/sign.go (serve); and
// docs/CONTRACT.md.
//
// A backend: a package internal/backend/NAME with Options and
// Open(Options, now) (*backend.Key, error), reading secrets with
// backend.ReadPassphrase and leaving the hash rule to backend.CheckHash; its
// name and [profile.NAME] table in internal/config (config.go, keys.go);
// its case in OpenBackend, the mapping of the profile onto its Options and
// any error wording in backendMessage (backend.go here); a doctor check in
// internal/doctor if it has files of its own; docs/CONTRACT.md, README.md.
//
// An artifact kind: its sniffer in internal/policy (detector.go, and a file
// of its own with a fuzz test and samples under testdata), its name in the
// Kinds table of internal/policy/policy.go, which the configuration's kinds
// and the refusals take it from; docs/CONTRACT.md, and go generate
// ./internal/docgen for the man page.
//
// An audit sink: internal/audit (audit.go: Log, Tx.Append); the pipeline
// writes only through Log.Lock and Tx.Append (finish, appendRefusal,
// commit), and the lock-down keeps the sink's descriptors (Log.FDs,
// Log.AppendFDs; lockdown here). A sink that must see the record before the
// signature is released belongs in commit, before the stdout write. The
// syslog socket is one (audit/syslog.go): cmd/signstar connects it when
// the log is open, Log.FDs keeps it through the lock-down, Tx.Append sends
// each record once it is on disk, and with syslog_required open refuses
// when it is not connected and commit turns a *audit.SyslogError into
// FailedSyslog.
package request
