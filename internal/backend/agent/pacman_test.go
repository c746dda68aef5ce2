package agent

import (
	"bytes"
	"crypto"
	"os"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/signstar/signstar/internal/backend"
	"github.com/signstar/signstar/internal/signer"
	"github.com/signstar/signstar/internal/testsupport/pacmantest"
)

// TestPacmanAcceptsAgentSignatures signs a package and its repository
// database through a real gpg-agent and has pacman sync and install them
// with SigLevel = Required TrustedOnly; a changed database or package is
// refused.
func TestPacmanAcceptsAgentSignatures(t *testing.T) {
	pacmantest.NeedTools(t)
	g := startAgent(t)

	ed := newKey(t, "pacman-ed", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Curve: packet.Curve25519})
	if err := ed.EncryptPrivateKeys(testPass, nil); err != nil {
		t.Fatal(err)
	}
	g.importSecret(ed)

	rsaKey := newKey(t, "pacman-rsa", &packet.Config{Algorithm: packet.PubKeyAlgoRSA, RSABits: 2048})
	g.importSecret(rsaKey)

	// Only the signing subkey is in the agent, so the signature's issuer
	// is a subkey: pacman must find it through the certificate.
	sub := newKey(t, "pacman-sub", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Curve: packet.Curve25519})
	if err := sub.AddSigningSubkey(&packet.Config{Algorithm: packet.PubKeyAlgoECDSA, Curve: packet.CurveNistP256}); err != nil {
		t.Fatal(err)
	}
	g.importSecret(sub)
	if err := os.Remove(g.keyFile(sub.PrimaryKey)); err != nil {
		t.Fatal(err)
	}
	signingSub := sub.Subkeys[len(sub.Subkeys)-1].PublicKey

	passFile := writePass(t, testPass)
	for _, tc := range []struct {
		name string
		e    *openpgp.Entity
		pass string
		want *packet.PublicKey
	}{
		{"ed25519-passphrase", ed, passFile, ed.PrimaryKey},
		{"rsa2048", rsaKey, "", rsaKey.PrimaryKey},
		{"ecdsa-p256-subkey", sub, "", signingSub},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := open(t, writeCert(t, tc.e), g.socket, tc.pass)
			if !bytes.Equal(key.Public.Fingerprint, tc.want.Fingerprint) {
				t.Fatalf("signing key %s, want %s", backend.Fingerprint(key.Public), backend.Fingerprint(tc.want))
			}
			o := pacmantest.Prepare(t, pacmantest.Hello, func(data []byte) ([]byte, error) {
				in, err := signer.Read(bytes.NewReader(data), crypto.SHA256, 0, nil)
				if err != nil {
					return nil, err
				}
				return signer.Sign(in, key, time.Now())
			})
			cert, err := backend.ArmoredCert(tc.e)
			if err != nil {
				t.Fatal(err)
			}
			o.Certs = [][]byte{cert}
			env := pacmantest.Install(t, o)
			env.RefuseTampered(t)
		})
	}
}
