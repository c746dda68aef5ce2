package signer

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/signstar/signstar/internal/backend"
)

// Rand is the randomness given to signers (ECDSA nonces); tests may replace it.
var Rand io.Reader = rand.Reader

// OpenPGP hash algorithm identifiers (RFC 4880, 9.4).
var hashID = map[crypto.Hash]byte{crypto.SHA256: 8, crypto.SHA512: 10}

// Sign makes a detached signature over in with key, created at t. The
// packet is built here rather than by go-crypto so that it works with any
// crypto.Signer (agent, card) and has exactly the shape pacman reads: v4,
// type 0x00, old-format definite length, hashed creation time and issuer
// fingerprint, and the issuer key ID in the unhashed area, as GnuPG writes it.
// The result is verified against the public key before it is returned, so a
// faulty card or agent cannot hand out a bad signature.
func Sign(in *Input, key *backend.Key, t time.Time) ([]byte, error) {
	pub := key.Public
	if pub.Version != 4 {
		return nil, fmt.Errorf("signing key is v%d; only v4 is supported", pub.Version)
	}
	hid, ok := hashID[in.Hash]
	if !ok {
		return nil, fmt.Errorf("unsupported hash %v", in.Hash)
	}
	if err := CheckHash(pub, in.Hash); err != nil {
		return nil, err
	}
	algo := pub.PubKeyAlgo
	if algo == packet.PubKeyAlgoRSASignOnly {
		algo = packet.PubKeyAlgoRSA
	}

	var hashed bytes.Buffer
	hashed.Write([]byte{4, byte(packet.SigTypeBinary), byte(algo), hid, 0, 0})
	var created [4]byte
	binary.BigEndian.PutUint32(created[:], uint32(t.Unix()))
	subpacket(&hashed, 2, created[:])
	subpacket(&hashed, 33, append([]byte{4}, pub.Fingerprint...))
	h := hashed.Bytes()
	binary.BigEndian.PutUint16(h[4:6], uint16(len(h)-6))

	state := in.clone()
	state.Write(h)
	var trailer [6]byte
	trailer[0], trailer[1] = 4, 0xff
	binary.BigEndian.PutUint32(trailer[2:], uint32(len(h)))
	state.Write(trailer[:])
	digest := state.Sum(nil)

	mpis, err := rawSign(key, algo, digest, in.Hash)
	if err != nil {
		return nil, err
	}

	var body bytes.Buffer
	body.Write(h)
	var unhashed bytes.Buffer
	var kid [8]byte
	binary.BigEndian.PutUint64(kid[:], pub.KeyId)
	subpacket(&unhashed, 16, kid[:])
	body.Write([]byte{0, byte(unhashed.Len())})
	body.Write(unhashed.Bytes())
	body.Write(digest[:2])
	for _, m := range mpis {
		writeMPI(&body, m)
	}

	out := make([]byte, 0, body.Len()+3)
	if body.Len() < 256 {
		out = append(out, 0x88, byte(body.Len()))
	} else {
		out = append(out, 0x89, byte(body.Len()>>8), byte(body.Len()))
	}
	out = append(out, body.Bytes()...)

	if err := Verify(out, in, pub); err != nil {
		return nil, fmt.Errorf("the backend returned a signature that does not verify: %v", err)
	}
	return out, nil
}

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

func subpacket(w *bytes.Buffer, typ byte, data []byte) {
	w.WriteByte(byte(len(data) + 1)) // all ours are < 192 bytes
	w.WriteByte(typ)
	w.Write(data)
}

func writeMPI(w *bytes.Buffer, b []byte) {
	b = bytes.TrimLeft(b, "\x00")
	bits := 0
	if len(b) > 0 {
		bits = (len(b)-1)*8 + bitLen(b[0])
	}
	w.Write([]byte{byte(bits >> 8), byte(bits)})
	w.Write(b)
}

func bitLen(b byte) int {
	n := 0
	for ; b != 0; b >>= 1 {
		n++
	}
	return n
}

// rawSign asks the backend for the signature and returns its MPIs.
func rawSign(key *backend.Key, algo packet.PublicKeyAlgorithm, digest []byte, h crypto.Hash) ([][]byte, error) {
	switch algo {
	case packet.PubKeyAlgoRSA:
		sig, err := key.Signer.Sign(Rand, digest, h)
		if err != nil {
			return nil, err
		}
		return [][]byte{sig}, nil
	case packet.PubKeyAlgoECDSA:
		der, err := key.Signer.Sign(Rand, digest, h)
		if err != nil {
			return nil, err
		}
		r, s, err := parseECDSA(der)
		if err != nil {
			return nil, err
		}
		return [][]byte{r.Bytes(), s.Bytes()}, nil
	case packet.PubKeyAlgoEdDSA:
		sig, err := key.Signer.Sign(Rand, digest, crypto.Hash(0))
		if err != nil {
			return nil, err
		}
		if len(sig) != 64 {
			return nil, fmt.Errorf("Ed25519 signature of %d bytes, want 64", len(sig))
		}
		return [][]byte{sig[:32], sig[32:]}, nil
	}
	return nil, fmt.Errorf("public-key algorithm %d is not supported", algo)
}

func parseECDSA(der []byte) (r, s *big.Int, err error) {
	var v struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &v)
	if err != nil || len(rest) != 0 || v.R == nil || v.S == nil || v.R.Sign() <= 0 || v.S.Sign() <= 0 {
		return nil, nil, errors.New("malformed ECDSA signature from the backend")
	}
	return v.R, v.S, nil
}

// Verify checks a signature packet made by Sign over in against pub with
// go-crypto, an independent implementation of the same checks gpgv makes.
func Verify(sigPacket []byte, in *Input, pub *packet.PublicKey) error {
	p, err := packet.Read(bytes.NewReader(sigPacket))
	if err != nil {
		return err
	}
	sig, ok := p.(*packet.Signature)
	if !ok {
		return errors.New("not a signature packet")
	}
	return pub.VerifySignature(in.clone(), sig)
}
