package signer

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/big"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/signstar/signstar/internal/backend"
	"github.com/signstar/signstar/internal/digest"
)

// Rand is the randomness given to signers (ECDSA nonces); tests may replace it.
var Rand io.Reader = rand.Reader

// Sign makes a detached signature over in with key, created at t. The
// packet is built here rather than by go-crypto so that it works with any
// crypto.Signer (agent, card) and has exactly the shape pacman reads: v4,
// type 0x00, old-format definite length, hashed creation time and issuer
// fingerprint, and the issuer key ID in the unhashed area, as GnuPG writes it.
// Each of notes is a notation data subpacket (20) in the hashed area, after
// the creation time: not critical, so that a verifier that does not know it
// ignores it. The result is verified against the public key before it is
// returned, so a faulty card or agent cannot hand out a bad signature.
func Sign(in *Input, key *backend.Key, t time.Time, notes ...Notation) ([]byte, error) {
	pub := key.Public
	if err := backend.CheckHash(pub, in.Hash); err != nil {
		return nil, err
	}
	var created [4]byte
	binary.BigEndian.PutUint32(created[:], uint32(t.Unix()))
	var sub bytes.Buffer
	subpacket(&sub, 2, created[:])
	for _, n := range notes {
		d, err := n.data()
		if err != nil {
			return nil, err
		}
		subpacket(&sub, 20, d)
	}
	subpacket(&sub, 33, append([]byte{4}, pub.Fingerprint...))
	out, err := signature(pub, packet.SigTypeBinary, in.Hash, in.clone(), sub.Bytes(), key.Signer)
	if err != nil {
		return nil, err
	}
	if err := Verify(out, in, pub); err != nil {
		return nil, fmt.Errorf("the backend returned a signature that does not verify: %v", err)
	}
	return out, nil
}

// signature is the one writer of v4 signature packets (RFC 4880, 5.2.3):
// state has hashed what the signature is over (the artifact; or key and user
// ID), hashedSub is the hashed subpacket area; the issuer key ID goes in the
// unhashed area, where pacman looks for it. signer signs the digest and
// keeps its secret.
func signature(pub *packet.PublicKey, typ packet.SignatureType, h crypto.Hash, state hash.Hash, hashedSub []byte, signer crypto.Signer) ([]byte, error) {
	if pub.Version != 4 {
		return nil, fmt.Errorf("signing key is v%d; only v4 is supported", pub.Version)
	}
	hid, ok := digest.OpenPGPID(h)
	if !ok {
		return nil, fmt.Errorf("unsupported hash %v", h)
	}
	algo := pub.PubKeyAlgo
	if algo == packet.PubKeyAlgoRSASignOnly {
		algo = packet.PubKeyAlgoRSA
	}
	hashed := make([]byte, 0, 6+len(hashedSub))
	hashed = append(hashed, 4, byte(typ), byte(algo), hid, byte(len(hashedSub)>>8), byte(len(hashedSub)))
	hashed = append(hashed, hashedSub...)
	state.Write(hashed)
	var trailer [6]byte
	trailer[0], trailer[1] = 4, 0xff
	binary.BigEndian.PutUint32(trailer[2:], uint32(len(hashed)))
	state.Write(trailer[:])
	digest := state.Sum(nil)

	mpis, err := rawSign(signer, algo, digest, h)
	if err != nil {
		return nil, err
	}

	var body bytes.Buffer
	body.Write(hashed)
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
	out := oldHeader(2, body.Len())
	return append(out, body.Bytes()...), nil
}

// oldHeader is an old-format packet header with a length of 1, 2 or 4
// bytes, as GnuPG writes signatures.
func oldHeader(tag byte, n int) []byte {
	switch {
	case n < 256:
		return []byte{0x80 | tag<<2, byte(n)}
	case n < 65536:
		return []byte{0x80 | tag<<2 | 1, byte(n >> 8), byte(n)}
	}
	return []byte{0x80 | tag<<2 | 2, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
}

// Notation is a notation data subpacket (RFC 4880, 5.2.3.16): a
// name@domain and its value, never critical: human-readable UTF-8, or
// bytes when Binary (upstream Arch Signstar's data-digest, a raw SHA-512).
type Notation struct {
	Name, Value string
	Binary      bool
}

// data is the subpacket's body: the human-readable flag, the lengths, the
// name and the value.
func (n Notation) data() ([]byte, error) {
	if len(n.Name)+len(n.Value)+8+1 >= 192 || !bytes.ContainsRune([]byte(n.Name), '@') {
		return nil, fmt.Errorf("notation %q is too long or has no @domain", n.Name)
	}
	var flags byte = 0x80
	if n.Binary {
		flags = 0
	}
	d := []byte{flags, 0, 0, 0, 0, byte(len(n.Name)), 0, byte(len(n.Value))}
	d = append(d, n.Name...)
	return append(d, n.Value...), nil
}

func subpacket(w *bytes.Buffer, typ byte, data []byte) {
	w.WriteByte(byte(len(data) + 1)) // all ours are < 192 bytes (Notation.data)
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
func rawSign(signer crypto.Signer, algo packet.PublicKeyAlgorithm, digest []byte, h crypto.Hash) ([][]byte, error) {
	switch algo {
	case packet.PubKeyAlgoRSA:
		sig, err := signer.Sign(Rand, digest, h)
		if err != nil {
			return nil, err
		}
		return [][]byte{sig}, nil
	case packet.PubKeyAlgoECDSA:
		der, err := signer.Sign(Rand, digest, h)
		if err != nil {
			return nil, err
		}
		r, s, err := parseECDSA(der)
		if err != nil {
			return nil, err
		}
		return [][]byte{r.Bytes(), s.Bytes()}, nil
	case packet.PubKeyAlgoEdDSA:
		sig, err := signer.Sign(Rand, digest, crypto.Hash(0))
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
