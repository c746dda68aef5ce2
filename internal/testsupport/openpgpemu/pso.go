package openpgpemu

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"math/big"

	"github.com/signstar/signstar/internal/testsupport/pivemu"
)

// pso is PERFORM SECURITY OPERATION: COMPUTE DIGITAL SIGNATURE (9E 9A)
// with the signature key, DECIPHER (80 86) with the decryption key.
func (c *Card) pso(cmd *pivemu.Command) ([]byte, uint16) {
	switch {
	case cmd.P1 == 0x9e && cmd.P2 == 0x9a:
		if !c.pw1Sig {
			return nil, swSecurityStatus
		}
		k := c.keys[KeySign]
		if k == nil {
			return nil, swRefDataNotFound
		}
		sig, err := k.sign(cmd.Data, c.opt.Rand)
		if err != nil {
			return nil, swWrongData
		}
		// PW1 (81) is good for one signature unless the PW status
		// byte says otherwise (spec 3.4, 7.2.10).
		if !c.sigPINMany {
			c.pw1Sig = false
		}
		c.sigCount++
		c.signatures++
		return sig, swOK
	case cmd.P1 == 0x80 && cmd.P2 == 0x86:
		if !c.pw1Other {
			return nil, swSecurityStatus
		}
		k := c.keys[KeyDec]
		if k == nil {
			return nil, swRefDataNotFound
		}
		out, err := k.decipher(cmd.Data)
		if err != nil {
			return nil, swWrongData
		}
		return out, swOK
	}
	return nil, swIncorrectP1P2
}

func (c *Card) internalAuthenticate(cmd *pivemu.Command) ([]byte, uint16) {
	if cmd.P1 != 0 || cmd.P2 != 0 {
		return nil, swIncorrectP1P2
	}
	if !c.pw1Other {
		return nil, swSecurityStatus
	}
	k := c.keys[KeyAuth]
	if k == nil {
		return nil, swRefDataNotFound
	}
	sig, err := k.sign(cmd.Data, c.opt.Rand)
	if err != nil {
		return nil, swWrongData
	}
	c.signatures++
	return sig, swOK
}

// sign makes the signature the host asked for: PKCS #1 v1.5 over the
// DigestInfo it sent for RSA (at most 40% of the modulus, spec 3.4,
// 7.2.10), r||s of fixed size over the digest for ECDSA, the EdDSA
// signature R||S of the data for Ed25519.
func (k *key) sign(data []byte, rand interface{ Read([]byte) (int, error) }) ([]byte, error) {
	switch {
	case k.rsa != nil:
		if len(data) == 0 || len(data) > k.rsa.Size()*4/10 {
			return nil, errors.New("RSA input is not a DigestInfo")
		}
		return rsa.SignPKCS1v15(nil, k.rsa, crypto.Hash(0), data)
	case k.ec != nil:
		size := (k.ec.Curve.Params().BitSize + 7) / 8
		if len(data) == 0 || len(data) > 64 {
			return nil, errors.New("ECDSA input is not a digest")
		}
		r, s, err := ecdsa.Sign(rand, k.ec, data)
		if err != nil {
			return nil, err
		}
		return append(r.FillBytes(make([]byte, size)), s.FillBytes(make([]byte, size))...), nil
	case k.ed != nil:
		return ed25519.Sign(k.ed, data), nil
	}
	return nil, errors.New("the key cannot sign")
}

// decipher: for RSA, a padding indicator 00 and the cryptogram; for ECDH,
// the cipher DO A6 { 7F49 { 86 point } } (spec 3.4, 7.2.11).
func (k *key) decipher(data []byte) ([]byte, error) {
	switch {
	case k.rsa != nil:
		if len(data) < 2 || data[0] != 0 {
			return nil, errors.New("no padding indicator")
		}
		return rsaDecrypt(k.rsa, data[1:])
	case k.dh != nil:
		a6, err := pivemu.ParseOne(data, 0xa6)
		if err != nil {
			return nil, err
		}
		t, err := pivemu.ParseOne(a6, 0x7f49)
		if err != nil {
			return nil, err
		}
		point, err := pivemu.ParseOne(t, 0x86)
		if err != nil {
			return nil, err
		}
		pub, err := k.dh.Curve().NewPublicKey(point)
		if err != nil {
			return nil, err
		}
		secret, err := k.dh.ECDH(pub)
		if err != nil {
			return nil, err
		}
		if k.dh.Curve() == ecdh.X25519() {
			return secret, nil
		}
		// NIST curves: the card returns the shared point's x.
		return new(big.Int).SetBytes(secret).FillBytes(make([]byte, len(secret))), nil
	}
	return nil, errors.New("the key cannot decipher")
}

// rsaDecrypt removes PKCS #1 v1.5 encryption padding, as OpenPGP's RSA
// session keys need (crypto/rsa deprecates its function for it). It is
// test code: not constant time.
func rsaDecrypt(k *rsa.PrivateKey, c []byte) ([]byte, error) {
	if len(c) != k.Size() {
		return nil, errors.New("cryptogram is not the modulus size")
	}
	x := new(big.Int).SetBytes(c)
	if x.Cmp(k.N) >= 0 {
		return nil, errors.New("cryptogram not below the modulus")
	}
	m := new(big.Int).Exp(x, k.D, k.N).FillBytes(make([]byte, k.Size()))
	if m[0] != 0 || m[1] != 2 {
		return nil, errors.New("bad padding")
	}
	i := bytes.IndexByte(m[2:], 0)
	if i < 8 {
		return nil, errors.New("bad padding")
	}
	return m[2+i+1:], nil
}
