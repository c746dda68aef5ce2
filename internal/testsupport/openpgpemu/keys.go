package openpgpemu

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"math/big"

	"github.com/signstar/signstar/internal/testsupport/pivemu"
)

// Algorithm IDs of the algorithm attributes (spec 3.4, 4.4.3.10): OpenPGP's.
const (
	algoRSA   = 0x01
	algoECDH  = 0x12
	algoECDSA = 0x13
	algoEdDSA = 0x16
)

// Curve OIDs (DER contents) the card supports.
var (
	oidP256    = []byte{0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}
	oidP384    = []byte{0x2b, 0x81, 0x04, 0x00, 0x22}
	oidEd25519 = []byte{0x2b, 0x06, 0x01, 0x04, 0x01, 0xda, 0x47, 0x0f, 0x01}
	oidX25519  = []byte{0x2b, 0x06, 0x01, 0x04, 0x01, 0x97, 0x55, 0x01, 0x05, 0x01}
)

// attrRSA2048 is the factory attribute of every slot: RSA, 2048-bit
// modulus, 32-bit exponent field, import format "standard" (e, p, q).
var attrRSA2048 = []byte{algoRSA, 0x08, 0x00, 0x00, 0x20, 0x00}

// Attr returns the algorithm attributes for RSA of bits, ECDSA/ECDH on
// "p256" or "p384", EdDSA on "ed25519" or ECDH on "x25519", as PUT DATA
// C1-C3 takes them.
func Attr(name string) []byte {
	switch name {
	case "rsa2048":
		return bytes.Clone(attrRSA2048)
	case "rsa3072":
		return []byte{algoRSA, 0x0c, 0x00, 0x00, 0x20, 0x00}
	case "ecdsa-p256":
		return append([]byte{algoECDSA}, oidP256...)
	case "ecdh-p256":
		return append([]byte{algoECDH}, oidP256...)
	case "ecdsa-p384":
		return append([]byte{algoECDSA}, oidP384...)
	case "ed25519":
		return append([]byte{algoEdDSA}, oidEd25519...)
	case "x25519":
		return append([]byte{algoECDH}, oidX25519...)
	}
	return nil
}

// curveOf returns the OID in an ECC attribute, without the optional
// trailing "public key required" byte.
func curveOf(attr []byte) []byte {
	oid := attr[1:]
	if n := len(oid); n > 0 && (oid[n-1] == 0x00 || oid[n-1] == 0xff) {
		oid = oid[:n-1]
	}
	return oid
}

func validAttr(keyno int, a []byte) bool {
	if len(a) < 2 {
		return false
	}
	switch a[0] {
	case algoRSA:
		if len(a) != 5 && len(a) != 6 {
			return false
		}
		bits := int(a[1])<<8 | int(a[2])
		return (bits == 2048 || bits == 3072 || bits == 4096) && (len(a) == 5 || a[5] <= 3)
	case algoECDSA:
		oid := curveOf(a)
		return keyno != KeyDec && (bytes.Equal(oid, oidP256) || bytes.Equal(oid, oidP384))
	case algoEdDSA:
		return keyno != KeyDec && bytes.Equal(curveOf(a), oidEd25519)
	case algoECDH:
		oid := curveOf(a)
		return keyno == KeyDec && (bytes.Equal(oid, oidP256) || bytes.Equal(oid, oidP384) || bytes.Equal(oid, oidX25519))
	}
	return false
}

// key is a private key in a slot: exactly one field is set.
type key struct {
	rsa *rsa.PrivateKey
	ec  *ecdsa.PrivateKey
	ed  ed25519.PrivateKey
	dh  *ecdh.PrivateKey
}

func ellipticOf(oid []byte) elliptic.Curve {
	switch {
	case bytes.Equal(oid, oidP256):
		return elliptic.P256()
	case bytes.Equal(oid, oidP384):
		return elliptic.P384()
	}
	return nil
}

func ecdhOf(oid []byte) ecdh.Curve {
	switch {
	case bytes.Equal(oid, oidP256):
		return ecdh.P256()
	case bytes.Equal(oid, oidP384):
		return ecdh.P384()
	case bytes.Equal(oid, oidX25519):
		return ecdh.X25519()
	}
	return nil
}

func (c *Card) generateKey(attr []byte) (*key, error) {
	r := c.opt.Rand
	switch attr[0] {
	case algoRSA:
		k, err := rsa.GenerateKey(r, int(attr[1])<<8|int(attr[2]))
		return &key{rsa: k}, err
	case algoECDSA:
		k, err := ecdsa.GenerateKey(ellipticOf(curveOf(attr)), r)
		return &key{ec: k}, err
	case algoEdDSA:
		_, k, err := ed25519.GenerateKey(r)
		return &key{ed: k}, err
	case algoECDH:
		k, err := ecdhOf(curveOf(attr)).GenerateKey(r)
		return &key{dh: k}, err
	}
	return nil, errors.New("unknown algorithm")
}

// publicTLVs is the content of the public key template 7F49 (spec 3.4,
// 7.2.14): 81 modulus and 82 exponent for RSA, 86 the public point (native
// 32 bytes for the 25519 curves).
func (k *key) publicTLVs() []byte {
	switch {
	case k.rsa != nil:
		b := pivemu.AppendTLV(nil, 0x81, k.rsa.N.Bytes())
		return pivemu.AppendTLV(b, 0x82, big.NewInt(int64(k.rsa.E)).Bytes())
	case k.ec != nil:
		pub, _ := k.ec.PublicKey.ECDH()
		return pivemu.AppendTLV(nil, 0x86, pub.Bytes())
	case k.ed != nil:
		return pivemu.AppendTLV(nil, 0x86, k.ed.Public().(ed25519.PublicKey))
	case k.dh != nil:
		return pivemu.AppendTLV(nil, 0x86, k.dh.PublicKey().Bytes())
	}
	return nil
}

// Public returns the public key in slot keyno, or nil.
func (c *Card) Public(keyno int) crypto.PublicKey {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := c.keys[keyno]
	switch {
	case k == nil:
		return nil
	case k.rsa != nil:
		return &k.rsa.PublicKey
	case k.ec != nil:
		return &k.ec.PublicKey
	case k.ed != nil:
		return k.ed.Public()
	}
	return k.dh.PublicKey()
}

// crtKeyno maps a control reference template tag to its key slot.
func crtKeyno(tag uint32) (int, bool) {
	switch tag {
	case 0xb6:
		return KeySign, true
	case 0xb8:
		return KeyDec, true
	case 0xa4:
		return KeyAuth, true
	}
	return 0, false
}

// crtOf reads the data of GENERATE ASYMMETRIC KEY PAIR: one control
// reference template, B6 00, B8 00 or A4 00.
func crtOf(data []byte) (int, bool) {
	tlvs, err := pivemu.ParseTLVs(data)
	if err != nil || len(tlvs) != 1 {
		return 0, false
	}
	return crtKeyno(tlvs[0].Tag)
}

func (c *Card) generate(cmd *pivemu.Command) ([]byte, uint16) {
	keyno, ok := crtOf(cmd.Data)
	if !ok || cmd.P2 != 0 {
		return nil, swWrongData
	}
	switch cmd.P1 {
	case 0x80:
		if !c.pw3OK {
			return nil, swSecurityStatus
		}
		k, err := c.generateKey(c.attrs[keyno])
		if err != nil {
			return nil, swConditionsNotMet
		}
		c.install(keyno, k)
	case 0x81:
		if c.keys[keyno] == nil {
			return nil, swRefDataNotFound
		}
	default:
		return nil, swIncorrectP1P2
	}
	return pivemu.AppendTLV(nil, 0x7f49, c.keys[keyno].publicTLVs()), swOK
}

// install puts k in slot keyno: the host writes its fingerprint and time
// afterwards; a new signature key restarts the signature counter.
func (c *Card) install(keyno int, k *key) {
	c.keys[keyno] = k
	c.fprs[keyno], c.times[keyno] = [20]byte{}, [4]byte{}
	if keyno == KeySign {
		c.sigCount = 0
	}
}

// importKey reads the extended header list 4D (spec 3.4, 4.4.3.12): a
// control reference template, 7F48 (the tags and lengths of the key
// parts, without values) and 5F48 (the values, concatenated).
func (c *Card) importKey(data []byte) uint16 {
	if !c.pw3OK {
		return swSecurityStatus
	}
	body, err := pivemu.ParseOne(data, 0x4d)
	if err != nil {
		return swWrongData
	}
	tlvs, err := pivemu.ParseTLVs(body)
	if err != nil || len(tlvs) != 3 || tlvs[1].Tag != 0x7f48 || tlvs[2].Tag != 0x5f48 {
		return swWrongData
	}
	keyno, ok := crtKeyno(tlvs[0].Tag)
	if !ok {
		return swWrongData
	}
	parts, ok := splitParts(tlvs[1].Value, tlvs[2].Value)
	if !ok {
		return swWrongData
	}
	k, err := buildKey(c.attrs[keyno], parts)
	if err != nil {
		return swWrongData
	}
	c.install(keyno, k)
	return swOK
}

// splitParts cuts values into the parts that the tag-length list names.
func splitParts(list, values []byte) (map[byte][]byte, bool) {
	parts := map[byte][]byte{}
	for len(list) > 0 {
		if len(list) < 2 {
			return nil, false
		}
		tag, n, rest := list[0], int(list[1]), list[2:]
		switch {
		case n == 0x81 && len(rest) >= 1:
			n, rest = int(rest[0]), rest[1:]
		case n == 0x82 && len(rest) >= 2:
			n, rest = int(rest[0])<<8|int(rest[1]), rest[2:]
		case n >= 0x80:
			return nil, false
		}
		if tag < 0x91 || tag > 0x99 || n > len(values) || parts[tag] != nil {
			return nil, false
		}
		parts[tag], values, list = values[:n], values[n:], rest
	}
	return parts, len(values) == 0
}

func buildKey(attr []byte, parts map[byte][]byte) (*key, error) {
	switch attr[0] {
	case algoRSA:
		e, p, q := new(big.Int).SetBytes(parts[0x91]), new(big.Int).SetBytes(parts[0x92]), new(big.Int).SetBytes(parts[0x93])
		if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 || p.Sign() == 0 || q.Sign() == 0 {
			return nil, errors.New("bad RSA parts")
		}
		n := new(big.Int).Mul(p, q)
		if n.BitLen() != int(attr[1])<<8|int(attr[2]) {
			return nil, errors.New("RSA modulus size differs from the attributes")
		}
		one := big.NewInt(1)
		phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
		d := new(big.Int).ModInverse(e, phi)
		if d == nil {
			return nil, errors.New("e not invertible")
		}
		k := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: n, E: int(e.Int64())}, D: d, Primes: []*big.Int{p, q}}
		if err := k.Validate(); err != nil {
			return nil, err
		}
		k.Precompute()
		return &key{rsa: k}, nil
	case algoEdDSA:
		d := parts[0x92]
		if len(d) > ed25519.SeedSize {
			return nil, errors.New("bad Ed25519 seed")
		}
		seed := make([]byte, ed25519.SeedSize)
		copy(seed[ed25519.SeedSize-len(d):], d)
		return &key{ed: ed25519.NewKeyFromSeed(seed)}, nil
	case algoECDSA:
		curve := ellipticOf(curveOf(attr))
		size := (curve.Params().BitSize + 7) / 8
		d := parts[0x92]
		if len(d) > size {
			return nil, errors.New("bad ECDSA scalar")
		}
		buf := make([]byte, size)
		copy(buf[size-len(d):], d)
		k, err := ecdsa.ParseRawPrivateKey(curve, buf)
		return &key{ec: k}, err
	case algoECDH:
		curve := ecdhOf(curveOf(attr))
		d := parts[0x92]
		if bytes.Equal(curveOf(attr), oidX25519) {
			return nil, errors.New("X25519 import is not supported")
		}
		size := 32
		if curve == ecdh.P384() {
			size = 48
		}
		if len(d) > size {
			return nil, errors.New("bad ECDH scalar")
		}
		buf := make([]byte, size)
		copy(buf[size-len(d):], d)
		k, err := curve.NewPrivateKey(buf)
		return &key{dh: k}, err
	}
	return nil, errors.New("unknown algorithm")
}
