package pivemu

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"io"
	"math/big"
)

// slotKey is a private key held in a slot.
type slotKey struct {
	alg       byte
	signer    crypto.Signer // *rsa.PrivateKey or *ecdsa.PrivateKey
	pinPolicy byte
	origin    byte // 1 generated, 2 imported
	uses      int
}

func rsaBits(alg byte) int {
	switch alg {
	case AlgRSA2048:
		return 2048
	case AlgRSA3072:
		return 3072
	case AlgRSA4096:
		return 4096
	}
	return 0
}

func curveOf(alg byte) elliptic.Curve {
	switch alg {
	case AlgECCP256:
		return elliptic.P256()
	case AlgECCP384:
		return elliptic.P384()
	}
	return nil
}

func generateKey(alg byte, r io.Reader) (*slotKey, error) {
	if bits := rsaBits(alg); bits != 0 {
		k, err := rsa.GenerateKey(r, bits)
		if err != nil {
			return nil, err
		}
		return &slotKey{alg: alg, signer: k}, nil
	}
	if c := curveOf(alg); c != nil {
		k, err := ecdsa.GenerateKey(c, r)
		if err != nil {
			return nil, err
		}
		return &slotKey{alg: alg, signer: k}, nil
	}
	return nil, errors.New("unsupported algorithm")
}

// importKey builds a key from the YubiKey IMPORT ASYMMETRIC KEY objects:
// 01..05 = P, Q, dP, dQ, qInv for RSA (public exponent 65537, as on the
// YubiKey); 06 = the private scalar for ECC.
func importKey(alg byte, tlvs []TLV) (*slotKey, error) {
	if bits := rsaBits(alg); bits != 0 {
		var v [5]*big.Int
		for i := range v {
			b, ok := find(tlvs, uint32(1+i))
			if !ok || len(b) != bits/16 {
				return nil, errors.New("missing or short RSA component")
			}
			v[i] = new(big.Int).SetBytes(b)
		}
		p, q := v[0], v[1]
		one := big.NewInt(1)
		pm1, qm1 := new(big.Int).Sub(p, one), new(big.Int).Sub(q, one)
		phi := new(big.Int).Mul(pm1, qm1)
		e := big.NewInt(65537)
		d := new(big.Int).ModInverse(e, phi)
		if d == nil {
			return nil, errors.New("exponent not invertible")
		}
		k := &rsa.PrivateKey{
			PublicKey: rsa.PublicKey{N: new(big.Int).Mul(p, q), E: 65537},
			D:         d,
			Primes:    []*big.Int{p, q},
		}
		if k.N.BitLen() != bits {
			return nil, errors.New("modulus size does not match the algorithm")
		}
		if err := k.Validate(); err != nil {
			return nil, err
		}
		k.Precompute()
		if k.Precomputed.Dp.Cmp(v[2]) != 0 || k.Precomputed.Dq.Cmp(v[3]) != 0 || k.Precomputed.Qinv.Cmp(v[4]) != 0 {
			return nil, errors.New("CRT components do not match P and Q")
		}
		return &slotKey{alg: alg, signer: k}, nil
	}
	c := curveOf(alg)
	if c == nil {
		return nil, errors.New("unsupported algorithm")
	}
	b, ok := find(tlvs, 0x06)
	size := (c.Params().BitSize + 7) / 8
	if !ok || len(b) != size {
		return nil, errors.New("missing or short ECC private key")
	}
	k, err := ecdsa.ParseRawPrivateKey(c, b)
	if err != nil {
		return nil, err
	}
	return &slotKey{alg: alg, signer: k}, nil
}

// publicTLVs encodes the public key as inside tag 7F49 (SP 800-73-4 part 2,
// 3.3.2): 81 modulus, 82 exponent for RSA; 86 uncompressed point for ECC.
func (k *slotKey) publicTLVs() []byte {
	switch pub := k.signer.Public().(type) {
	case *rsa.PublicKey:
		out := AppendTLV(nil, 0x81, pub.N.Bytes())
		return AppendTLV(out, 0x82, big.NewInt(int64(pub.E)).Bytes())
	case *ecdsa.PublicKey:
		pt, err := pub.Bytes()
		if err != nil {
			return nil
		}
		return AppendTLV(nil, 0x86, pt)
	}
	return nil
}

// sign does the card's private-key operation: raw RSA on a block the host
// padded (as a PIV card does), or ECDSA over a digest of at most the curve
// size, returned as DER like a YubiKey.
func (k *slotKey) sign(in []byte, r io.Reader) ([]byte, error) {
	switch sk := k.signer.(type) {
	case *rsa.PrivateKey:
		if len(in) != sk.Size() {
			return nil, errors.New("RSA input is not the modulus size")
		}
		m := new(big.Int).SetBytes(in)
		if m.Cmp(sk.N) >= 0 {
			return nil, errors.New("RSA input not below the modulus")
		}
		s := new(big.Int).Exp(m, sk.D, sk.N)
		// Check the result, as a card must to resist fault attacks.
		if new(big.Int).Exp(s, big.NewInt(int64(sk.E)), sk.N).Cmp(m) != 0 {
			return nil, errors.New("RSA self-check failed")
		}
		return s.FillBytes(make([]byte, sk.Size())), nil
	case *ecdsa.PrivateKey:
		if len(in) == 0 || len(in) > (sk.Curve.Params().BitSize+7)/8 {
			return nil, errors.New("ECDSA input is not a digest of the curve size")
		}
		return ecdsa.SignASN1(r, sk, in)
	}
	return nil, errors.New("no private key")
}
