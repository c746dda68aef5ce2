// Package backend defines what every key store gives the signer: the OpenPGP
// certificate, the signing (sub)key inside it, and a crypto.Signer that signs
// digests for that key. The key file, gpg-agent and PIV backends live in
// subpackages; this package holds what they share: reading certificates and
// choosing the key that signs.
package backend

import (
	"bytes"
	"cmp"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"syscall"
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
	Cert   *openpgp.Entity   // the whole certificate, parsed (`pubkey` serves the file's packets: ReadPublic)
	Public *packet.PublicKey // the primary key or subkey that signs
	Signer crypto.Signer
	// Closer releases the agent connection or card; nil when nothing is held.
	Closer io.Closer
	// FDs are descriptors the backend holds that must stay open through
	// the sandbox's lock-down (a TPM character device); the sockets a
	// backend connected are kept without being listed.
	FDs []int
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
	// O_NONBLOCK: a FIFO or a device put at the path must not block the
	// open; it is refused below. It does nothing to a regular file.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
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
// or binary). A key on a smartcard, which GnuPG exports as a secret key
// packet that holds only the card's serial number (divert-to-card), is read
// as the public key it is.
func ParseEntity(data []byte) (*openpgp.Entity, error) {
	bin := data
	if isArmored(data) {
		block, err := armor.Decode(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("bad ASCII armor: %v", err)
		}
		if block.Type != openpgp.PublicKeyType && block.Type != openpgp.PrivateKeyType {
			return nil, fmt.Errorf("armor holds %q, not a key", block.Type)
		}
		if bin, err = io.ReadAll(io.LimitReader(block.Body, maxKeyFileSize+1)); err != nil {
			return nil, fmt.Errorf("bad ASCII armor: %v", err)
		}
		defer clear(bin)
	}
	if b, ok := withoutCardStubs(bin); ok {
		bin = b
		defer clear(b)
	}
	el, err := openpgp.ReadKeyRing(bytes.NewReader(bin))
	if err != nil {
		return nil, fmt.Errorf("not an OpenPGP key: %v", err)
	}
	if len(el) != 1 {
		return nil, fmt.Errorf("holds %d keys: give exactly one", len(el))
	}
	return el[0], nil
}

// KeyError explains why a certificate cannot be used at all.
type KeyError struct {
	Fingerprint string
	Reason      string
}

func (e *KeyError) Error() string { return "key " + e.Fingerprint + " " + e.Reason }

// ExpiredError is the KeyError of a certificate that has expired, so that
// the refusal can point at the profile's transition key.
type ExpiredError struct{ KeyError }

// Unwrap makes an ExpiredError a *KeyError for errors.As.
func (e *ExpiredError) Unwrap() error { return &e.KeyError }

// SigningKeys returns the keys of e that may sign at now, in GnuPG's order
// of preference: the valid signing subkeys, newest first by the subkey's own
// creation time (not its binding signature's, which a routine
// gpg --quick-set-expire renews), then the primary key if it may sign. This
// is the order of g10/getkey.c's finish_lookup, which signs with the newest
// usable subkey whose secret is present and falls back to the primary only
// when there is none; Choose applies the "secret is present" part.
//
// Subkeys count when their newest binding signature gives the signing flag
// and neither it nor the subkey has expired, the subkey is not revoked and
// not created after now. Among subkeys created in the same second the first
// in the certificate comes first (GnuPG takes a later one only if strictly
// newer). The primary key counts when its self-signature gives the signing
// flag, or no flags at all (GnuPG then allows what the algorithm can do).
//
// SigningKeys refuses revoked and expired certificates and v6 keys; the
// algorithm of the key that is chosen is checked by Choose.
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
		return nil, &ExpiredError{KeyError{fp, "has expired: extend it (gpg --quick-set-expire) or make a new one"}}
	}
	if id != nil && id.Revoked(now) {
		return nil, &KeyError{fp, "has its primary user ID revoked"}
	}
	type sub struct {
		pk *packet.PublicKey
		i  int
	}
	var subs []sub
	for i, s := range e.Subkeys {
		if s.Sig != nil && s.Sig.FlagsValid && s.Sig.FlagSign && s.PublicKey.PubKeyAlgo.CanSign() &&
			!s.PublicKey.KeyExpired(s.Sig, now) && !s.Sig.SigExpired(now) && !s.Revoked(now) &&
			!s.PublicKey.CreationTime.After(now) {
			subs = append(subs, sub{s.PublicKey, i})
		}
	}
	slices.SortStableFunc(subs, func(a, b sub) int {
		ta, tb := a.pk.CreationTime.Unix(), b.pk.CreationTime.Unix()
		if ta == 0 && tb == 0 {
			// GnuPG's one exception: a subkey created at 0 replaces an
			// earlier one created at 0, so the last of them wins.
			return cmp.Compare(b.i, a.i)
		}
		return cmp.Compare(tb, ta)
	})
	var keys []*packet.PublicKey
	for _, s := range subs {
		keys = append(keys, s.pk)
	}
	if (!sig.FlagsValid || sig.FlagSign) && e.PrimaryKey.PubKeyAlgo.CanSign() {
		keys = append(keys, e.PrimaryKey)
	}
	if len(keys) == 0 {
		return nil, &KeyError{fp, "has no valid key that may sign (no signing flag, or its subkeys expired or were revoked)"}
	}
	return keys, nil
}

// Expiry is when e's primary key expires, by its primary self-signature;
// false when it does not.
func Expiry(e *openpgp.Entity) (time.Time, bool) {
	sig, _ := e.PrimarySelfSignature()
	if sig == nil || sig.KeyLifetimeSecs == nil || *sig.KeyLifetimeSecs == 0 {
		return time.Time{}, false
	}
	return e.PrimaryKey.CreationTime.Add(time.Duration(*sig.KeyLifetimeSecs) * time.Second), true
}

// NoSecretError means that none of the certificate's signing keys has its
// secret where the backend looks (the key file, the agent).
type NoSecretError struct {
	Fingerprint string              // the certificate's primary key
	Keys        []*packet.PublicKey // the signing keys looked for, in order
}

func (e *NoSecretError) Error() string {
	return fmt.Sprintf("the secret of none of the signing keys of %s is present (%s)", e.Fingerprint, e.List())
}

// List names the keys looked for, comma-separated.
func (e *NoSecretError) List() string {
	fps := make([]string, len(e.Keys))
	for i, k := range e.Keys {
		fps[i] = Fingerprint(k)
	}
	return strings.Join(fps, ", ")
}

// Choose returns the key of e that signs at now: the first of SigningKeys
// for which hasSecret reports the secret present, which is the key that
// gpg --detach-sign --local-user FINGERPRINT signs with. hasSecret's error
// ends the search. The chosen key must pass CheckAlgorithm: a key that GnuPG
// would sign with but signstar does not is refused, never passed over for
// another key, so that signstar and gpg never sign with different keys.
func Choose(e *openpgp.Entity, now time.Time, hasSecret func(*packet.PublicKey) (bool, error)) (*packet.PublicKey, error) {
	keys, err := SigningKeys(e, now)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		ok, err := hasSecret(k)
		if err != nil {
			return nil, err
		}
		if ok {
			if err := CheckAlgorithm(k); err != nil {
				return nil, err
			}
			return k, nil
		}
	}
	return nil, &NoSecretError{Fingerprint: Fingerprint(e.PrimaryKey), Keys: keys}
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
		if err != nil || (c != packet.CurveNistP256 && c != packet.CurveNistP384 && c != packet.CurveNistP521) {
			return &KeyError{fp, "is ECDSA on a curve other than P-256, P-384 or P-521"}
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

// ArmoredCert writes e's public certificate, ASCII-armored, as go-crypto
// serializes it: for certificates signstar makes (keygen, piv setup). A
// certificate read from a file is served by ReadPublic, as given.
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
		case packet.CurveNistP521:
			curve = elliptic.P521()
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
