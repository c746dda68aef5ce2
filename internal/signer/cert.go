package signer

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/signstar/signstar/internal/backend"
)

// Certificates for keys whose private half stays in hardware (PIV, TPM):
// the key packet is encoded by hand and the self-signature made through any
// crypto.Signer, because go-crypto's NewSignerPrivateKey panics on signers
// it does not know.

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

// Certify builds a certificate around the key whose packet is keyPacket:
// user ID uid and a positive self-certification made by signer at sigTime,
// marking the key for certifying and signing, through the same packet
// writer as Sign. No secret leaves signer.
func Certify(pk *packet.PublicKey, keyPacket []byte, uid string, signer crypto.Signer, sigTime time.Time) ([]byte, error) {
	h := backend.HashFor(pk)
	var t [4]byte
	binary.BigEndian.PutUint32(t[:], uint32(sigTime.Unix()))
	var sub bytes.Buffer
	subpacket(&sub, 2, t[:])                                  // signature creation time
	subpacket(&sub, 27, []byte{0x03})                         // key flags: certify, sign
	subpacket(&sub, 21, []byte{10, 8})                        // preferred hashes: SHA-512, SHA-256
	subpacket(&sub, 22, []byte{0})                            // preferred compression: none
	subpacket(&sub, 11, []byte{9, 7})                         // preferred ciphers: AES-256, AES-128
	subpacket(&sub, 25, []byte{1})                            // primary user ID
	subpacket(&sub, 33, append([]byte{4}, pk.Fingerprint...)) // issuer fingerprint

	// RFC 4880, 5.2.4: key, user ID, then the signature's fields.
	st := h.New()
	body := keyPacket[3:]
	st.Write([]byte{0x99, byte(len(body) >> 8), byte(len(body))})
	st.Write(body)
	var ul [4]byte
	binary.BigEndian.PutUint32(ul[:], uint32(len(uid)))
	st.Write([]byte{0xb4})
	st.Write(ul[:])
	st.Write([]byte(uid))
	sig, err := signature(pk, packet.SigTypePositiveCert, h, st, sub.Bytes(), signer)
	if err != nil {
		return nil, err
	}

	var out bytes.Buffer
	out.Write(keyPacket)
	out.Write(oldHeader(13, len(uid)))
	out.WriteString(uid)
	out.Write(sig)
	return out.Bytes(), nil
}
