package policy

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signstar/signstar/internal/audit"
)

func setRefusalLimits(t *testing.T, perClient, inWindow int, spacing time.Duration) {
	t.Helper()
	saved := []any{RefusalsPerClient, RefusalsInWindow, RefusalSpacing}
	RefusalsPerClient, RefusalsInWindow, RefusalSpacing = perClient, inWindow, spacing
	t.Cleanup(func() {
		RefusalsPerClient, RefusalsInWindow, RefusalSpacing = saved[0].(int), saved[1].(int), saved[2].(time.Duration)
	})
}

func refusalWait(t *testing.T, l *audit.Log, client string, now time.Time) (time.Duration, string, int) {
	t.Helper()
	tx, err := l.Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Unlock()
	w, why, err := RefusalWait(tx, client, now)
	if err != nil {
		t.Fatal(err)
	}
	return w, why, tx.EntriesRead()
}

// TestRefusalWait: a client past its budget of refusals waits for its
// spacing after its own last one; others do not, until all of them together
// pass theirs; signatures and local requests are never held back, and the
// walk reads at most RefusalsInWindow entries.
func TestRefusalWait(t *testing.T) {
	setRefusalLimits(t, 3, 8, 10*time.Second)
	l, err := audit.Open(filepath.Join(t.TempDir(), "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	add := func(client, outcome string, at time.Time) {
		t.Helper()
		r := &audit.Record{Time: at.Format(audit.TimeFormat), Client: client, Outcome: outcome, Reason: "no"}
		if outcome == audit.Signed {
			r.Reason = ""
		}
		if err := l.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	// Old refusals leave the window.
	for i := 0; i < 5; i++ {
		add("192.0.2.1", audit.Refused, now.Add(-time.Hour))
	}
	if w, _, _ := refusalWait(t, l, "192.0.2.1", now); w != 0 {
		t.Errorf("refusals an hour old: wait %v", w)
	}
	add("192.0.2.1", audit.Refused, now.Add(-3*time.Second))
	add("192.0.2.1", audit.Signed, now.Add(-2*time.Second))
	add("192.0.2.1", audit.Failed, now.Add(-2*time.Second))
	if w, _, _ := refusalWait(t, l, "192.0.2.1", now); w != 0 {
		t.Errorf("two refusals in the window: wait %v", w)
	}
	add("192.0.2.1", audit.Refused, now.Add(-time.Second))
	w, why, _ := refusalWait(t, l, "192.0.2.1", now)
	if w != 9*time.Second || !strings.Contains(why, "3 refused or failed requests from 192.0.2.1 in 10m0s") {
		t.Errorf("three refusals in the window, the last a second ago: wait %v (%s), want 9s", w, why)
	}
	if w, _, _ := refusalWait(t, l, "192.0.2.1", now.Add(10*time.Second)); w != 0 {
		t.Errorf("after the spacing: wait %v", w)
	}
	for _, c := range []string{"192.0.2.2", ""} {
		if w, _, _ := refusalWait(t, l, c, now); w != 0 {
			t.Errorf("client %q: wait %v", c, w)
		}
	}
	// An IPv6 client is one by its /64.
	for i := 0; i < 3; i++ {
		add("2001:db8:0:1::"+string(rune('a'+i)), audit.Refused, now.Add(-time.Second))
	}
	if w, _, _ := refusalWait(t, l, "2001:db8:0:1::ffff", now); w != 9*time.Second {
		t.Errorf("a fourth address of one /64: wait %v, want 9s", w)
	}
	// Eight in the window from all clients: everyone waits after the newest.
	add("192.0.2.3", audit.Failed, now.Add(-600*time.Millisecond))
	add("192.0.2.3", audit.Refused, now.Add(-500*time.Millisecond))
	w, why, read := refusalWait(t, l, "192.0.2.4", now)
	if w != 9500*time.Millisecond || !strings.Contains(why, "from all clients") {
		t.Errorf("eight refusals in the window: client 192.0.2.4 waits %v (%s), want 9.5s", w, why)
	}
	if read > 8 {
		t.Errorf("%d entries read, want at most RefusalsInWindow 8", read)
	}
}
