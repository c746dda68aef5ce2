package policy

import (
	"crypto"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/backend"
	"github.com/signstar/signstar/internal/backend/keyfile"
	"github.com/signstar/signstar/internal/signer"
)

func mustRate(t testing.TB, s string) *Rate {
	t.Helper()
	r, err := ParseRate(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// request does what signstar does for one request: lock the log, check the
// rate, append the record (signed or refused) under the same lock.
func request(logPath, profile string, rate *Rate, now time.Time) (bool, error) {
	l, err := audit.Open(logPath)
	if err != nil {
		return false, err
	}
	defer l.Close()
	tx, err := l.Lock()
	if err != nil {
		return false, err
	}
	defer tx.Unlock()
	rec := &audit.Record{Time: now.UTC().Format(audit.TimeFormat), User: "signer", Profile: profile, Outcome: audit.Signed}
	err = CheckRate(tx, profile, rate, now)
	var re *RateError
	switch {
	case errors.As(err, &re):
		rec.Outcome, rec.Reason = audit.Refused, err.Error()
	case err != nil:
		return false, err
	default:
		// What signing fills in: audit verify checks the signature
		// against the record's key, time and digest.
		rec.Key, rec.Digest, rec.Signature, err = testSignature(now)
		if err != nil {
			return false, err
		}
	}
	if err := tx.Append(rec); err != nil {
		return false, err
	}
	return rec.Outcome == audit.Signed, nil
}

func TestRateOncePerMonth(t *testing.T) {
	log := filepath.Join(t.TempDir(), "audit.jsonl")
	rate := mustRate(t, "1/30d")
	first := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	if ok, err := request(log, "iso", rate, first); err != nil || !ok {
		t.Fatalf("first request: signed=%v err=%v", ok, err)
	}
	// Other profiles and refusals do not use this profile's slot.
	if ok, err := request(log, "repo", rate, first.Add(time.Hour)); err != nil || !ok {
		t.Fatalf("other profile: signed=%v err=%v", ok, err)
	}
	l, err := audit.Open(log)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	tx, err := l.Lock()
	if err != nil {
		t.Fatal(err)
	}
	err = CheckRate(tx, "iso", rate, first.Add(29*24*time.Hour))
	tx.Unlock()
	var re *RateError
	if !errors.As(err, &re) {
		t.Fatalf("second request within 30 days: %v, want *RateError", err)
	}
	if want := "rate 1/30d reached (last signed 2026-11-02T10:00:00Z)"; err.Error() != want {
		t.Errorf("reason %q, want %q", err, want)
	}
	if want := first.Add(30 * 24 * time.Hour); !re.Next.Equal(want) {
		t.Errorf("next %v, want %v", re.Next, want)
	}
	// Refused records do not count either; after 30 days the slot is free.
	if ok, err := request(log, "iso", rate, first.Add(29*24*time.Hour)); err != nil || ok {
		t.Fatalf("second request: signed=%v err=%v", ok, err)
	}
	if ok, err := request(log, "iso", rate, first.Add(30*24*time.Hour+time.Second)); err != nil || !ok {
		t.Fatalf("after 30 days: signed=%v err=%v", ok, err)
	}
	if ok, err := request(log, "iso", rate, first.Add(31*24*time.Hour)); err != nil || ok {
		t.Fatalf("after 31 days: signed=%v err=%v", ok, err)
	}
	if n, err := verifyLog(t, log); err != nil || n != 5 {
		t.Fatalf("audit verify: %d records, %v", n, err)
	}
}

func TestRateNil(t *testing.T) {
	log := filepath.Join(t.TempDir(), "audit.jsonl")
	for i := 0; i < 3; i++ {
		if ok, err := request(log, "repo", nil, time.Now()); err != nil || !ok {
			t.Fatalf("no rate: signed=%v err=%v", ok, err)
		}
	}
}

// Records appended in lock order may carry times out of order (a record's
// time is when its request started); the scan must still see them.
func TestRateOutOfOrderTimes(t *testing.T) {
	log := filepath.Join(t.TempDir(), "audit.jsonl")
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	l, err := audit.Open(log)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, r := range []*audit.Record{
		{Time: now.Add(-30 * time.Minute).Format(audit.TimeFormat), Profile: "p", Outcome: audit.Signed},
		{Time: now.Add(-3 * time.Hour).Format(audit.TimeFormat), Profile: "p", Outcome: audit.Signed},
		{Time: now.Add(-2 * time.Hour).Format(audit.TimeFormat), Profile: "q", Outcome: audit.Signed},
	} {
		if err := l.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := l.Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Unlock()
	if err := CheckRate(tx, "p", mustRate(t, "2/1h"), now); err != nil {
		t.Errorf("one signature in the hour, 2/1h: %v", err)
	}
	if err := CheckRate(tx, "p", mustRate(t, "1/1h"), now); err == nil {
		t.Errorf("one signature in the hour, 1/1h: allowed")
	}
}

// A record whose time cannot be read cannot be placed in a rate window:
// the log does not take it, and one that got in anyway (written around
// signstar) fails every request until the log is repaired.
func TestRateBadLog(t *testing.T) {
	log := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := audit.Open(log)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Append(&audit.Record{Time: "yesterday", Profile: "p", Outcome: audit.Signed}); err == nil {
		t.Fatal("appended a record with time \"yesterday\"")
	}
	rec := audit.Record{Seq: 1, Time: "yesterday", Profile: "p", Outcome: audit.Signed, Prev: audit.ZeroHash}
	line, _ := rec.Marshal()
	f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(append(line, '\n'))
	f.Close()
	tx, err := l.Lock()
	if err == nil {
		tx.Unlock()
		t.Fatal("locked a log whose last record has no valid time")
	}
	if !strings.Contains(err.Error(), "no valid time") {
		t.Errorf("lock: %v", err)
	}
}

// TestRateReadsNoRefusals: a rate check reads the signatures of its period
// along the index, never the refusals in between, however many there are:
// the 1/30d profile with its window full of refused requests.
func TestRateReadsNoRefusals(t *testing.T) {
	log := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := audit.Open(log)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	now := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) string { return now.Add(-d).Format(audit.TimeFormat) }
	recs := []*audit.Record{
		{Time: at(40 * 24 * time.Hour), Profile: "iso", Outcome: audit.Signed},
		{Time: at(20 * 24 * time.Hour), Profile: "iso", Outcome: audit.Signed},
		{Time: at(19 * 24 * time.Hour), Profile: "repo", Outcome: audit.Signed},
	}
	for i := 0; i < 3000; i++ {
		recs = append(recs, &audit.Record{Time: at(time.Duration(3000-i) * time.Minute), Profile: "iso", Client: "192.0.2.9", Outcome: audit.Refused, Reason: "rate 1/30d reached"})
	}
	tx, err := l.Lock()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := tx.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	tx.Unlock()
	for _, tc := range []struct {
		rate    string
		refused bool
	}{{"1/30d", true}, {"2/30d", false}, {"1/10d", false}, {"2/60d", true}} {
		tx, err := l.Lock()
		if err != nil {
			t.Fatal(err)
		}
		err = CheckRate(tx, "iso", mustRate(t, tc.rate), now)
		read := tx.EntriesRead()
		tx.Unlock()
		var re *RateError
		if errors.As(err, &re) != tc.refused || (err != nil && re == nil) {
			t.Errorf("%s: %v, want refused %v", tc.rate, err, tc.refused)
		}
		// The newest block, then the profile's signatures within the
		// period and its slack.
		if read > audit.HeadsWindow+2 {
			t.Errorf("%s: %d index entries read for 2 signatures of the profile and 3000 refusals", tc.rate, read)
		}
	}
}

// TestRateManyProfiles: with more profiles than the index's newest block
// can name, the check walks every signature and still counts right.
func TestRateManyProfiles(t *testing.T) {
	log := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := audit.Open(log)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	now := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	tx, err := l.Lock()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1200; i++ {
		r := &audit.Record{Time: now.Add(-time.Duration(1200-i) * time.Minute).Format(audit.TimeFormat), Profile: fmt.Sprintf("p%d", i), Outcome: audit.Signed}
		if i == 5 || i == 700 {
			r.Profile = "iso"
		}
		if err := tx.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	if _, complete, _ := tx.LatestSigned(audit.ProfileID("iso")); complete {
		t.Fatal("the index names 1200 profiles' heads in its newest block")
	}
	for _, tc := range []struct {
		rate    string
		refused bool
	}{{"2/1d", true}, {"3/1d", false}, {"1/9h", true}, {"1/8h", false}} {
		err := CheckRate(tx, "iso", mustRate(t, tc.rate), now)
		var re *RateError
		if errors.As(err, &re) != tc.refused || (err != nil && re == nil) {
			t.Errorf("%s: %v, want refused %v", tc.rate, err, tc.refused)
		}
	}
	tx.Unlock()
}

// Eight concurrent requests against 3/1h: exactly three signed.
func TestRateConcurrentGoroutines(t *testing.T) {
	log := filepath.Join(t.TempDir(), "audit.jsonl")
	rate := mustRate(t, "3/1h")
	var wg sync.WaitGroup
	var mu sync.Mutex
	signed := 0
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := request(log, "iso", rate, time.Now())
			if err != nil {
				errs <- err
				return
			}
			if ok {
				mu.Lock()
				signed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if signed != 3 {
		t.Errorf("%d signed, want 3", signed)
	}
	checkOutcomes(t, log, 3, 5)
}

func checkOutcomes(t *testing.T, log string, wantSigned, wantRefused int) {
	t.Helper()
	if n, err := verifyLog(t, log); err != nil || n != wantSigned+wantRefused {
		t.Fatalf("audit verify: %d records, %v", n, err)
	}
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(data), `"outcome":"signed"`); got != wantSigned {
		t.Errorf("log has %d signed, want %d", got, wantSigned)
	}
	if got := strings.Count(string(data), `"reason":"rate 3/1h reached`); got != wantRefused {
		t.Errorf("log has %d rate refusals, want %d", got, wantRefused)
	}
}

// The same with eight processes, each with its own descriptor and lock.
func TestRateConcurrentProcesses(t *testing.T) {
	if log := os.Getenv("SIGNSTAR_POLICY_RATE_CHILD"); log != "" {
		ok, err := request(log, "iso", mustRate(t, "3/1h"), time.Now())
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(ok)
		os.Exit(0)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(t.TempDir(), "audit.jsonl")
	var cmds []*exec.Cmd
	var outs []*strings.Builder
	for i := 0; i < 8; i++ {
		cmd := exec.Command(exe, "-test.run=^TestRateConcurrentProcesses$")
		cmd.Env = append(os.Environ(), "SIGNSTAR_POLICY_RATE_CHILD="+log)
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	signed := 0
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("child %d: %v\n%s", i, err, outs[i])
		}
		if strings.TrimSpace(outs[i].String()) == "true" {
			signed++
		}
	}
	if signed != 3 {
		t.Errorf("%d signed, want 3", signed)
	}
	checkOutcomes(t, log, 3, 5)
}

func verifyLog(t *testing.T, path string) (int, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return audit.Verify(f)
}

// testSignature signs a small artifact at t with the repository's test key,
// as signstar would, and returns the record's key, digest and signature.
func testSignature(t time.Time) (key, digest, sig string, err error) {
	data, err := os.ReadFile("../../testdata/keys/ed25519.key")
	if err != nil {
		return "", "", "", err
	}
	dir, err := os.MkdirTemp("", "policy-key")
	if err != nil {
		return "", "", "", err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "k.asc")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return "", "", "", err
	}
	k, err := keyfile.Open(keyfile.Options{Key: path}, time.Now())
	if err != nil {
		return "", "", "", err
	}
	in, err := signer.Read(strings.NewReader("artifact"), crypto.SHA256, 0, nil)
	if err != nil {
		return "", "", "", err
	}
	raw, err := signer.Sign(in, k, t)
	if err != nil {
		return "", "", "", err
	}
	return backend.Fingerprint(k.Public), in.DigestString(), base64.StdEncoding.EncodeToString(raw), nil
}

// TestRateN: an archive of n members needs n slots; the refusal says how
// many are left.
func TestRateN(t *testing.T) {
	log := filepath.Join(t.TempDir(), "audit.jsonl")
	rate := mustRate(t, "3/1h")
	now := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	check := func(n int) error {
		l, err := audit.Open(log)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		tx, err := l.Lock()
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Unlock()
		return CheckRateN(tx, "repo", rate, now, n)
	}
	if err := check(3); err != nil {
		t.Fatalf("3 of 3 in an empty log: %v", err)
	}
	if err := check(4); err == nil || err.Error() != "rate 3/1h is fewer than the 4 signatures the archive asks for" {
		t.Fatalf("4 of 3: %v", err)
	}
	if ok, err := request(log, "repo", rate, now.Add(-time.Minute)); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if err := check(2); err != nil {
		t.Fatalf("2 after 1: %v", err)
	}
	err := check(3)
	var re *RateError
	if !errors.As(err, &re) || re.Room != 2 || re.Asked != 3 || err.Error() != "rate 3/1h leaves room for 2 of the 3 signatures the archive asks for (last signed 2026-11-02T09:59:00Z)" {
		t.Fatalf("3 after 1: %v", err)
	}
}
