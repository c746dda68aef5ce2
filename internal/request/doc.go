// Package request runs one request to the enclave, from an open audit log
// to an exit code: the only place that decides what is signed, what is
// audited and what reaches stdout.
//
// # Phases
//
// A sign request runs in phases, each of which either hands on to the next
// or stops with an Outcome:
//
//	open      profile for the Caller, its hash, the backend's key (before
//	          the lock-down: everything from the filesystem or network)
//	lock down sandbox.Lockdown, keeping the log's and backend's descriptors
//	receive   the request shape's own step: for `sign`, stdin streamed
//	          through one hash pass, the kind sniffer and --expect's hash
//	decide    --expect, the profile's kinds, its rate (the log's lock is
//	          taken here and held to the append)
//	commit    sign and self-verify, check the client is still there,
//	          append the signed record, then release the signature
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
// quorum vote): its grammar in internal/command (command.go, spec.go), a
// receive step here that yields an artifact (see receiveStdin), an entry
// point beside Sign that runs open, lockdown, the new receive, decide and
// commit, any new outcomes in outcome.go with a row each and a test each
// in request_test.go (rowTests), its dispatch in cmd/signstar/sign.go, and
// docs/CONTRACT.md.
//
// A backend: a package under internal/backend/NAME whose Open returns a
// *backend.Key, its [profile.NAME] table and name in internal/config
// (config.go, keys.go), its case in OpenBackend and any error wording in
// backendMessage (backend.go here), docs/CONTRACT.md and README.md.
//
// An artifact kind: its sniffer in internal/policy (detector.go and a file
// of its own, with a fuzz test and samples under testdata), its name in
// internal/policy/policy.go and in the kinds choices of
// internal/config/keys.go, docs/CONTRACT.md.
//
// An audit sink: internal/audit (audit.go: Log, Tx.Append); the pipeline
// writes only through Log.Append and Tx.Append, and the sandbox must keep
// the sink's descriptors (Log.FDs, Log.AppendFDs) through the lock-down.
package request
