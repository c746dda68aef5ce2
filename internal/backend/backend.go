// Package backend defines what every key store gives the signer: the OpenPGP
// certificate, the signing (sub)key inside it, and a crypto.Signer that signs
// digests for that key. The key file, gpg-agent and PIV backends live in
// subpackages; this package holds what they share: reading certificates and
// choosing the key that signs.
package backend

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgpecdsa "github.com/ProtonMail/go-crypto/openpgp/ecdsa"
	"github.com/ProtonMail/go-crypto/openpgp/eddsa"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// Key is an opened signing key.
//
// Signer.Sign(rand, digest, opts) follows the standard library's conventions
// for the algorithm of Public:
//   - RSA: opts.HashFunc() is the digest's hash; returns the PKCS #1 v1.5
//     signature, as rsa.SignPKCS1v15.
//   - ECDSA: returns the ASN.1 DER SEQUENCE { r, s }, as ecdsa.SignASN1.
//   - Ed25519 (OpenPGP legacy EdDSA, algorithm 22): opts.HashFunc() is 0 and
//     digest is the OpenPGP hash, signed as the Ed25519 message; returns the
//     64-byte R || S.
//
// Sign returns an error (never panics) when the key store refuses or is gone;
// errors that carry data (a PIN error with retries left) are typed.
type Key struct {
	Cert   *openpgp.Entity   // the whole certificate; what `pubkey` prints
	Public *packet.PublicKey // the primary key or subkey that signs
	Signer crypto.Signer
	// Closer releases the agent connection or card; nil when nothing is held.
	Closer io.Closer
}

// Close releases what the key holds.
func (k *Key) Close() error {
	if k == nil || k.Closer == nil {
		return nil
	}
	return k.Closer.Close()
}

// maxKeyFileSize bounds what we read from a key or certificate file.
const maxKeyFileSize = 1 << 20

// ReadFile reads a key or certificate file, refusing oversized ones.
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("%s is larger than 1 MiB: not a key file", path)
	}
	return data, nil
}

// CheckPrivate refuses a secret file (key, passphrase, PIN) that group or
// others can read or write: such a file is already leaked to anyone on the
// host with that group.
func CheckPrivate(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s has mode %04o, open to group or others: run chmod 0600 %s (or 0400)", path, perm, path)
	}
	return nil
}

// ReadEntity reads the key or certificate file at path and parses it with
// ParseEntity. Read errors come back as they are; a parse error names path.
// The file's bytes are cleared afterwards, since they may hold a secret key.
func ReadEntity(path string) (*openpgp.Entity, error) {
	data, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	e, err := ParseEntity(data)
	clear(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return e, nil
}

// ParseEntity reads exactly one transferable key (public or secret, armored
// or binary).
func ParseEntity(data []byte) (*openpgp.Entity, error) {
	var r io.Reader = bytes.NewReader(data)
	if bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("-----BEGIN ")) {
		block, err := armor.Decode(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("bad ASCII armor: %v", err)
		}
		if block.Type != openpgp.PublicKeyType && block.Type != openpgp.PrivateKeyType {
			return nil, fmt.Errorf("armor holds %q, not a key", block.Type)
		}
		r = block.Body
	}
	el, err := openpgp.ReadKeyRing(r)
	if err != nil {
		return nil, fmt.Errorf("not an OpenPGP key: %v", err)
	}
	if len(el) != 1 {
		return nil, fmt.Errorf("holds %d keys: give exactly one", len(el))
	}
	return el[0], nil
}

// ErrNoSigningKey means the certificate has no usable key that may sign.
var ErrNoSigningKey = errors.New("no valid key with the signing flag")

// KeyError explains why a certificate cannot be used at all.
type KeyError struct {
	Fingerprint string
	Reason      string
}

func (e *KeyError) Error() string { return "key " + e.Fingerprint + " " + e.Reason }

// SigningKeys returns the keys of e that may sign at now, primary first, then
// subkeys from newest to oldest. It refuses revoked and expired certificates
// and RSA keys under 2048 bits.
func SigningKeys(e *openpgp.Entity, now time.Time) ([]*packet.PublicKey, error) {
	fp := Fingerprint(e.PrimaryKey)
	if e.PrimaryKey.Version != 4 {
		return nil, &KeyError{fp, fmt.Sprintf("is a v%d key: pacman and GnuPG need v4", e.PrimaryKey.Version)}
	}
	if e.Revoked(now) {
		return nil, &KeyError{fp, "is revoked"}
	}
	sig, id := e.PrimarySelfSignature()
	if sig == nil {
		return nil, &KeyError{fp, "has no valid self-signature"}
	}
	if e.PrimaryKey.KeyExpired(sig, now) || sig.SigExpired(now) {
		return nil, &KeyError{fp, "has expired: extend it (gpg --quick-set-expire) or make a new one"}
	}
	if id != nil && id.Revoked(now) {
		return nil, &KeyError{fp, "has its primary user ID revoked"}
	}
	var keys []*packet.PublicKey
	if sig.FlagsValid && sig.FlagSign && e.PrimaryKey.PubKeyAlgo.CanSign() {
		keys = append(keys, e.PrimaryKey)
	}
	var subs []openpgp.Subkey
	for _, s := range e.Subkeys {
		if s.Sig != nil && s.Sig.FlagsValid && s.Sig.FlagSign && s.PublicKey.PubKeyAlgo.CanSign() &&
			!s.PublicKey.KeyExpired(s.Sig, now) && !s.Sig.SigExpired(now) && !s.Revoked(now) {
			subs = append(subs, s)
		}
	}
	// newest first, as GnuPG picks
	for i := 1; i < len(subs); i++ {
		for j := i; j > 0 && subs[j].Sig.CreationTime.After(subs[j-1].Sig.CreationTime); j-- {
			subs[j], subs[j-1] = subs[j-1], subs[j]
		}
	}
	for _, s := range subs {
		keys = append(keys, s.PublicKey)
	}
	if len(keys) == 0 {
		return nil, &KeyError{fp, "has no valid key that may sign (no signing flag, or its subkeys expired or were revoked)"}
	}
	var out []*packet.PublicKey
	var weak error
	for _, k := range keys {
		if err := CheckAlgorithm(k); err != nil {
			weak = err
			continue
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, weak
	}
	return out, nil
}

// CheckAlgorithm refuses algorithms and sizes we do not sign with.
func CheckAlgorithm(k *packet.PublicKey) error {
	fp := Fingerprint(k)
	switch k.PubKeyAlgo {
	case packet.PubKeyAlgoRSA, packet.PubKeyAlgoRSASignOnly:
		bits, err := k.BitLength()
		if err != nil {
			return &KeyError{fp, "has a malformed RSA modulus"}
		}
		if bits < 2048 {
			return &KeyError{fp, fmt.Sprintf("is RSA of %d bits: at least 2048 are required", bits)}
		}
	case packet.PubKeyAlgoECDSA:
		c, err := k.Curve()
		if err != nil || (c != packet.CurveNistP256 && c != packet.CurveNistP384) {
			return &KeyError{fp, "is ECDSA on a curve other than P-256 or P-384"}
		}
	case packet.PubKeyAlgoEdDSA:
		c, err := k.Curve()
		if err != nil || c != packet.Curve25519 {
			return &KeyError{fp, "is EdDSA on a curve other than Ed25519"}
		}
	case packet.PubKeyAlgoEd25519:
		return &KeyError{fp, "is Ed25519 as algorithm 27, which GnuPG cannot verify: use legacy EdDSA (22)"}
	default:
		return &KeyError{fp, fmt.Sprintf("uses public-key algorithm %d, which signstar does not sign with", k.PubKeyAlgo)}
	}
	return nil
}

// Fingerprint is the uppercase hex fingerprint of k.
func Fingerprint(k *packet.PublicKey) string { return fmt.Sprintf("%X", k.Fingerprint) }

// ArmoredCert writes e's public certificate, ASCII-armored.
func ArmoredCert(e *openpgp.Entity) ([]byte, error) {
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		return nil, err
	}
	if err := e.Serialize(w); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// StdPublic converts go-crypto's public key to the standard library's.
func StdPublic(pk *packet.PublicKey) (crypto.PublicKey, error) {
	switch k := pk.PublicKey.(type) {
	case *rsa.PublicKey:
		return k, nil
	case *pgpecdsa.PublicKey:
		c, _ := pk.Curve()
		var curve elliptic.Curve
		switch c {
		case packet.CurveNistP256:
			curve = elliptic.P256()
		case packet.CurveNistP384:
			curve = elliptic.P384()
		default:
			return nil, fmt.Errorf("key %s: unsupported ECDSA curve %s", Fingerprint(pk), c)
		}
		return ecdsa.ParseUncompressedPublicKey(curve, k.MarshalPoint())
	case *eddsa.PublicKey:
		if len(k.X) == ed25519.PublicKeySize {
			return ed25519.PublicKey(k.X), nil
		}
	}
	return nil, fmt.Errorf("key %s: unsupported public key", Fingerprint(pk))
}
