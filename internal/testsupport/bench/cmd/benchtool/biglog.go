package main

import (
	"bufio"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/backend"
	"github.com/signstar/signstar/internal/backend/keyfile"
	"github.com/signstar/signstar/internal/signer"
)

// biglog writes an audit log of n records spread over the last span, as a
// busy enclave's would be: refusals and failures from many clients (rate
// refusals of the profile, unknown commands), and signed records of the
// profile, real signatures by key made at their records' times (audit
// verify checks them); with -votes, a quorum profile's votes for other
// bytes among them, and with -vote-digest a quorum's worth of votes for
// those bytes as the newest records. The chain is made here line by line,
// without a lock or an fsync per record, each signature with the notation a
// signing process gives it; the index and the tree then come from
// audit.Rebuild, as
// `signstar audit rebuild` makes it.
func biglog(args []string) error {
	fs := flag.NewFlagSet("biglog", flag.ContinueOnError)
	n := fs.Int("records", 1000000, "records")
	signed := fs.Int("signed", 10, "of them signed")
	span := fs.Duration("span", 29*24*time.Hour, "the records' times spread over this much before now")
	keyPath := fs.String("key", "", "OpenPGP key file that signs the signed records")
	profile := fs.String("profile", "bench", "profile of the signed records and rate refusals")
	out := fs.String("out", "", "log to write (must not exist)")
	votes := fs.Int("votes", 0, "of them votes of the profile, by -voters in turn, each for other bytes")
	voters := fs.String("voters", "builder1,builder2,builder3", "the voters of -votes, comma-separated")
	voteDigest := fs.String("vote-digest", "", "when set, the last records are a vote for this digest by each of -voters but the last")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || *keyPath == "" || *n <= 0 || *signed < 0 || *votes < 0 || *signed+*votes > *n {
		return errors.New("biglog needs -out, -key and 0 <= -signed + -votes <= -records")
	}
	voterList := strings.Split(*voters, ",")
	voteEvery := *n + 1
	if *votes > 0 {
		voteEvery = *n / *votes
	}
	// The votes for -vote-digest, as the newest records: a quorum of all
	// voters but the last, for a request of the last (or a publisher).
	lastVotes := 0
	if *voteDigest != "" {
		lastVotes = len(voterList) - 1
	}
	key, err := keyfile.Open(keyfile.Options{Key: *keyPath}, time.Now())
	if err != nil {
		return err
	}
	defer key.Close()
	fpr := backend.Fingerprint(key.Public)
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	start := time.Now()
	first := start.Add(-*span)
	step := *span / time.Duration(*n)
	every := *n + 1
	if *signed > 0 {
		every = *n / *signed
	}
	prev := audit.ZeroHash
	nSigned, nVotes := 0, 0
	// The tree alongside, for each signature's notation (the root of the
	// records before it), as a signing process reads it from the tree file.
	fr := audit.NewFrontier()
	for i := 0; i < *n; i++ {
		t := first.Add(time.Duration(i) * step).UTC()
		r := &audit.Record{
			Seq: uint64(i + 1), Time: t.Format(audit.TimeFormat), User: "signer",
			Client: fmt.Sprintf("198.51.100.%d", i%250), Sandbox: "landlock=7,seccomp,nnp", Prev: prev,
		}
		switch {
		case i >= *n-lastVotes:
			r.Command, r.Profile, r.Outcome, r.Voter = "sign", *profile, audit.Vote, voterList[i-(*n-lastVotes)]
			r.User, r.Size, r.Digest, r.Kind = r.Voter, 1024, *voteDigest, ""
			r.Reason = "vote recorded for " + *voteDigest + " in profile " + *profile
		case i%every == every-1:
			in, err := signer.Read(strings.NewReader(fmt.Sprintf("artifact %d\n", i)), crypto.SHA256, 0, nil)
			if err != nil {
				return err
			}
			root, err := fr.Root()
			if err != nil {
				return err
			}
			sig, err := signer.Sign(in, key, t, signer.Notation{Name: audit.NotationName, Value: audit.FormatNotation(uint64(i+1), root)})
			if err != nil {
				return err
			}
			r.Command, r.Profile, r.Outcome = "sign", *profile, audit.Signed
			r.Size, r.Digest, r.Key, r.Signature = in.Size, in.DigestString(), fpr, base64.StdEncoding.EncodeToString(sig)
		case i%voteEvery == voteEvery/2:
			sum := sha256.Sum256([]byte(fmt.Sprintf("build %d", i)))
			r.Command, r.Profile, r.Outcome, r.Voter = "sign", *profile, audit.Vote, voterList[(i/voteEvery)%len(voterList)]
			r.User, r.Size, r.Digest = r.Voter, 1024, fmt.Sprintf("sha256:%x", sum)
			r.Reason = "vote recorded for " + r.Digest + " in profile " + *profile
		case i%3 == 0:
			r.Command, r.Outcome, r.Reason = "bogus", audit.Refused, `unknown command "bogus": use sign, pubkey, checkpoint, proof or version`
		default:
			r.Command, r.Profile, r.Outcome = "sign", *profile, audit.Refused
			r.Reason, r.Size, r.Digest = "rate 1/30d reached (last signed "+first.UTC().Format(time.RFC3339)+")", 1024, "sha256:"+strings.Repeat("ab", 32)
		}
		switch r.Outcome {
		case audit.Signed:
			nSigned++
		case audit.Vote:
			nVotes++
		}
		line, err := r.Marshal()
		if err != nil {
			return err
		}
		w.Write(line)
		w.WriteByte('\n')
		prev = audit.LineHash(line)
		if _, err := fr.Add(line); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	wrote := time.Since(start)
	res, err := audit.Rebuild(*out, time.Minute)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "biglog: %d records (%d signed, %d votes) written in %v, indexed by audit rebuild in %v\n",
		res.Records, nSigned, nVotes, wrote.Round(time.Millisecond), (time.Since(start) - wrote).Round(time.Millisecond))
	return nil
}
