package request

import (
	"fmt"

	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/policy"
)

// quorum is decide's step for a quorum profile, under the log's lock: it
// counts the distinct voters of the received bytes within the window
// (policy.CountVotes) and lets the request go on to be signed when they
// make the quorum, the caller's own vote included. A voter's request short
// of the quorum ends as a vote (Voted); a publisher's is refused
// (RefusedQuorum); anyone else's is refused too (RefusedVoter). Each
// message gives the count.
func (s *session) quorum() *stop {
	p := s.profile
	t, err := policy.CountVotes(s.tx, p.Name, s.digest, p.QuorumWindow, s.Now())
	if err != nil {
		return halt(FailedRateLog, err.Error())
	}
	who := "user " + s.Caller.User + s.Caller.keyHint()
	if voter := p.VoterOf(s.Caller.User, s.Caller.SSHKey); voter != "" {
		s.voter = voter
		n := t.With(voter)
		if n >= p.Quorum {
			return nil
		}
		again := ""
		if t.Has(voter) {
			again = " (this voter's earlier vote is counted once)"
		}
		return halt(Voted, fmt.Sprintf("vote recorded for %s in profile %s: %s%s; not signed yet: send the same bytes again once %d more voter(s) have",
			s.digest, p.Name, t.Count(n, p.Quorum, p.QuorumWindowText), again, p.Quorum-n))
	}
	n := len(t.Voters)
	if p.IsPublisher(s.Caller.User, s.Caller.SSHKey) {
		if n >= p.Quorum {
			return nil
		}
		return halt(RefusedQuorum, fmt.Sprintf("quorum not met for %s in profile %s: %s; send it again once %d more voter(s) have sent the same bytes",
			s.digest, p.Name, t.Count(n, p.Quorum, p.QuorumWindowText), p.Quorum-n))
	}
	return halt(RefusedVoter, fmt.Sprintf("%s is neither a voter nor a publisher of quorum profile %s, so its request is not counted: %s has %s",
		who, p.Name, s.digest, t.Count(n, p.Quorum, p.QuorumWindowText)))
}

// appendVotes appends a vote's record through the lock decide took. A
// vote is not a refusal: it is never held back (appendRefusals).
func (s *session) appendVotes(recs []*audit.Record) error {
	if s.tx == nil {
		tx, err := s.Log.Lock()
		if err != nil {
			return err
		}
		s.tx = tx
	}
	err := s.tx.AppendAll(recs)
	s.tx.Unlock()
	s.tx = nil
	return err
}
