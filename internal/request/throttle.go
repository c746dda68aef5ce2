package request

import (
	"time"

	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/policy"
)

// appendRefusals appends recs, the records of a refusal or failure (one,
// or those of an archive's members, held back together), through s.tx when the
// request holds the log's lock (and then may release it), else through a
// lock of its own. A remote client whose requests keep being refused or
// failing is slowed down rather than kept out of the log
// (policy.RefusalWait): the request waits, without the lock, until its turn
// comes, at most policy.MaxRefusalWait, and its record says so.
func (s *session) appendRefusals(recs []*audit.Record) error {
	rec := recs[0]
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
			t := s.Now().UTC().Format(audit.TimeFormat)
			for _, r := range recs {
				if why != "" {
					r.Reason += " (held back: " + why + ")"
				}
				r.Time = t
			}
			err := s.tx.AppendAll(recs)
			s.tx.Unlock()
			s.tx = nil
			return err
		}
		s.tx.Unlock()
		s.tx = nil
		time.Sleep(min(wait, time.Until(deadline)+time.Millisecond))
	}
}
