package policy

import (
	"os"
	"testing"
	"time"

	"github.com/signstar/signstar/internal/audit"
)

// BenchmarkCountVotes counts the votes of the newest records of a big log
// (benchtool biglog -votes N -vote-digest D -profile bench; make bench
// writes one), named by SIGNSTAR_BIGLOG and SIGNSTAR_BIGLOG_DIGEST, against
// the lock alone: what a quorum check adds to a request.
//
//	SIGNSTAR_BIGLOG=/var/tmp/big.jsonl SIGNSTAR_BIGLOG_DIGEST=sha256:... \
//	    go test -run '^$' -bench CountVotes ./internal/policy
func BenchmarkCountVotes(b *testing.B) {
	path, digest := os.Getenv("SIGNSTAR_BIGLOG"), os.Getenv("SIGNSTAR_BIGLOG_DIGEST")
	if path == "" || digest == "" {
		b.Skip("set SIGNSTAR_BIGLOG and SIGNSTAR_BIGLOG_DIGEST")
	}
	l, err := audit.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	now := time.Now()
	for _, window := range []time.Duration{0, time.Hour, 24 * time.Hour} {
		name := "lock-only"
		if window > 0 {
			name = "window-" + window.String()
		}
		b.Run(name, func(b *testing.B) {
			entries := 0
			for b.Loop() {
				tx, err := l.Lock()
				if err != nil {
					b.Fatal(err)
				}
				if window > 0 {
					t, err := CountVotes(tx, "bench", digest, window, now)
					if err != nil || len(t.Voters) != 2 {
						b.Fatalf("%+v, %v", t, err)
					}
				}
				entries = tx.EntriesRead()
				tx.Unlock()
			}
			b.ReportMetric(float64(entries), "entries/op")
		})
	}
}

func TestParseWindow(t *testing.T) {
	for in, want := range map[string]time.Duration{"90m": 90 * time.Minute, "2h": 2 * time.Hour, "1d": 24 * time.Hour, "30s": 30 * time.Second, " 3650d ": 3650 * 24 * time.Hour} {
		if got, err := ParseWindow(in); err != nil || got != want {
			t.Errorf("ParseWindow(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "h", "0h", "1", "1w", "-1h", "1.5h", "1 h", "3651d", "9999999999s", "１h"} {
		if _, err := ParseWindow(in); err == nil {
			t.Errorf("ParseWindow(%q) accepted", in)
		}
	}
}
