package backend

import (
	"crypto"
	"fmt"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// CheckHash refuses a hash too short for the key: GnuPG (and with it
// pacman) rejects an ECDSA signature whose hash is shorter than the curve's
// order, such as P-384 with SHA-256, although go-crypto accepts it. The
// rule is GnuPG's (g10/seskey.c encode_md_value, agent/pksign.c): the hash
// has at least as many bits as the curve, but at most 512 are asked, since
// no hash is longer: P-256 takes SHA-256, P-384 and P-521 need SHA-512 of
// the two hashes signstar offers.
func CheckHash(pub *packet.PublicKey, h crypto.Hash) error {
	if pub.PubKeyAlgo != packet.PubKeyAlgoECDSA {
		return nil
	}
	c, err := pub.Curve()
	if err != nil {
		return err
	}
	var name string
	var bits int
	switch c {
	case packet.CurveNistP256:
		name, bits = "P-256", 256
	case packet.CurveNistP384:
		name, bits = "P-384", 384
	case packet.CurveNistP521:
		name, bits = "P-521", 512
	default:
		return fmt.Errorf("ECDSA curve %s is not supported", c)
	}
	if h.Size()*8 < bits {
		return fmt.Errorf("an ECDSA %s key needs a hash of at least %d bits, which gpgv and pacman require: set hash = \"sha512\" in the profile", name, bits)
	}
	return nil
}

// HashFor is the hash signstar picks itself for pub (a self-certification
// made at setup): SHA-256, unless CheckHash asks for a longer one.
func HashFor(pub *packet.PublicKey) crypto.Hash {
	if CheckHash(pub, crypto.SHA256) != nil {
		return crypto.SHA512
	}
	return crypto.SHA256
}
