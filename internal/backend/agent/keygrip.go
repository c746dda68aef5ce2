package agent

import (
	"bytes"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strconv"

	pgpecdsa "github.com/ProtonMail/go-crypto/openpgp/ecdsa"
	"github.com/ProtonMail/go-crypto/openpgp/eddsa"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// Keygrip is libgcrypt's identifier of a public key (gcry_pk_get_keygrip),
// which gpg-agent uses to name the secret keys it holds.
type Keygrip [20]byte

// String is the upper-case hex form gpg prints and the agent accepts.
func (g Keygrip) String() string {
	var b [40]byte
	hex.Encode(b[:], g[:])
	return string(bytes.ToUpper(b[:]))
}

// KeygripOf computes the keygrip of an OpenPGP public key the way GnuPG does:
// gpg turns the key into a gcrypt S-expression and libgcrypt hashes it.
//   - RSA: SHA-1 of n as a signed big-endian integer (a 0x00 byte in front
//     when its top bit is set, which it always is for a full-size modulus).
//   - ECC: SHA-1 over "(1:p<len>:P)(1:a..)(1:b..)(1:g..)(1:n..)(1:q..)", the
//     curve's domain parameters as libgcrypt stores them followed by the
//     public point; the cofactor h is skipped. For EdDSA, q is the compact
//     32-byte point, without OpenPGP's 0x40 prefix.
func KeygripOf(pk *packet.PublicKey) (Keygrip, error) {
	switch k := pk.PublicKey.(type) {
	case *rsa.PublicKey:
		n := k.N.Bytes()
		if len(n) == 0 {
			return Keygrip{}, errors.New("RSA key with an empty modulus")
		}
		if n[0]&0x80 != 0 {
			n = append([]byte{0}, n...)
		}
		return sha1.Sum(n), nil
	case *pgpecdsa.PublicKey:
		c, err := pk.Curve()
		if err != nil {
			return Keygrip{}, err
		}
		var params *elliptic.CurveParams
		switch c {
		case packet.CurveNistP256:
			params = elliptic.P256().Params()
		case packet.CurveNistP384:
			params = elliptic.P384().Params()
		case packet.CurveNistP521:
			params = elliptic.P521().Params()
		default:
			return Keygrip{}, fmt.Errorf("no keygrip for ECDSA curve %s", c)
		}
		size := (params.BitSize + 7) / 8
		a := new(big.Int).Sub(params.P, big.NewInt(3))
		g := uncompressed(params.Gx, params.Gy, size)
		q := k.MarshalPoint()
		return eccGrip(params.P.Bytes(), a.Bytes(), params.B.Bytes(), g, params.N.Bytes(), q), nil
	case *eddsa.PublicKey:
		c, err := pk.Curve()
		if err != nil || c != packet.Curve25519 {
			return Keygrip{}, errors.New("no keygrip for EdDSA on a curve other than Ed25519")
		}
		if len(k.X) != 32 {
			return Keygrip{}, fmt.Errorf("Ed25519 public key of %d bytes", len(k.X))
		}
		return eccGrip(ed25519P, ed25519A, ed25519B, ed25519G, ed25519N, k.X), nil
	}
	return Keygrip{}, fmt.Errorf("no keygrip for public-key algorithm %d", pk.PubKeyAlgo)
}

// eccGrip hashes libgcrypt's ECC keygrip input. Every value goes in as its
// unsigned big-endian bytes, as _gcry_mpi_get_buffer gives them (no leading
// zeros); q goes in as given, as an opaque point.
func eccGrip(p, a, b, g, n, q []byte) Keygrip {
	h := sha1.New()
	for _, e := range []struct {
		name string
		v    []byte
	}{{"p", p}, {"a", a}, {"b", b}, {"g", g}, {"n", n}, {"q", q}} {
		h.Write([]byte("(1:" + e.name + strconv.Itoa(len(e.v)) + ":"))
		h.Write(e.v)
		h.Write([]byte(")"))
	}
	var out Keygrip
	h.Sum(out[:0])
	return out
}

func uncompressed(x, y *big.Int, size int) []byte {
	out := make([]byte, 1+2*size)
	out[0] = 4
	x.FillBytes(out[1 : 1+size])
	y.FillBytes(out[1+size:])
	return out
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// Ed25519 as libgcrypt's curve table defines it (ecc-curves.c). a = -1 and
// d are stored there as negative numbers; _gcry_mpi_get_buffer writes their
// magnitude, so that is what the keygrip hashes.
var (
	ed25519P = mustHex("7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFED")
	ed25519A = mustHex("01")
	ed25519B = mustHex("2DFC9311D490018C7338BF8688861767FF8FF5B2BEBE27548A14B235ECA6874A")
	ed25519N = mustHex("1000000000000000000000000000000014DEF9DEA2F79CD65812631A5CF5D3ED")
	ed25519G = mustHex("04" +
		"216936D3CD6E53FEC0A4E231FDD6DC5C692CC7609525A7B2C9562D608F25D51A" +
		"6666666666666666666666666666666666666666666666666666666666666658")
)
