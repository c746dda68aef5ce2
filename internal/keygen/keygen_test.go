package keygen

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/signstar/signstar/internal/backend"
	"github.com/signstar/signstar/internal/testsupport/gnupgtest"
	"github.com/signstar/signstar/internal/testsupport/testenv"
)

var now = time.Now().UTC().Truncate(time.Second)

// TestTransitionKey: the new key's revocation certificate revokes it for
// GnuPG and for signstar, and the old key's certification of it is one that
// gpg --check-sigs verifies.
func TestTransitionKey(t *testing.T) {
	testenv.NeedTool(t, "gpg", "gpg")
	dir := t.TempDir()
	old, err := Generate(Options{UID: "Old Signer <old@example.org>", Algo: "ed25519", Out: filepath.Join(dir, "old.key"), Now: now.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if old.Revocation != filepath.Join(dir, "old.key.rev") || old.CertifiedBy != "" {
		t.Errorf("%+v", old)
	}
	next, err := Generate(Options{UID: "New Signer <new@example.org>", Algo: "rsa3072", Out: filepath.Join(dir, "new.key"),
		Revocation: filepath.Join(dir, "offline.rev"), CertifyWith: filepath.Join(dir, "old.key"), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	oldCert, err := backend.ParseEntity(old.Public)
	if err != nil {
		t.Fatal(err)
	}
	newCert, err := backend.ParseEntity(next.Public)
	if err != nil {
		t.Fatal(err)
	}
	oldFP, newFP := backend.Fingerprint(oldCert.PrimaryKey), backend.Fingerprint(newCert.PrimaryKey)
	if next.CertifiedBy != oldFP {
		t.Errorf("certified by %q, want %s", next.CertifiedBy, oldFP)
	}
	for _, p := range []string{"new.key", "offline.rev", "old.key", "old.key.rev"} {
		fi, err := os.Stat(filepath.Join(dir, p))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", p, err, fi)
		}
	}
	// The secret key file and the certificate carry no revocation.
	if newCert.Revoked(now) || len(newCert.Revocations) != 0 {
		t.Fatal("the new certificate is revoked")
	}

	h, err := gnupgtest.NewHome()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := h.GPG(append(bytes.Clone(old.Public), next.Public...), time.Time{}, "--import"); err != nil {
		t.Fatal(err)
	}
	// gpg --check-sigs: "sig!" is a verified signature, followed by the
	// issuer's key ID; the old key's is among the new key's.
	out, err := h.GPG(nil, time.Time{}, "--with-colons", "--check-sigs", newFP)
	if err != nil {
		t.Fatal(err)
	}
	oldID := oldFP[len(oldFP)-16:]
	var certified bool
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Split(l, ":")
		if len(f) > 10 && f[0] == "sig" && f[1] == "!" && f[4] == oldID && f[10] == "10x" {
			certified = true
		}
	}
	if !certified {
		t.Fatalf("gpg --check-sigs shows no verified 0x10 certification by %s:\n%s", oldID, out)
	}

	// The revocation certificate: gpg imports it onto the key, and revokes.
	rev, err := os.ReadFile(next.Revocation)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.GPG(rev, time.Time{}, "--import"); err != nil {
		t.Fatal(err)
	}
	out, err = h.GPG(nil, time.Time{}, "--with-colons", "--list-keys", newFP)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), "tru:") && !strings.Contains(string(out), "\npub:r:") && !strings.HasPrefix(string(out), "pub:r:") {
		t.Fatalf("after importing the revocation certificate gpg lists:\n%s", out)
	}
	// signstar refuses the certificate with the revocation appended.
	revoked, err := h.GPG(nil, time.Time{}, "--armor", "--export", newFP)
	if err != nil {
		t.Fatal(err)
	}
	e, err := backend.ParseEntity(revoked)
	if err != nil {
		t.Fatal(err)
	}
	var ke *backend.KeyError
	if _, err := backend.SigningKeys(e, now); !errors.As(err, &ke) || !strings.Contains(err.Error(), "is revoked") {
		t.Fatalf("SigningKeys of the revoked certificate: %v", err)
	}
	// The signature is the new key's own, of type 0x20.
	if p, err := packet.Read(dearmored(t, rev)); err != nil {
		t.Fatal(err)
	} else if s, ok := p.(*packet.Signature); !ok || s.SigType != packet.SigTypeKeyRevocation || fmt.Sprintf("%X", s.IssuerFingerprint) != newFP {
		t.Fatalf("revocation packet %+v", p)
	}
}

func TestGenerateRefusals(t *testing.T) {
	dir := t.TempDir()
	key, pub := filepath.Join(dir, "k"), filepath.Join(dir, "k.pub")
	g, err := Generate(Options{UID: "A <a@example.org>", Algo: "ed25519", Out: key, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, g.Public, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{Out: filepath.Join(dir, "x"), Revocation: key + ".rev"}, "k.rev exists: refusing to overwrite"},
		{Options{Out: filepath.Join(dir, "y"), Revocation: filepath.Join(dir, "y")}, "--revocation must not be --out"},
		{Options{Out: filepath.Join(dir, "z"), CertifyWith: filepath.Join(dir, "missing")}, "no such file"},
		{Options{Out: filepath.Join(dir, "w"), CertifyWith: key + ".rev"}, "not an OpenPGP key"},
		{Options{Out: filepath.Join(dir, "v"), CertifyWith: pub}, "holds no secret key that may certify"},
	} {
		c.o.UID, c.o.Algo, c.o.Now = "B <b@example.org>", "ed25519", now
		_, err := Generate(c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.o, err, c.want)
		}
		if _, serr := os.Stat(c.o.Out); serr == nil {
			t.Errorf("%+v: %s was written", c.o, c.o.Out)
		}
	}
}

func dearmored(t *testing.T, b []byte) io.Reader {
	t.Helper()
	block, err := armor.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return block.Body
}
