package sshenv

import (
	"bytes"
	//lint:ignore SA1019 x/crypto/ssh hands ssh-dss keys back as *dsa.PublicKey
	"crypto/dsa"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
	"testing"

	"golang.org/x/crypto/ssh"
)

// keySeeds are real key and certificate blobs of every type keyBlob knows,
// made with x/crypto/ssh (sk keys built by hand: they need a token).
func keySeeds(t testing.TB) [][]byte {
	var pubs []ssh.PublicKey
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	p, _ := ssh.NewPublicKey(edPub)
	pubs = append(pubs, p)
	for _, c := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		k, _ := ecdsa.GenerateKey(c, rand.Reader)
		p, _ := ssh.NewPublicKey(&k.PublicKey)
		pubs = append(pubs, p)
	}
	rk, _ := rsa.GenerateKey(rand.Reader, 1024)
	p, _ = ssh.NewPublicKey(&rk.PublicKey)
	pubs = append(pubs, p)
	str := func(b []byte, s []byte) []byte {
		return append(binary.BigEndian.AppendUint32(b, uint32(len(s))), s...)
	}
	var sk []byte
	sk = str(sk, []byte("sk-ssh-ed25519@openssh.com"))
	sk = str(sk, edPub)
	sk = str(sk, []byte("ssh:"))
	skp, err := ssh.ParsePublicKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	pubs = append(pubs, skp)

	ca, err := ssh.NewSignerFromKey(edPriv)
	if err != nil {
		t.Fatal(err)
	}
	var blobs [][]byte
	for _, p := range pubs {
		blobs = append(blobs, p.Marshal())
		c := &ssh.Certificate{Key: p, CertType: ssh.UserCert, KeyId: "id", ValidPrincipals: []string{"signer"}, ValidBefore: ssh.CertTimeInfinity}
		if err := c.SignCert(rand.Reader, ca); err != nil {
			t.Fatal(err)
		}
		blobs = append(blobs, c.Marshal())
	}
	return blobs
}

// checkAgainstXCrypto holds keyBlob to x/crypto/ssh: whatever x/crypto/ssh
// parses, keyBlob parses too, with the same type name and fingerprint (of
// the certified key for a certificate), unless the blob is not in its one
// encoding (a padded number), which x/crypto/ssh fingerprints as it
// re-encodes it and keyBlob refuses.
func checkAgainstXCrypto(t *testing.T, blob []byte) {
	name, key, ok := keyBlob(blob)
	want, err := ssh.ParsePublicKey(blob)
	if err != nil {
		return
	}
	if !ok {
		if !bytes.Equal(want.Marshal(), blob) || negativeNumber(want) {
			return
		}
		t.Fatalf("keyBlob refused a %s blob that x/crypto/ssh parses", want.Type())
	}
	if name != want.Type() {
		t.Fatalf("type %q, x/crypto/ssh says %q", name, want.Type())
	}
	if c, isCert := want.(*ssh.Certificate); isCert {
		want = c.Key
	}
	if got, w := fingerprintSHA256(key), ssh.FingerprintSHA256(want); got != w {
		t.Fatalf("%s: fingerprint %s, x/crypto/ssh says %s", name, got, w)
	}
}

func TestKeyBlobTypes(t *testing.T) {
	seeds := keySeeds(t)
	if len(seeds) != 12 {
		t.Fatalf("%d seeds", len(seeds))
	}
	for _, b := range seeds {
		if _, _, ok := keyBlob(b); !ok {
			t.Errorf("keyBlob refused %q", b[4:40])
		}
		checkAgainstXCrypto(t, b)
		// Every proper prefix and one trailing byte are malformed.
		for i := range b {
			if _, _, ok := keyBlob(b[:i]); ok {
				t.Fatalf("keyBlob accepted a %d-byte prefix of a %d-byte blob", i, len(b))
			}
		}
		if _, _, ok := keyBlob(append(b[:len(b):len(b)], 0)); ok {
			t.Errorf("keyBlob accepted a trailing byte")
		}
	}
}

// negativeNumber reports whether an RSA or DSA key parsed by x/crypto/ssh
// has a negative number, which x/crypto/ssh accepts and keyBlob refuses.
func negativeNumber(k ssh.PublicKey) bool {
	if c, ok := k.(*ssh.Certificate); ok {
		k = c.Key
	}
	ck, ok := k.(ssh.CryptoPublicKey)
	if !ok {
		return false
	}
	switch p := ck.CryptoPublicKey().(type) {
	case *rsa.PublicKey:
		return p.N.Sign() < 0 || p.E < 0
	case *dsa.PublicKey:
		return p.P.Sign() < 0 || p.Q.Sign() < 0 || p.G.Sign() < 0 || p.Y.Sign() < 0
	}
	return false
}

// TestKeyBlobPadded: an RSA exponent with a needless zero byte (found by
// FuzzKeyBlob: x/crypto/ssh fingerprints it as re-encoded) is refused.
func TestKeyBlobPadded(t *testing.T) {
	blob := []byte("\x00\x00\x00\x07ssh-rsa\x00\x00\x00\x02\x00\x01\x00\x00\x00\x02\x00\x81")
	if _, _, ok := keyBlob(blob); ok {
		t.Error("keyBlob accepted e = 00 01")
	}
	canon := []byte("\x00\x00\x00\x07ssh-rsa\x00\x00\x00\x01\x01\x00\x00\x00\x02\x00\x81")
	if _, _, ok := keyBlob(canon); !ok {
		t.Error("keyBlob refused e = 01, n = 00 81")
	}
	for _, m := range []string{"", "\x01", "\x00\x80", "\x7f\xff"} {
		if !canonicalMpint([]byte(m)) {
			t.Errorf("canonicalMpint(%q) = false", m)
		}
	}
	for _, m := range []string{"\x00", "\x00\x01", "\x80", "\xff\x01"} {
		if canonicalMpint([]byte(m)) {
			t.Errorf("canonicalMpint(%q) = true", m)
		}
	}
}

func FuzzKeyBlob(f *testing.F) {
	for _, b := range keySeeds(f) {
		f.Add(b)
	}
	f.Fuzz(checkAgainstXCrypto)
}
