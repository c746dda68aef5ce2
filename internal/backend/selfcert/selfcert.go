// Package selfcert builds v4 OpenPGP certificates around a public key whose
// private half stays in hardware: the key packet is encoded by hand and the
// self-signature made through any crypto.Signer, because go-crypto's
// NewSignerPrivateKey panics on signers it does not know. The TPM backend
// uses it; the PIV backend holds an earlier copy of the same code.
package selfcert

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// OpenPGP curve OIDs (RFC 6637, 11), without the DER tag and length.
var (
	oidP256 = []byte{0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}
	oidP384 = []byte{0x2b, 0x81, 0x04, 0x00, 0x22}
)

// keyBody is the body of a v4 public-key packet for pub (RFC 4880, 5.5.2).
// It is built by hand because go-crypto wants its own ECDSA type.
func keyBody(pub crypto.PublicKey, created time.Time) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte(4)
	binary.Write(&b, binary.BigEndian, uint32(created.Unix()))
	switch k := pub.(type) {
	case *rsa.PublicKey:
		b.WriteByte(byte(packet.PubKeyAlgoRSA))
		writeMPI(&b, k.N.Bytes())
		writeMPI(&b, big.NewInt(int64(k.E)).Bytes())
	case *ecdsa.PublicKey:
		var oid []byte
		switch k.Curve {
		case elliptic.P256():
			oid = oidP256
		case elliptic.P384():
			oid = oidP384
		default:
			return nil, fmt.Errorf("ECDSA curve %s is not supported", k.Curve.Params().Name)
		}
		b.WriteByte(byte(packet.PubKeyAlgoECDSA))
		b.WriteByte(byte(len(oid)))
		b.Write(oid)
		pt, err := k.Bytes()
		if err != nil {
			return nil, fmt.Errorf("the ECDSA key is invalid: %v", err)
		}
		writeMPI(&b, pt)
	default:
		return nil, fmt.Errorf("a %T key: signstar signs with RSA or ECDSA P-256/P-384 here", pub)
	}
	return b.Bytes(), nil
}

// PublicKey returns pub as an OpenPGP v4 key created at created: the same
// key material and time give the same fingerprint.
func PublicKey(pub crypto.PublicKey, created time.Time) (*packet.PublicKey, []byte, error) {
	body, err := keyBody(pub, created)
	if err != nil {
		return nil, nil, err
	}
	raw := append([]byte{0x99, byte(len(body) >> 8), byte(len(body))}, body...)
	p, err := packet.Read(bytes.NewReader(raw))
	if err != nil {
		return nil, nil, fmt.Errorf("encoding the key: %v", err)
	}
	pk, ok := p.(*packet.PublicKey)
	if !ok {
		return nil, nil, errors.New("encoding the key: not a public key packet")
	}
	return pk, raw, nil
}

func writeMPI(w *bytes.Buffer, b []byte) {
	b = bytes.TrimLeft(b, "\x00")
	bits := 0
	if len(b) > 0 {
		bits = (len(b)-1)*8 + big.NewInt(int64(b[0])).BitLen()
	}
	w.Write([]byte{byte(bits >> 8), byte(bits)})
	w.Write(b)
}

func subpacket(w *bytes.Buffer, typ byte, data []byte) {
	w.WriteByte(byte(len(data) + 1))
	w.WriteByte(typ)
	w.Write(data)
}

// oldHeader is an old-format packet header with a length of 1, 2 or 4 bytes.
func oldHeader(tag byte, n int) []byte {
	switch {
	case n < 256:
		return []byte{0x80 | tag<<2, byte(n)}
	case n < 65536:
		return []byte{0x80 | tag<<2 | 1, byte(n >> 8), byte(n)}
	}
	return []byte{0x80 | tag<<2 | 2, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
}

// Certify builds a certificate around the key whose packet is keyPacket:
// user ID uid and a positive self-certification made by signer at sigTime,
// marking the key for certifying and signing. No secret leaves signer.
func Certify(pk *packet.PublicKey, keyPacket []byte, uid string, signer crypto.Signer, sigTime time.Time) ([]byte, error) {
	h := crypto.SHA256
	hid := byte(8)
	if c, err := pk.Curve(); err == nil && c == packet.CurveNistP384 {
		h, hid = crypto.SHA512, 10 // a hash at least as long as the curve
	}
	var hashed bytes.Buffer
	hashed.Write([]byte{4, byte(packet.SigTypePositiveCert), byte(pk.PubKeyAlgo), hid, 0, 0})
	var t [4]byte
	binary.BigEndian.PutUint32(t[:], uint32(sigTime.Unix()))
	subpacket(&hashed, 2, t[:])                                  // signature creation time
	subpacket(&hashed, 27, []byte{0x03})                         // key flags: certify, sign
	subpacket(&hashed, 21, []byte{10, 8})                        // preferred hashes: SHA-512, SHA-256
	subpacket(&hashed, 22, []byte{0})                            // preferred compression: none
	subpacket(&hashed, 11, []byte{9, 7})                         // preferred ciphers: AES-256, AES-128
	subpacket(&hashed, 25, []byte{1})                            // primary user ID
	subpacket(&hashed, 33, append([]byte{4}, pk.Fingerprint...)) // issuer fingerprint
	hs := hashed.Bytes()
	binary.BigEndian.PutUint16(hs[4:6], uint16(len(hs)-6))

	// RFC 4880, 5.2.4: key, user ID, signature fields, trailer.
	st := h.New()
	body := keyPacket[3:]
	st.Write([]byte{0x99, byte(len(body) >> 8), byte(len(body))})
	st.Write(body)
	var ul [4]byte
	binary.BigEndian.PutUint32(ul[:], uint32(len(uid)))
	st.Write([]byte{0xb4})
	st.Write(ul[:])
	st.Write([]byte(uid))
	st.Write(hs)
	var trailer [6]byte
	trailer[0], trailer[1] = 4, 0xff
	binary.BigEndian.PutUint32(trailer[2:], uint32(len(hs)))
	st.Write(trailer[:])
	digest := st.Sum(nil)

	sig, err := signer.Sign(rand.Reader, digest, h)
	if err != nil {
		return nil, err
	}
	var mpis [][]byte
	switch pk.PubKeyAlgo {
	case packet.PubKeyAlgoRSA:
		mpis = [][]byte{sig}
	case packet.PubKeyAlgoECDSA:
		var rs struct{ R, S *big.Int }
		rest, err := asn1.Unmarshal(sig, &rs)
		if err != nil || len(rest) != 0 || rs.R == nil || rs.S == nil || rs.R.Sign() <= 0 || rs.S.Sign() <= 0 {
			return nil, errors.New("the signer returned a malformed ECDSA signature")
		}
		mpis = [][]byte{rs.R.Bytes(), rs.S.Bytes()}
	default:
		return nil, fmt.Errorf("public-key algorithm %d is not supported", pk.PubKeyAlgo)
	}

	var sp bytes.Buffer
	sp.Write(hs)
	var unhashed bytes.Buffer
	var kid [8]byte
	binary.BigEndian.PutUint64(kid[:], pk.KeyId)
	subpacket(&unhashed, 16, kid[:]) // issuer key ID
	sp.Write([]byte{0, byte(unhashed.Len())})
	sp.Write(unhashed.Bytes())
	sp.Write(digest[:2])
	for _, m := range mpis {
		writeMPI(&sp, m)
	}

	var out bytes.Buffer
	out.Write(keyPacket)
	out.Write(oldHeader(13, len(uid)))
	out.WriteString(uid)
	out.Write(oldHeader(2, sp.Len()))
	out.Write(sp.Bytes())
	return out.Bytes(), nil
}
