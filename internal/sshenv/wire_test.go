package sshenv

import (
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
// the certified key for a certificate).
func checkAgainstXCrypto(t *testing.T, blob []byte) {
	name, key, ok := keyBlob(blob)
	want, err := ssh.ParsePublicKey(blob)
	if err != nil {
		return
	}
	if !ok {
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

func FuzzKeyBlob(f *testing.F) {
	for _, b := range keySeeds(f) {
		f.Add(b)
	}
	f.Fuzz(checkAgainstXCrypto)
}
