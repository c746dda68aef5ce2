package signer

import (
	"bytes"
	"crypto"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/signstar/signstar/internal/backend"
	"github.com/signstar/signstar/internal/backend/keyfile"
)

var t0 = time.Date(2027, 1, 2, 12, 0, 0, 0, time.UTC)

// testKeys opens the GnuPG-made test keys through the key file backend.
func testKeys(t testing.TB) map[string]*backend.Key {
	keys := map[string]*backend.Key{}
	dir := t.TempDir()
	for _, name := range []string{"rsa3072", "p256", "p384", "ed25519"} {
		data, err := os.ReadFile("../../testdata/keys/" + name + ".key")
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		os.WriteFile(p, data, 0o600)
		k, err := keyfile.Open(keyfile.Options{Key: p}, t0)
		if err != nil {
			t.Fatal(err)
		}
		keys[name] = k
	}
	return keys
}

// TestPacketShape checks, byte by byte, what pacman and gpgv rely on.
func TestPacketShape(t *testing.T) {
	for name, key := range testKeys(t) {
		for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA512} {
			if name == "p384" && h == crypto.SHA256 {
				continue // refused, see TestP384NeedsSHA512
			}
			in, err := Read(strings.NewReader("artifact"), h, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := Sign(in, key, t0)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			// Old-format tag 2, definite length.
			if sig[0] != 0x88 && sig[0] != 0x89 {
				t.Fatalf("%s: header 0x%02x", name, sig[0])
			}
			body := sig[2:]
			if sig[0] == 0x89 {
				body = sig[3:]
			}
			if body[0] != 4 || body[1] != 0x00 {
				t.Fatalf("%s: version %d type %d", name, body[0], body[1])
			}
			wantAlgo := map[string]byte{"rsa3072": 1, "p256": 19, "p384": 19, "ed25519": 22}[name]
			if body[2] != wantAlgo {
				t.Fatalf("%s: algorithm %d, want %d", name, body[2], wantAlgo)
			}
			hl := int(binary.BigEndian.Uint16(body[4:6]))
			hashed := body[6 : 6+hl]
			ul := int(binary.BigEndian.Uint16(body[6+hl : 8+hl]))
			unhashed := body[8+hl : 8+hl+ul]
			types := func(b []byte) (out []byte) {
				for len(b) > 0 {
					n := int(b[0])
					if b[1]&0x80 != 0 {
						t.Fatalf("%s: critical subpacket %d", name, b[1]&0x7f)
					}
					out = append(out, b[1])
					b = b[1+n:]
				}
				return
			}
			if got := types(hashed); !bytes.Equal(got, []byte{2, 33}) {
				t.Errorf("%s: hashed subpackets %v, want creation time and issuer fingerprint", name, got)
			}
			if got := types(unhashed); !bytes.Equal(got, []byte{16}) {
				t.Errorf("%s: unhashed subpackets %v, want issuer key ID", name, got)
			}
			if !bytes.Equal(unhashed[2:10], binary.BigEndian.AppendUint64(nil, key.Public.KeyId)) {
				t.Errorf("%s: issuer key ID does not match", name)
			}
			// go-crypto parses and verifies it.
			p, err := packet.Read(bytes.NewReader(sig))
			if err != nil {
				t.Fatal(err)
			}
			s := p.(*packet.Signature)
			if s.Version != 4 || s.SigType != packet.SigTypeBinary || !s.CreationTime.Equal(t0) || s.Hash != h {
				t.Errorf("%s: parsed %+v", name, s)
			}
			if err := Verify(sig, in, key.Public); err != nil {
				t.Errorf("%s: %v", name, err)
			}
			other, _ := Read(strings.NewReader("artifacT"), h, 0, nil)
			if Verify(sig, other, key.Public) == nil {
				t.Errorf("%s: verified over other data", name)
			}
		}
	}
}

// A backend that returns a wrong signature is caught before anything leaves.
type badSigner struct{ crypto.Signer }

func (b badSigner) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	s, err := b.Signer.Sign(r, d, o)
	s[len(s)-1] ^= 1
	return s, err
}

func TestSignCatchesBadBackend(t *testing.T) {
	k := testKeys(t)["ed25519"]
	k.Signer = badSigner{k.Signer}
	in, _ := Read(strings.NewReader("x"), crypto.SHA256, 0, nil)
	if _, err := Sign(in, k, t0); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("Sign = %v", err)
	}
}

func TestReadLimit(t *testing.T) {
	data := strings.Repeat("a", 1000)
	if in, err := Read(strings.NewReader(data), crypto.SHA256, 1000, nil); err != nil || in.Size != 1000 {
		t.Fatalf("exactly the limit: %v", err)
	}
	_, err := Read(strings.NewReader(data+"b"), crypto.SHA256, 1000, nil)
	if !IsTooLarge(err) {
		t.Fatalf("one byte more: %v", err)
	}
}

func TestDigestIsRawInput(t *testing.T) {
	in, _ := Read(strings.NewReader("abc"), crypto.SHA256, 0, nil)
	if in.DigestString() != "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatal(in.DigestString())
	}
	// Signing must not disturb the raw digest.
	Sign(in, testKeys(t)["ed25519"], t0)
	if in.DigestString() != "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatal("digest changed by signing")
	}
}

func TestP384NeedsSHA512(t *testing.T) {
	k := testKeys(t)["p384"]
	in, _ := Read(strings.NewReader("x"), crypto.SHA256, 0, nil)
	if _, err := Sign(in, k, t0); err == nil || !strings.Contains(err.Error(), `hash = "sha512"`) {
		t.Fatalf("P-384 with SHA-256: %v", err)
	}
}

// TestCheckHashRule: GnuPG's rule, a hash at least as long as the curve
// but never more than 512 bits asked: P-521 signs with SHA-512.
func TestCheckHashRule(t *testing.T) {
	for _, tc := range []struct {
		curve packet.Curve
		hash  crypto.Hash
		ok    bool
	}{
		{packet.CurveNistP256, crypto.SHA256, true},
		{packet.CurveNistP256, crypto.SHA512, true},
		{packet.CurveNistP384, crypto.SHA256, false},
		{packet.CurveNistP384, crypto.SHA512, true},
		{packet.CurveNistP521, crypto.SHA256, false},
		{packet.CurveNistP521, crypto.SHA512, true},
	} {
		e, err := openpgp.NewEntity("c", "", "c@test", &packet.Config{Algorithm: packet.PubKeyAlgoECDSA, Curve: tc.curve})
		if err != nil {
			t.Fatal(err)
		}
		err = backend.CheckHash(e.PrimaryKey, tc.hash)
		if (err == nil) != tc.ok {
			t.Errorf("%s with %v: %v", tc.curve, tc.hash, err)
		}
		if err != nil && !strings.Contains(err.Error(), `set hash = "sha512"`) {
			t.Errorf("%s with %v: %v, without the fix", tc.curve, tc.hash, err)
		}
		if h := backend.HashFor(e.PrimaryKey); (h == crypto.SHA256) != (tc.curve == packet.CurveNistP256) {
			t.Errorf("%s: HashFor gives %v", tc.curve, h)
		}
		if !tc.ok {
			continue
		}
		signer, err := keyfile.Signer(e.PrivateKey)
		if err != nil {
			t.Fatal(err)
		}
		key := &backend.Key{Cert: e, Public: e.PrimaryKey, Signer: signer}
		in, _ := Read(strings.NewReader("artifact"), tc.hash, 0, nil)
		sig, err := Sign(in, key, t0)
		if err != nil {
			t.Fatalf("%s with %v: %v", tc.curve, tc.hash, err)
		}
		if err := Verify(sig, in, e.PrimaryKey); err != nil {
			t.Fatalf("%s with %v: go-crypto rejects it: %v", tc.curve, tc.hash, err)
		}
	}
}

// TestNotations: a notation lands in the hashed area as go-crypto reads it
// (name, value, human-readable flag unless Binary, not critical), and the
// signature still verifies; one past a one-octet subpacket is refused.
func TestNotations(t *testing.T) {
	key := testKeys(t)["ed25519"]
	notes := []Notation{
		{Name: "data-digest@archlinux.org", Value: strings.Repeat("\x07", 64), Binary: true},
		{Name: "text@example.org", Value: "hello"},
	}
	in, err := Read(strings.NewReader("artifact"), crypto.SHA512, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := Sign(in, key, t0, notes...)
	if err != nil {
		t.Fatal(err)
	}
	p, err := packet.Read(bytes.NewReader(sig))
	if err != nil {
		t.Fatal(err)
	}
	s := p.(*packet.Signature)
	if len(s.Notations) != len(notes) {
		t.Fatalf("%d notations, want %d", len(s.Notations), len(notes))
	}
	for i, n := range s.Notations {
		w := notes[i]
		if n.Name != w.Name || string(n.Value) != w.Value || n.IsHumanReadable == w.Binary || n.IsCritical {
			t.Errorf("notation %d = %+v, want %+v", i, n, w)
		}
	}
	if err := Verify(sig, in, key.Public); err != nil {
		t.Fatal(err)
	}
	if _, err := Sign(in, key, t0, Notation{Name: "huge@example.org", Value: strings.Repeat("x", 200)}); err == nil {
		t.Fatal("a notation past the one-octet length was signed")
	}
}

// TestResumed: an Input resumed from a state that hashed part of the bytes
// signs as Read's over all of them would.
func TestResumed(t *testing.T) {
	key := testKeys(t)["ed25519"]
	data := []byte(strings.Repeat("resumable state ", 20))
	st := crypto.SHA512.New()
	st.Write(data)
	in, err := Resumed(crypto.SHA512, st, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := Sign(in, key, t0)
	if err != nil {
		t.Fatal(err)
	}
	whole, _ := Read(bytes.NewReader(data), crypto.SHA512, 0, nil)
	if err := Verify(sig, whole, key.Public); err != nil {
		t.Fatal(err)
	}
	if in.DigestString() != whole.DigestString() {
		t.Fatalf("digest %s, want %s", in.DigestString(), whole.DigestString())
	}
	if _, err := Resumed(crypto.SHA256, crypto.SHA512.New(), 0); err == nil {
		t.Fatal("a SHA-512 state was taken for SHA-256")
	}
}
