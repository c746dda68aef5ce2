package request

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/policy"
)

// Three builders' SSH keys, a publisher's and a stranger's.
var (
	keyA = "SHA256:" + strings.Repeat("A", 43)
	keyB = "SHA256:" + strings.Repeat("B", 43)
	keyC = "SHA256:" + strings.Repeat("C", 43)
	keyP = "SHA256:" + strings.Repeat("P", 43)
	keyX = "SHA256:" + strings.Repeat("X", 43)
)

// newQuorumFixture is a profile that signs what two of three builders
// sent within an hour, and what they did for a publisher.
func newQuorumFixture(t *testing.T, extra ...string) *fixture {
	t.Helper()
	lines := append([]string{
		"quorum = 2",
		fmt.Sprintf("voters = [%q, %q, %q]", keyA, keyB, keyC),
		`quorum_window = "1h"`,
		fmt.Sprintf("publishers = [%q]", keyP),
	}, extra...)
	return newFixture(t, "ed25519", lines...)
}

// as makes the next request the SSH key's, with a fresh stdout and the
// same upload.
func (f *fixture) as(key string) *fixture {
	f.rq.Caller.SSHKey = key
	f.stdout.Reset()
	in, err := os.Open(f.rq.Stdin.Name())
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { in.Close() })
	f.rq.Stdin = in
	return f
}

// The second builder's vote is signed; the first builder's repeat is then
// signed too (the quorum is met by then), and so is the publisher's
// request; each signed record but the publisher's names its voter.
func TestQuorumMet(t *testing.T) {
	f := newQuorumFixture(t)
	f.as(keyA).check(f.rq.Sign(sign()), Voted, "1 of 2 votes")
	r := f.as(keyB).check(f.rq.Sign(sign()), Signed, "")
	if r.Voter != keyB || r.Signature == "" {
		t.Fatalf("record %+v", r)
	}
	if sig, _ := base64.StdEncoding.DecodeString(r.Signature); !bytes.Equal(sig, f.stdout.Bytes()) {
		t.Fatal("stdout is not the record's signature")
	}
	if r := f.as(keyA).check(f.rq.Sign(sign()), Signed, ""); r.Voter != keyA {
		t.Errorf("record %+v", r)
	}
	if r := f.as(keyP).check(f.rq.Sign(sign()), Signed, ""); r.Voter != "" {
		t.Errorf("record %+v", r)
	}
	// Other bytes start from nothing.
	f.input([]byte("other bytes"))
	f.as(keyC).check(f.rq.Sign(sign()), Voted, "1 of 2 votes")
}

// A builder whose bytes differ never meets the quorum, however often it
// sends them; the others' agreement is not its.
func TestQuorumDifferentBytes(t *testing.T) {
	f := newQuorumFixture(t)
	f.as(keyA).check(f.rq.Sign(sign()), Voted, "1 of 2 votes")
	f.input([]byte("a compromised build"))
	for i := 0; i < 3; i++ {
		f.as(keyC).check(f.rq.Sign(sign()), Voted, "1 of 2 votes")
	}
	f.as(keyP).check(f.rq.Sign(sign()), RefusedQuorum, "1 of 2 votes")
}

// Votes older than quorum_window are not counted, and the message says
// how many were left out.
func TestQuorumWindow(t *testing.T) {
	f := newQuorumFixture(t)
	old := clock.Add(-2 * time.Hour)
	f.rq.Now = func() time.Time { return old }
	if res := f.as(keyA).rq.Sign(sign()); res.Outcome != Voted || res.Exit != ExitVote {
		t.Fatalf("%+v", res)
	}
	f.rq.Now = func() time.Time { return clock }
	f.as(keyB).check(f.rq.Sign(sign()), Voted, "1 of 2 votes within quorum_window 1h (1 older not counted)")
	f.as(keyP).check(f.rq.Sign(sign()), RefusedQuorum, "1 of 2 votes within quorum_window 1h (1 older not counted)")
	f.as(keyA).check(f.rq.Sign(sign()), Signed, "")
}

// A voter named by its Unix user counts once whatever key it uses; a
// publisher need not vote.
func TestQuorumUserVoters(t *testing.T) {
	me := uidUser(os.Getuid())
	f := newFixture(t, "ed25519", "quorum = 1", fmt.Sprintf("voters = [%q]", me), `quorum_window = "10m"`)
	if r := f.as(keyA).check(f.rq.Sign(sign()), Signed, ""); r.Voter != me {
		t.Fatalf("record %+v", r)
	}
}

// Two last votes at once, in two processes' worth of requests on one log:
// one signature and one vote, never two signatures or two votes.
func TestQuorumConcurrentLastVotes(t *testing.T) {
	f := newQuorumFixture(t)
	for round := 0; round < 8; round++ {
		data := []byte(fmt.Sprintf("round %d", round))
		f.input(data)
		var wg sync.WaitGroup
		res := make([]Result, 2)
		outs := make([]*bytes.Buffer, 2)
		for i, key := range []string{keyA, keyB} {
			log, err := audit.Open(f.logPath)
			if err != nil {
				t.Fatal(err)
			}
			defer log.Close()
			in, err := os.Open(f.rq.Stdin.Name())
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			rq := *f.rq
			rq.Log, rq.Stdin, rq.Caller.SSHKey = log, in, key
			// A slow clock widens the time between the count and the
			// append, which only the lock closes; the result does not
			// depend on it.
			rq.Now = func() time.Time { time.Sleep(5 * time.Millisecond); return clock }
			outs[i] = &bytes.Buffer{}
			rq.Stdout = outs[i]
			wg.Add(1)
			go func() {
				defer wg.Done()
				res[i] = rq.Sign(sign())
			}()
		}
		wg.Wait()
		got := map[Outcome]int{}
		for i, r := range res {
			got[r.Outcome]++
			if (r.Outcome == Signed) != (outs[i].Len() > 0) {
				t.Errorf("round %d: %v with %d bytes on stdout", round, r.Outcome, outs[i].Len())
			}
		}
		if got[Signed] != 1 || got[Voted] != 1 {
			t.Fatalf("round %d: outcomes %v (%q, %q), want one signature and one vote", round, got, res[0].Message, res[1].Message)
		}
	}
	signed := 0
	for _, r := range f.records() {
		if r.Outcome == audit.Signed {
			signed++
		}
	}
	if signed != 8 {
		t.Fatalf("%d signed records, want 8", signed)
	}
}

// A quorum profile with a rate: votes do not use the rate up; the
// signature does.
func TestQuorumWithRate(t *testing.T) {
	f := newQuorumFixture(t, `rate = "1/1d"`)
	f.as(keyA).check(f.rq.Sign(sign()), Voted, "1 of 2 votes")
	f.as(keyA).check(f.rq.Sign(sign()), Voted, "1 of 2 votes")
	f.as(keyB).check(f.rq.Sign(sign()), Signed, "")
	f.as(keyC).check(f.rq.Sign(sign()), RefusedRate, "rate 1/1d reached")
}

// The vote count reads only votes: a log of refusals and plain signatures
// between two votes costs it no entry and no record.
func TestQuorumReadsOnlyVotes(t *testing.T) {
	f := newQuorumFixture(t)
	f.as(keyA).check(f.rq.Sign(sign()), Voted, "1 of 2 votes")
	for i := 0; i < 3*audit.HeadsWindow; i++ {
		o := audit.Refused
		if i%3 == 0 {
			o = audit.Failed
		}
		if err := f.rq.Log.Append(&audit.Record{Time: clock.Format(audit.TimeFormat), Outcome: o, Reason: "x", Profile: "repo"}); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := f.rq.Log.Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Unlock()
	recs := f.records()
	tally, err := policy.CountVotes(tx, "repo", recs[0].Digest, time.Hour, clock)
	if err != nil {
		t.Fatal(err)
	}
	if len(tally.Voters) != 1 || tally.Voters[0] != keyA {
		t.Fatalf("tally %+v", tally)
	}
	// The newest entry, then the vote's entry; one record line.
	if tx.EntriesRead() > 2 || tx.RecordsRead() != 1 {
		t.Fatalf("read %d entries and %d records", tx.EntriesRead(), tx.RecordsRead())
	}
}

// A quorum profile takes one artifact per request: sign --tar is refused
// before the archive is read, and counts as no vote.
func TestQuorumRefusesTar(t *testing.T) {
	f := newQuorumFixture(t)
	f.input(archive(t, file{name: "a", data: []byte("a")}))
	r := f.as(keyA).check(f.rq.Sign(sign("--tar")), RefusedArchive, "profile repo is a quorum profile, whose votes are one artifact each: send each file with sign, not sign --tar")
	if r.Voter != "" || r.Size != 0 {
		t.Errorf("record %+v", r)
	}
}

// Votes are not refusals: a builder's many votes are never held back, and
// do not count towards the refusals that hold a client back.
func TestVotesNotHeldBack(t *testing.T) {
	defer func(n int, spacing, maxWait time.Duration) {
		policy.RefusalsPerClient, policy.RefusalSpacing, policy.MaxRefusalWait = n, spacing, maxWait
	}(policy.RefusalsPerClient, policy.RefusalSpacing, policy.MaxRefusalWait)
	policy.RefusalsPerClient, policy.RefusalSpacing, policy.MaxRefusalWait = 2, time.Hour, 50*time.Millisecond
	f := newQuorumFixture(t)
	f.rq.Now = time.Now
	for i := 0; i < 4; i++ {
		if res := f.as(keyA).rq.Sign(sign()); res.Outcome != Voted {
			t.Fatalf("%+v", res)
		}
	}
	if res := f.as(keyX).rq.Sign(sign()); res.Outcome != RefusedVoter {
		t.Fatalf("%+v", res)
	}
	for _, r := range f.records() {
		if strings.Contains(r.Reason, "held back") {
			t.Errorf("record %d held back: %q", r.Seq, r.Reason)
		}
	}
	// The refusals still are.
	for i := 0; i < 2; i++ {
		f.as(keyX).rq.Sign(sign())
	}
	if recs := f.records(); !strings.Contains(recs[len(recs)-1].Reason, "(held back: 2 refused or failed requests from") {
		t.Errorf("the third refusal: %q", recs[len(recs)-1].Reason)
	}
}
