package request

import (
	"encoding/json"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/command"
	"github.com/signstar/signstar/internal/sandbox"
)

// The log's read commands, `checkpoint [--from N]` and `proof SEQ`: a
// successful one is not recorded (it signs no artifact, and what it tells
// is what the log commits to; a record per read would grow the log with
// every witness's poll), a refusal or failure is, like pubkey's.

// Checkpoint serves `checkpoint [--from N]`: the log's signed checkpoint
// (audit.SignCheckpoint), and with --from the consistency proof from
// size N before it (audit.Consistency).
func (r *Request) Checkpoint(c *command.Request) Result {
	s := r.start()
	defer s.close()
	out, st := s.checkpoint(c)
	if st != nil {
		return s.finish(st)
	}
	return Result{Outcome: Served, Exit: ExitOK, Output: out}
}

// Proof serves `proof SEQ`: a C2SP tlog-proof of record SEQ (audit.Proof)
// in the log's current tree, with its signed checkpoint.
func (r *Request) Proof(c *command.Request) Result {
	s := r.start()
	defer s.close()
	out, st := s.proof(c)
	if st != nil {
		return s.finish(st)
	}
	return Result{Outcome: Served, Exit: ExitOK, Output: out}
}

// openLogKey is the read commands' open and lock-down phases: the caller
// must be allowed a profile, the checkpoint key is read, the sandbox
// applied.
func (s *session) openLogKey() (note.Signer, *stop) {
	p, st := selectProfile(s.Config, s.Caller, "", s.ServerProfile)
	if st != nil {
		return nil, st
	}
	s.profile = p
	a := &s.Config.Audit
	if a.CheckpointKey == "" {
		return nil, halt(FailedCheckpoint, fmt.Sprintf("this log has no checkpoint key: set [audit] origin and checkpoint_key in %s (signstar audit keygen makes the key)", s.Config.Path))
	}
	key, err := audit.ReadCheckpointKey(a.CheckpointKey, a.Origin)
	if err != nil {
		return nil, halt(FailedCheckpoint, err.Error())
	}
	keep := append(s.Log.FDs(), s.KeepFDs...)
	rep, err := s.Lockdown(sandbox.Options{
		Mode:           s.Config.Sandbox.Mode,
		KeepFDs:        keep,
		AppendFDs:      s.Log.AppendFDs(),
		BoundingSet:    s.Remote,
		KeepOwnSockets: true,
		Simulate:       s.Simulate,
	})
	s.sandbox = rep.String()
	if err != nil {
		var se *sandbox.Error
		if errors.As(err, &se) && se.Mode == sandbox.Enforce {
			return nil, halt(FailedSandbox, fmt.Sprintf("%v: not serving the log; run 'signstar sandbox check'", err))
		}
		return nil, halt(FailedSandbox, err.Error())
	}
	return key, nil
}

// lockLog takes the log's lock for a read; the caller unlocks (s.tx).
func (s *session) lockLog() *stop {
	tx, err := s.Log.Lock()
	if err != nil {
		return halt(FailedLog, err.Error())
	}
	s.tx = tx
	return nil
}

func (s *session) unlock() {
	s.tx.Unlock()
	s.tx = nil
}

func (s *session) checkpoint(c *command.Request) ([]byte, *stop) {
	key, st := s.openLogKey()
	if st != nil {
		return nil, st
	}
	if st := s.lockLog(); st != nil {
		return nil, st
	}
	n := s.tx.TreeSize()
	if c.From > n {
		return nil, halt(RefusedRecord, fmt.Sprintf("--from %d is past the log's size %d", c.From, n))
	}
	root, err := s.tx.TreeRoot(n)
	if err != nil {
		return nil, halt(FailedCheckpoint, err.Error())
	}
	var proof tlog.TreeProof
	if c.HasFrom {
		proof, err = s.tx.ProveTree(n, c.From)
		if err != nil {
			return nil, halt(FailedCheckpoint, err.Error())
		}
	}
	s.unlock()
	cp, err := audit.SignCheckpoint(audit.Checkpoint{Origin: s.Config.Audit.Origin, Size: n, Root: root}, key)
	if err != nil {
		return nil, halt(FailedCheckpoint, err.Error())
	}
	if !c.HasFrom {
		return cp, nil
	}
	return (&audit.Consistency{Old: c.From, Proof: proof, Checkpoint: cp}).Marshal(), nil
}

func (s *session) proof(c *command.Request) ([]byte, *stop) {
	key, st := s.openLogKey()
	if st != nil {
		return nil, st
	}
	if st := s.lockLog(); st != nil {
		return nil, st
	}
	n := s.tx.TreeSize()
	if c.Seq > uint64(n) {
		return nil, halt(RefusedRecord, fmt.Sprintf("the log has no record %d: it holds %d", c.Seq, n))
	}
	line, err := s.tx.RecordLine(c.Seq)
	if err != nil {
		return nil, halt(FailedCheckpoint, err.Error())
	}
	var rec audit.Record
	if err := json.Unmarshal(line, &rec); err != nil {
		return nil, halt(FailedCheckpoint, fmt.Sprintf("record %d of the log is not a record: run signstar audit verify", c.Seq))
	}
	// A caller sees the records of the profiles it may use, no others:
	// a record names its requester (user, SSH key, address).
	if p := s.Config.Profile(rec.Profile); p == nil || !p.Allows(s.Caller.User) || !p.AllowsSSHKey(s.Caller.SSHKey) {
		return nil, halt(RefusedRecord, fmt.Sprintf("record %d is not of a profile available to user %s%s", c.Seq, s.Caller.User, s.Caller.keyHint()))
	}
	root, err := s.tx.TreeRoot(n)
	if err == nil {
		var p tlog.RecordProof
		p, err = s.tx.ProveRecord(c.Seq, n)
		if err == nil {
			s.unlock()
			var cp []byte
			cp, err = audit.SignCheckpoint(audit.Checkpoint{Origin: s.Config.Audit.Origin, Size: n, Root: root}, key)
			if err == nil {
				return (&audit.Proof{Record: line, Index: int64(c.Seq - 1), Hashes: p, Checkpoint: cp}).Marshal(), nil
			}
		}
	}
	return nil, halt(FailedCheckpoint, err.Error())
}
