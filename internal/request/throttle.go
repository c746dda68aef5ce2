package request

import (
	"time"

	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/policy"
)

// appendRefusal appends rec, a refusal or failure, through s.tx when the
// request holds the log's lock (and then may release it), else through a
// lock of its own. A remote client whose requests keep being refused or
// failing is slowed down rather than kept out of the log
// (policy.RefusalWait): the request waits, without the lock, until its turn
// comes, at most policy.MaxRefusalWait, and its record says so.
func (s *session) appendRefusal(rec *audit.Record) error {
	deadline := s.Now().Add(policy.MaxRefusalWait)
	for {
		if s.tx == nil {
			tx, err := s.Log.Lock()
			if err != nil {
				return err
			}
			s.tx = tx
		}
		wait, why, err := policy.RefusalWait(s.tx, rec.Client, s.Now())
		if err != nil {
			return err
		}
		if wait <= 0 || s.Now().After(deadline) {
			if why != "" {
				rec.Reason += " (held back: " + why + ")"
			}
			rec.Time = s.Now().UTC().Format(audit.TimeFormat)
			err := s.tx.Append(rec)
			s.tx.Unlock()
			s.tx = nil
			return err
		}
		s.tx.Unlock()
		s.tx = nil
		time.Sleep(min(wait, time.Until(deadline)+time.Millisecond))
	}
}
