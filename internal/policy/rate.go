package policy

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/signstar/signstar/internal/audit"
)

// ScanSlack is how far past the start of the rate window the scan keeps
// going. Records are appended in lock order, but a record's time may be taken
// when its request started, so a slow upload can put an older time after a
// newer one. Reading on for a day costs little and cannot miss a record.
var ScanSlack = 24 * time.Hour

// RateError refuses a request because the profile has used up its rate.
type RateError struct {
	Profile    string
	Rate       string    // as configured, e.g. "1/30d"
	Count      int       // signed records in the window
	LastSigned time.Time // newest of them; zero when there is none
	Next       time.Time // when the oldest of them leaves the window
	// Asked is how many signatures the request needs (the members of a
	// `sign --tar` archive), Room how many fit.
	Asked, Room int
}

func (e *RateError) Error() string {
	if e.Asked <= 1 {
		return fmt.Sprintf("rate %s reached (last signed %s)", e.Rate, e.LastSigned.UTC().Format(time.RFC3339))
	}
	if e.Count == 0 {
		return fmt.Sprintf("rate %s is fewer than the %d signatures the archive asks for", e.Rate, e.Asked)
	}
	return fmt.Sprintf("rate %s leaves room for %d of the %d signatures the archive asks for (last signed %s)", e.Rate, e.Room, e.Asked, e.LastSigned.UTC().Format(time.RFC3339))
}

// CheckRate counts the profile's signed records newer than now minus the
// rate's period, from tx's index: the newest block of the index names the
// profile's newest signature (audit.Tx.LatestSigned), and each signature
// of the profile names the one before (audit.Entry.PrevSignedSame), so it
// reads one block and then one entry per signature of the profile within
// the period and ScanSlack: never a refusal, a failure or another
// profile's signature, however many the log holds. (With 256 profiles or
// more that have signed, it walks back along every signature instead.) It
// returns a *RateError when N of them are there already, nil when one more
// signature fits, and another error when the index cannot be read (the
// request fails).
//
// The caller must keep tx locked until the new record is appended: that is
// what stops two concurrent requests from both taking the last slot. A nil
// rate allows everything.
func CheckRate(tx *audit.Tx, profile string, rate *Rate, now time.Time) error {
	return CheckRateN(tx, profile, rate, now, 1)
}

// CheckRateN is CheckRate for a request of n signatures (the members of an
// archive): nil only when all n fit, and the *RateError says how many do.
func CheckRateN(tx *audit.Tx, profile string, rate *Rate, now time.Time, n int) error {
	if rate == nil {
		return nil
	}
	if rate.N <= 0 || rate.Period <= 0 {
		return fmt.Errorf("rate %q is not usable", rate.Text)
	}
	start := now.Add(-rate.Period).UnixMicro()
	stop := now.Add(-rate.Period).Add(-ScanSlack).UnixMicro()
	pid := audit.ProfileID(profile)
	seq, byProfile, err := tx.LatestSigned(pid)
	if err != nil {
		return err
	}
	if !byProfile {
		// Every signature, newest first.
		if last, ok := tx.LastEntry(); ok {
			seq = last.PrevSigned
			if last.Signed() {
				seq = last.Seq
			}
		}
	}
	var times []int64
	for seq != 0 {
		e, err := tx.Entry(seq)
		if err != nil {
			return err
		}
		if e.Time < stop {
			break
		}
		if e.Profile == pid && e.Time > start {
			times = append(times, e.Time)
		}
		seq = e.PrevSigned
		if byProfile {
			seq = e.PrevSignedSame
		}
	}
	if len(times)+n <= rate.N {
		return nil
	}
	slices.Sort(times)
	e := &RateError{Profile: profile, Rate: rate.Text, Count: len(times), Asked: n, Room: max(rate.N-len(times), 0)}
	if len(times) > 0 {
		e.LastSigned = time.UnixMicro(times[len(times)-1]).UTC()
	}
	if len(times) >= rate.N {
		// One slot frees when the record that leaves the window brings the
		// count below N.
		e.Next = time.UnixMicro(times[len(times)-rate.N]).Add(rate.Period).UTC()
	}
	return e
}

// Rate is at most N signatures per Period: a profile's rate.
type Rate struct {
	N      int
	Period time.Duration
	Text   string // as configured
}

var rateRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^([0-9]{1,9})/([0-9]{0,9})(s|m|h|d)$`) })

// ParseRate reads "N/PERIOD" where PERIOD is a count and a unit s, m, h or d:
// "100/1h", "1/30d", "10/m".
func ParseRate(s string) (*Rate, error) {
	m := rateRE().FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return nil, fmt.Errorf("%q is not a rate: use N/PERIOD such as \"100/1h\" or \"1/30d\" (units s, m, h, d)", s)
	}
	n, _ := strconv.Atoi(m[1])
	count := int64(1)
	if m[2] != "" {
		count, _ = strconv.ParseInt(m[2], 10, 64)
	}
	unit := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour}[m[3]]
	if n <= 0 || count <= 0 {
		return nil, fmt.Errorf("%q: both numbers must be more than zero", s)
	}
	if count > int64(10*365*24*time.Hour/unit) {
		return nil, fmt.Errorf("%q: the period is longer than ten years", s)
	}
	return &Rate{N: n, Period: time.Duration(count) * unit, Text: s}, nil
}
