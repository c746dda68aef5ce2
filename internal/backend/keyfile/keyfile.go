// Package keyfile opens an OpenPGP transferable secret key from a file and
// gives a crypto.Signer for its signing key.
package keyfile

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	pgpecdsa "github.com/ProtonMail/go-crypto/openpgp/ecdsa"
	"github.com/ProtonMail/go-crypto/openpgp/eddsa"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	circled "github.com/cloudflare/circl/sign/ed25519"

	"github.com/signstar/signstar/internal/backend"
)

// ErrPassphrase means the passphrase did not decrypt the key.
var ErrPassphrase = errors.New("wrong passphrase for the key")

// ErrNeedPassphrase means the key is encrypted and no passphrase_file is set.
var ErrNeedPassphrase = errors.New("the key is passphrase-protected and the profile has no passphrase_file")

// Options are a key file profile's: [profile] key and passphrase_file.
type Options struct {
	Key            string // the secret key file
	PassphraseFile string // "" for a key without a passphrase
}

// Open reads the secret key o.Key, decrypts it with the passphrase in
// o.PassphraseFile (if not empty) and returns its signing key. Both files
// must not be open to group or others.
func Open(o Options, now time.Time) (*backend.Key, error) {
	path, passphraseFile := o.Key, o.PassphraseFile
	if err := backend.CheckPrivate(path); err != nil {
		return nil, err
	}
	e, err := backend.ReadEntity(path)
	if err != nil {
		return nil, err
	}
	// A stub (GnuPG's gnu-dummy S2K: the primary after
	// gpg --export-secret-subkeys, a key moved to a card) has no secret.
	pub, err := backend.Choose(e, now, func(k *packet.PublicKey) (bool, error) {
		p := privateOf(e, k)
		return p != nil && !p.Dummy(), nil
	})
	var nse *backend.NoSecretError
	if errors.As(err, &nse) {
		if !anySecret(e) {
			return nil, fmt.Errorf("%s holds only the public key %s: give the secret key", path, nse.Fingerprint)
		}
		return nil, fmt.Errorf("%s holds no secret of the signing keys %s, only stubs (for a card, or left by gpg --export-secret-subkeys of another subkey): export one of them with its secret", path, nse.List())
	}
	if err != nil {
		return nil, err
	}
	priv := privateOf(e, pub)
	if priv.Encrypted {
		if passphraseFile == "" {
			return nil, ErrNeedPassphrase
		}
		pass, err := backend.ReadPassphrase(o.PassphraseFile)
		if err != nil {
			return nil, err
		}
		err = priv.Decrypt(pass)
		clear(pass)
		if err != nil {
			return nil, ErrPassphrase
		}
	}
	signer, err := Signer(priv)
	if err != nil {
		return nil, err
	}
	return &backend.Key{Cert: e, Public: pub, Signer: signer}, nil
}

// privateOf returns the secret key packet of e for pub, or nil.
func privateOf(e *openpgp.Entity, pub *packet.PublicKey) *packet.PrivateKey {
	if pub == e.PrimaryKey {
		return e.PrivateKey
	}
	for _, s := range e.Subkeys {
		if s.PublicKey == pub {
			return s.PrivateKey
		}
	}
	return nil
}

// anySecret reports whether e came with any secret key packet, stub or not.
func anySecret(e *openpgp.Entity) bool {
	if e.PrivateKey != nil {
		return true
	}
	for _, s := range e.Subkeys {
		if s.PrivateKey != nil {
			return true
		}
	}
	return false
}

// Signer adapts a decrypted go-crypto private key to a crypto.Signer with the
// conventions of backend.Key.
func Signer(priv *packet.PrivateKey) (crypto.Signer, error) {
	switch k := priv.PrivateKey.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case *pgpecdsa.PrivateKey:
		want, err := backend.StdPublic(&priv.PublicKey)
		if err != nil {
			return nil, err
		}
		pub, ok := want.(*ecdsa.PublicKey)
		if !ok || k.D == nil {
			return nil, errors.New("malformed ECDSA secret key")
		}
		size := (pub.Curve.Params().BitSize + 7) / 8
		if k.D.BitLen() > 8*size {
			return nil, errors.New("malformed ECDSA secret key")
		}
		sk, err := ecdsa.ParseRawPrivateKey(pub.Curve, k.D.FillBytes(make([]byte, size)))
		if err != nil {
			return nil, errors.New("malformed ECDSA secret key")
		}
		if !sk.PublicKey.Equal(pub) {
			return nil, errors.New("ECDSA secret key does not match its public key")
		}
		return sk, nil
	case *eddsa.PrivateKey:
		// circl's Ed25519 (already linked through go-crypto) carries its
		// base-point table precomputed; the standard library builds it on
		// first use, which costs a one-shot process most of a millisecond.
		if len(k.D) != circled.SeedSize {
			return nil, errors.New("malformed Ed25519 secret key")
		}
		sk := circled.NewKeyFromSeed(k.D)
		if !bytes.Equal(sk.Public().(circled.PublicKey), k.X) {
			return nil, errors.New("Ed25519 secret key does not match its public key")
		}
		return sk, nil
	}
	return nil, fmt.Errorf("secret key type %T is not supported", priv.PrivateKey)
}
