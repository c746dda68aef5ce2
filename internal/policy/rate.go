package policy

import (
	"fmt"
	"slices"
	"time"

	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/config"
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
	LastSigned time.Time // newest of them
	Next       time.Time // when the oldest of them leaves the window
}

func (e *RateError) Error() string {
	return fmt.Sprintf("rate %s reached (last signed %s)", e.Rate, e.LastSigned.UTC().Format(time.RFC3339))
}

// CheckRate counts the profile's signed records newer than now minus the
// rate's period, scanning tx's log from the newest record. It returns a
// *RateError when N of them are there already, nil when one more signature
// fits, and another error when the log cannot be read (the request fails).
//
// The caller must keep tx locked until the new record is appended: that is
// what stops two concurrent requests from both taking the last slot. A nil
// rate allows everything.
func CheckRate(tx *audit.Tx, profile string, rate *config.Rate, now time.Time) error {
	if rate == nil {
		return nil
	}
	if rate.N <= 0 || rate.Period <= 0 {
		return fmt.Errorf("rate %q is not usable", rate.Text)
	}
	start := now.Add(-rate.Period)
	stop := start.Add(-ScanSlack)
	var (
		times []time.Time
		bad   error
	)
	err := tx.Scan(func(r *audit.Record) bool {
		t, err := time.Parse(time.RFC3339Nano, r.Time)
		if err != nil {
			bad = fmt.Errorf("audit log record %d has no valid time (%q): run 'signstar audit verify'", r.Seq, r.Time)
			return false
		}
		if t.Before(stop) {
			return false
		}
		if r.Profile != profile || r.Outcome != audit.Signed || !t.After(start) {
			return true
		}
		times = append(times, t)
		return true
	})
	if err != nil {
		return err
	}
	if bad != nil {
		return bad
	}
	if len(times) < rate.N {
		return nil
	}
	slices.SortFunc(times, time.Time.Compare)
	return &RateError{
		Profile:    profile,
		Rate:       rate.Text,
		Count:      len(times),
		LastSigned: times[len(times)-1],
		// One slot frees when the record that leaves the window brings the
		// count below N.
		Next: times[len(times)-rate.N].Add(rate.Period),
	}
}
