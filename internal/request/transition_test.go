package request

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/backend"
	"github.com/signstar/signstar/internal/command"
	"github.com/signstar/signstar/internal/config"
	"github.com/signstar/signstar/internal/signer"
)

// transitionFixture is a profile whose key is old and whose next_key is
// next (test key names), with the period [clock+from, clock+until).
func transitionFixture(t *testing.T, old, next string, from, until time.Duration) (*fixture, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, next+".next.key")
	data, err := os.ReadFile(filepath.Join(keysDir, next+".key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, old,
		fmt.Sprintf("next_key = %q", path),
		fmt.Sprintf("next_key_from = %q", clock.Add(from).Format(time.RFC3339)),
		fmt.Sprintf("old_key_until = %q", clock.Add(until).Format(time.RFC3339)))
	return f, path
}

// fingerprintOf is the fingerprint of the test key name's signing key.
func fingerprintOf(t *testing.T, name string) string {
	t.Helper()
	e, err := backend.ReadEntity(filepath.Join(keysDir, name+".pub"))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := backend.SigningKeys(e, clock)
	if err != nil {
		t.Fatal(err)
	}
	return backend.Fingerprint(keys[0])
}

// packets splits a .sig into its signature packets' issuers, checking each
// against the input.
func packets(t *testing.T, sig, data []byte) []string {
	t.Helper()
	var out []string
	rd := bytes.NewReader(sig)
	for rd.Len() > 0 {
		p, err := packet.Read(rd)
		if err != nil {
			t.Fatal(err)
		}
		s, ok := p.(*packet.Signature)
		if !ok || s.SigType != packet.SigTypeBinary || s.IssuerKeyId == nil {
			t.Fatalf("packet %T %+v", p, p)
		}
		// Each packet commits to the same record (the log's notation).
		if seq, _, err := audit.SignatureNotation(s); err != nil || seq == 0 {
			t.Errorf("packet %d: notation seq %d: %v", len(out)+1, seq, err)
		}
		out = append(out, fmt.Sprintf("%X", s.IssuerFingerprint))
	}
	return out
}

// TestTransitionSigners: before, during and after the period, through the
// requests' clock: who signs, what the .sig holds, what the record names,
// and that audit verify accepts each record.
func TestTransitionSigners(t *testing.T) {
	old, next := fingerprintOf(t, "ed25519"), fingerprintOf(t, "rsa3072")
	for _, c := range []struct {
		name         string
		from, until  time.Duration
		want         []string
		key, nextKey string
	}{
		{"before", time.Hour, 2 * time.Hour, []string{old}, old, ""},
		{"from", 0, time.Hour, []string{old, next}, old, next},
		{"during", -time.Hour, time.Hour, []string{old, next}, old, next},
		{"until", -time.Hour, 0, []string{next}, next, ""},
		{"after", -2 * time.Hour, -time.Hour, []string{next}, next, ""},
		{"switch", 0, 0, []string{next}, next, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, _ := transitionFixture(t, "ed25519", "rsa3072", c.from, c.until)
			r := f.check(f.rq.Sign(sign()), Signed, "")
			data := bytes.Repeat([]byte("signstar"), 128)
			if got := packets(t, f.stdout.Bytes(), data); strings.Join(got, " ") != strings.Join(c.want, " ") {
				t.Errorf("the .sig holds packets of %v, want %v", got, c.want)
			}
			if r.Key != c.key || r.NextKey != c.nextKey {
				t.Errorf("record key %q next_key %q, want %q %q", r.Key, r.NextKey, c.key, c.nextKey)
			}
			if sig, _ := base64.StdEncoding.DecodeString(r.Signature); !bytes.Equal(sig, f.stdout.Bytes()) {
				t.Errorf("the record's signature is not what was sent")
			}
			verifyLog(t, f.logPath)
		})
	}
}

func verifyLog(t *testing.T, path string) {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if _, err := audit.Verify(fh); err != nil {
		t.Fatalf("audit verify: %v", err)
	}
}

// TestTransitionVerifyRefusesMismatch: audit verify holds the record's
// keys to the packets of its signature.
func TestTransitionVerifyRefusesMismatch(t *testing.T) {
	f, _ := transitionFixture(t, "ed25519", "rsa3072", -time.Hour, time.Hour)
	f.check(f.rq.Sign(sign()), Signed, "")
	line, err := os.ReadFile(f.logPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, edit := range []func(*audit.Record){
		func(r *audit.Record) { r.NextKey = "" },
		func(r *audit.Record) { r.Key, r.NextKey = r.NextKey, r.Key },
	} {
		r := f.records()[0]
		edit(&r)
		r.Seq = 0
		l, err := audit.Open(filepath.Join(t.TempDir(), "audit.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Append(&r); err != nil {
			t.Fatal(err)
		}
		path := l.Path()
		l.Close()
		fh, _ := os.Open(path)
		if _, err := audit.Verify(fh); err == nil || !strings.Contains(err.Error(), "signature") {
			t.Errorf("verify of %s: %v, want a signature mismatch", line, err)
		}
		fh.Close()
	}
}

// TestTransitionBothBeforeRecord: when the next key cannot sign, nothing is
// signed and the failure is audited, though the old key had signed.
func TestTransitionBothBeforeRecord(t *testing.T) {
	f, nextPath := transitionFixture(t, "ed25519", "rsa3072", -time.Hour, time.Hour)
	f.rq.Open = func(p *config.Profile, now time.Time) (*backend.Key, error) {
		k, err := OpenBackend(p, now)
		if err == nil && p.Key == nextPath {
			k.Signer = &hookSigner{Signer: k.Signer, hook: func() error { return errors.New("the card is gone") }}
		}
		return k, err
	}
	r := f.check(f.rq.Sign(sign()), FailedSign, "next_key: profile repo: the card is gone")
	if r.Signature != "" || len(f.records()) != 1 {
		t.Errorf("records %+v", f.records())
	}
}

// TestTransitionNextKeyMissing: a next key that cannot be opened fails the
// request during the period, and not before it.
func TestTransitionNextKeyMissing(t *testing.T) {
	f, nextPath := transitionFixture(t, "ed25519", "rsa3072", -time.Hour, time.Hour)
	os.Remove(nextPath)
	f.check(f.rq.Sign(sign()), FailedBackend, "next_key: profile repo: stat "+nextPath)

	f, nextPath = transitionFixture(t, "ed25519", "rsa3072", time.Hour, 2*time.Hour)
	os.Remove(nextPath)
	f.check(f.rq.Sign(sign()), Signed, "")
}

// TestTransitionExpired: an expired key is refused as before, and the
// refusal tells the operator about the transition key, or how to set one.
func TestTransitionExpired(t *testing.T) {
	f, nextPath := transitionFixture(t, "expired", "ed25519", 24*time.Hour, 48*time.Hour)
	f.check(f.rq.Sign(sign()), FailedBackend, fmt.Sprintf("has expired: extend it (gpg --quick-set-expire) or make a new one; the profile's transition key next_key %s signs alone from old_key_until %s: set next_key_from and old_key_until = %q to sign with it alone now",
		nextPath, clock.Add(48*time.Hour).Format(time.RFC3339), clock.Format("2006-01-02")))

	f, _ = transitionFixture(t, "expired", "ed25519", -time.Hour, 48*time.Hour)
	f.check(f.rq.Sign(sign()), FailedBackend, "signs alone from old_key_until "+clock.Add(48*time.Hour).Format(time.RFC3339)+": set old_key_until = ")

	f = newFixture(t, "expired")
	f.check(f.rq.Sign(sign()), FailedBackend, "has expired: extend it (gpg --quick-set-expire) or make a new one; to hand over to a new key without a gap, name it in next_key with next_key_from and old_key_until")

	// After old_key_until the expired key is not opened at all.
	f, _ = transitionFixture(t, "expired", "ed25519", -2*time.Hour, -time.Hour)
	f.check(f.rq.Sign(sign()), Signed, "")
}

// TestTransitionSecondPacketVerifies: each packet verifies with its own
// key over the input (signer.Verify), and the pair is one .sig.
func TestTransitionSecondPacketVerifies(t *testing.T) {
	f, nextPath := transitionFixture(t, "p256", "rsa3072", -time.Hour, time.Hour)
	data := []byte("a package")
	f.input(data)
	f.check(f.rq.Sign(sign()), Signed, "")
	in, err := signer.Read(bytes.NewReader(data), crypto.SHA256, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	rd := bytes.NewReader(f.stdout.Bytes())
	for _, p := range []*config.Profile{&f.rq.Config.Profiles[0], f.rq.Config.Profiles[0].WithKey(nextPath)} {
		k, err := OpenBackend(p, clock)
		if err != nil {
			t.Fatal(err)
		}
		start := len(f.stdout.Bytes()) - rd.Len()
		if _, err := packet.Read(rd); err != nil {
			t.Fatal(err)
		}
		end := len(f.stdout.Bytes()) - rd.Len()
		if err := signer.Verify(f.stdout.Bytes()[start:end], in, k.Public); err != nil {
			t.Errorf("packet of %s: %v", p.Key, err)
		}
	}
}

// TestTransitionPubkey: pubkey serves key's certificate until
// old_key_until, and the next key's from then on: one certificate.
func TestTransitionPubkey(t *testing.T) {
	old, next := fingerprintOf(t, "ed25519"), fingerprintOf(t, "rsa3072")
	for _, c := range []struct {
		from, until time.Duration
		want        []string
	}{
		{time.Hour, 2 * time.Hour, []string{old}},
		{-time.Hour, time.Hour, []string{old}},
		{-2 * time.Hour, -time.Hour, []string{next}},
		{-time.Hour, -time.Hour, []string{next}},
	} {
		f, _ := transitionFixture(t, "ed25519", "rsa3072", c.from, c.until)
		res := f.rq.Pubkey(&command.Request{Name: command.Pubkey})
		f.check(res, Served, "")
		block, err := armor.Decode(bytes.NewReader(res.Output))
		if err != nil {
			t.Fatal(err)
		}
		el, err := openpgp.ReadKeyRing(block.Body)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range el {
			got = append(got, backend.Fingerprint(e.PrimaryKey))
			if e.PrivateKey != nil {
				t.Errorf("pubkey served a secret key")
			}
		}
		if strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("period %v..%v: pubkey serves %v, want %v", c.from, c.until, got, c.want)
		}
	}
}

// TestCheckBackendTransition: doctor's check opens the next key too, and
// finds an old key that would expire before old_key_until.
func TestCheckBackendTransition(t *testing.T) {
	f, nextPath := transitionFixture(t, "ed25519", "rsa3072", time.Hour, 48*time.Hour)
	p := &f.rq.Config.Profiles[0]
	if err := CheckBackend(p, clock); err != nil {
		t.Fatal(err)
	}
	os.Remove(nextPath)
	if err := CheckBackend(p, clock); err == nil || !strings.HasPrefix(err.Error(), "next_key: profile repo: ") {
		t.Fatalf("CheckBackend without the next key: %v", err)
	}

	// An old key that expires in a day, and old_key_until in two.
	cfg := &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Curve: packet.Curve25519, KeyLifetimeSecs: 24 * 3600,
		Time: func() time.Time { return clock.Add(-time.Hour) }}
	e, err := openpgp.NewEntity("Short", "", "short@example.org", cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.Subkeys = nil
	var buf bytes.Buffer
	if err := e.SerializePrivate(&buf, cfg); err != nil {
		t.Fatal(err)
	}
	f, _ = transitionFixture(t, "ed25519", "rsa3072", time.Hour, 48*time.Hour)
	p = &f.rq.Config.Profiles[0]
	if err := os.WriteFile(p.Key, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("expires at %s, before old_key_until %s", clock.Add(23*time.Hour).Format(time.RFC3339), clock.Add(48*time.Hour).Format(time.RFC3339))
	if err := CheckBackend(p, clock); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("CheckBackend: %v, want %q", err, want)
	}
}

// TestTransitionTar: sign --tar during a transition gives every member two
// packets, each record names both keys, and audit verify accepts the log.
func TestTransitionTar(t *testing.T) {
	old, next := fingerprintOf(t, "ed25519"), fingerprintOf(t, "rsa3072")
	f, _ := transitionFixture(t, "ed25519", "rsa3072", -time.Hour, time.Hour)
	fs := files(t, 2)
	f.input(archive(t, fs...))
	f.rq.Command = "sign --tar"
	if res := f.rq.Sign(sign("--tar")); res.Outcome != Signed {
		t.Fatalf("%+v", res)
	}
	_, sigs := signatures(t, f.stdout.Bytes())
	recs := f.records()
	if len(sigs) != 2 || len(recs) != 2 {
		t.Fatalf("%d signatures, %d records", len(sigs), len(recs))
	}
	for i, fl := range fs {
		if got := packets(t, sigs[i], fl.data); strings.Join(got, " ") != old+" "+next {
			t.Errorf("%s: packets of %v", fl.name, got)
		}
		if recs[i].Key != old || recs[i].NextKey != next {
			t.Errorf("record %d: key %q next_key %q", i, recs[i].Key, recs[i].NextKey)
		}
	}
	verifyLog(t, f.logPath)
}
