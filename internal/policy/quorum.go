package policy

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/signstar/signstar/internal/audit"
)

// Tally is what the log says of one digest in a quorum profile: the
// distinct voters whose votes are within the window, and how many votes
// for it were left out for being older.
type Tally struct {
	// Voters are the distinct voters within the window, oldest vote first.
	Voters []string
	// Older counts votes for the digest older than the window among the
	// OlderLook votes (of any digest) just before it.
	Older int
	// Rotated says the window reaches back before the log file's first
	// record: votes in the rotated files are not counted.
	Rotated bool
}

// Has reports whether voter is among the tally's voters.
func (t *Tally) Has(voter string) bool { return slices.Contains(t.Voters, voter) }

// With is the number of distinct voters once voter ("" for none) is
// counted too.
func (t *Tally) With(voter string) int {
	if voter == "" || t.Has(voter) {
		return len(t.Voters)
	}
	return len(t.Voters) + 1
}

// Count says n of quorum votes within window, and the older ones left
// out, for messages: "1 of 2 votes within quorum_window 1h".
func (t *Tally) Count(n, quorum int, window string) string {
	s := fmt.Sprintf("%d of %d votes within quorum_window %s", n, quorum, window)
	if t.Older > 0 {
		s += fmt.Sprintf(" (%d older not counted)", t.Older)
	}
	if t.Rotated {
		s += " (votes before the log's rotation not counted)"
	}
	return s
}

// CountVotes tallies the votes of profile for digest ("sha256:HEX", as in
// the record) newer than now minus window, from tx's index: it walks the
// chain of votes (audit.Entry.PrevVote), newest first, reading one entry
// per vote of any quorum profile within the window and at most OlderLook
// past it (for the count of older votes), and the log's line only of a
// vote whose profile and digest prefix match (the index holds 8 bytes of
// the digest; the record holds all of it, and the voter). Refusals,
// failures and plain signatures are never read, however many the log
// holds.
//
// Votes in the files a rotation renamed (audit.Tx.FileBase) are not
// counted: the count starts anew with each log file, and says so while its
// window reaches back past the file's start.
//
// Unlike the rate's count it needs no ScanSlack: every record with a voter
// takes its time under the log's lock (a vote's when it is appended, a
// signature's when it is made, the lock held since the count), so times
// fall along the chain. A clock stepped back could hide a vote from the
// count, which can only withhold a signature, never give one.
//
// The caller must keep tx locked until its own record is appended: that is
// what makes two concurrent last votes give one signature, not two or
// none.
func CountVotes(tx *audit.Tx, profile, digest string, window time.Duration, now time.Time) (*Tally, error) {
	start := now.Add(-window).UnixMicro()
	pid := audit.ProfileID(profile)
	var prefix [8]byte
	if _, h, ok := strings.Cut(digest, ":"); ok {
		if d, err := hex.DecodeString(h); err == nil {
			copy(prefix[:], d)
		}
	}
	t := &Tally{}
	last, ok := tx.LastEntry()
	if !ok {
		return t, nil
	}
	seq := last.PrevVote
	if last.IsVote {
		seq = last.Seq
	}
	var voters []string // newest first
	past := 0           // votes read past the window
	base := tx.FileBase()
	for seq != 0 {
		if seq <= base {
			// Before a rotation: the lines are in the rotated files,
			// which this process does not read. Not counting those votes
			// can only withhold a signature.
			e, err := tx.Entry(seq)
			if err != nil {
				return nil, err
			}
			t.Rotated = e.Time > start
			break
		}
		e, err := tx.Entry(seq)
		if err != nil {
			return nil, err
		}
		if e.Time <= start {
			if past == OlderLook {
				break
			}
			past++
		}
		seq = e.PrevVote
		if e.Profile != pid || e.Digest != prefix {
			continue
		}
		r, err := tx.RecordOf(e)
		if err != nil {
			return nil, err
		}
		if r.Profile != profile || r.Digest != digest || r.Voter == "" {
			continue
		}
		if e.Time <= start {
			t.Older++
			continue
		}
		if !slices.Contains(voters, r.Voter) {
			voters = append(voters, r.Voter)
		}
	}
	slices.Reverse(voters)
	t.Voters = voters
	return t, nil
}

// OlderLook is how many votes past the window CountVotes reads, to say
// how many for the same bytes were too old.
const OlderLook = 16

// ParseWindow reads a quorum window: a count and a unit s, m, h or d
// ("90m", "2h", "1d").
func ParseWindow(s string) (time.Duration, error) {
	// A loop, not a regular expression: compiling one costs a one-shot
	// signing process more than the vote count it configures.
	t := strings.TrimSpace(s)
	bad := fmt.Errorf("%q is not a duration: use a count and a unit s, m, h or d, such as \"2h\" or \"1d\"", s)
	if len(t) < 2 || len(t) > 10 {
		return 0, bad
	}
	unit, ok := map[byte]time.Duration{'s': time.Second, 'm': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour}[t[len(t)-1]]
	if !ok {
		return 0, bad
	}
	var n int64
	for _, c := range []byte(t[:len(t)-1]) {
		if c < '0' || c > '9' {
			return 0, bad
		}
		n = n*10 + int64(c-'0')
	}
	if n <= 0 {
		return 0, fmt.Errorf("%q: must be more than zero", s)
	}
	if n > int64(10*365*24*time.Hour/unit) {
		return 0, fmt.Errorf("%q is longer than ten years", s)
	}
	return time.Duration(n) * unit, nil
}
