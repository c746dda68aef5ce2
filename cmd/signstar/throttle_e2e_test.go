package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signstar/signstar/internal/audit"
)

var heldBack = regexp.MustCompile(`\(held back: [3-7] refused or failed requests from 192\.0\.2\.9 in 10m0s\)$`)

// TestRefusalThrottleE2E: the real binary, with the refusal limits lowered
// at build time to 3 per client and 400 ms: a client past its budget still
// has every request refused and audited, but its records come at least
// 400 ms apart, sequential or concurrent, and say they were held back;
// another client is not slowed.
func TestRefusalThrottleE2E(t *testing.T) {
	dir := t.TempDir()
	bin := buildSignstar(t, dir, "-X main.refusalLimitsForTests=3/100/400ms")
	cfg, _, logPath := sandboxSetup(t, dir, strictestMode())
	refuse := func(client string) {
		cmd := exec.Command(bin, "--config", cfg)
		cmd.Env = []string{"PATH=/usr/bin:/bin", "SSH_CONNECTION=" + client + " 50000 192.0.2.1 22", "SSH_ORIGINAL_COMMAND=bogus"}
		cmd.Stdin = strings.NewReader("")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || stdout.Len() != 0 {
			t.Errorf("bogus from %s: %v, stdout %q, stderr %q; want exit 2", client, err, stdout.String(), stderr.String())
		}
	}
	start := time.Now()
	for i := 0; i < 5; i++ {
		refuse("192.0.2.9")
	}
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); refuse("192.0.2.9") }()
	}
	wg.Wait()
	t.Logf("8 refusals of one client in %v", time.Since(start))
	other := time.Now()
	refuse("192.0.2.10")
	if d := time.Since(other); d > 300*time.Millisecond {
		t.Errorf("another client's refusal took %v", d)
	}

	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var recs []audit.Record
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var r audit.Record
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	if len(recs) != 9 {
		t.Fatalf("%d records, want 9 (every request audited)", len(recs))
	}
	var prev time.Time
	for i, r := range recs[:8] {
		tm, _ := time.Parse(audit.TimeFormat, r.Time)
		held := heldBack.MatchString(r.Reason)
		if r.Outcome != audit.Refused || r.Client != "192.0.2.9" || held != (i >= 3) {
			t.Errorf("record %d: %s %s %q", i+1, r.Outcome, r.Client, r.Reason)
		}
		if i >= 3 && tm.Sub(prev) < 400*time.Millisecond {
			t.Errorf("record %d came %v after the one before, want at least 400ms", i+1, tm.Sub(prev))
		}
		prev = tm
	}
	if r := recs[8]; r.Client != "192.0.2.10" || strings.Contains(r.Reason, "held back") {
		t.Errorf("other client's record: %s %q", r.Client, r.Reason)
	}
	f, _ := os.Open(logPath)
	defer f.Close()
	if n, err := audit.Verify(f); err != nil || n != 9 {
		t.Errorf("audit verify: %d, %v", n, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "audit.jsonl.idx")); err != nil {
		t.Error(err)
	}
}
