// Package keygen makes new OpenPGP signing keys in the shape signstar, pacman
// and GnuPG all accept: a v4 primary key that certifies and signs (legacy
// EdDSA Ed25519 or RSA), one user ID, no subkeys.
package keygen

import (
	"bytes"
	"crypto"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/signstar/signstar/internal/backend"
)

// UsageError is a mistake in what was asked for.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

var uidRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^([^<>()\x00]+?) <([^<>()\x00\s]+@[^<>()\x00\s]+)>$`)
})

// Config returns the go-crypto configuration for algo.
func Config(algo string, t time.Time) (*packet.Config, error) {
	cfg := &packet.Config{
		DefaultHash: crypto.SHA256,
		Time:        func() time.Time { return t },
	}
	switch algo {
	case "ed25519":
		cfg.Algorithm = packet.PubKeyAlgoEdDSA
		cfg.Curve = packet.Curve25519
	case "rsa3072":
		cfg.Algorithm, cfg.RSABits = packet.PubKeyAlgoRSA, 3072
	case "rsa4096":
		cfg.Algorithm, cfg.RSABits = packet.PubKeyAlgoRSA, 4096
	default:
		return nil, &UsageError{fmt.Sprintf("--algo %q: use ed25519, rsa3072 or rsa4096", algo)}
	}
	return cfg, nil
}

// New makes a signing key for uid ("Name <mail>").
func New(uid, algo string, t time.Time) (*openpgp.Entity, error) {
	m := uidRE().FindStringSubmatch(strings.TrimSpace(uid))
	if m == nil {
		return nil, &UsageError{fmt.Sprintf("--uid %q: use \"Name <mail@example.org>\"", uid)}
	}
	cfg, err := Config(algo, t)
	if err != nil {
		return nil, err
	}
	e, err := openpgp.NewEntity(m[1], "", m[2], cfg)
	if err != nil {
		return nil, err
	}
	// A signing enclave key signs; it needs no encryption subkey.
	e.Subkeys = nil
	// Keep the self-signature's flags to certify and sign only.
	for _, id := range e.Identities {
		id.SelfSignature.FlagEncryptCommunications = false
		id.SelfSignature.FlagEncryptStorage = false
	}
	return e, nil
}

// Options say what Generate makes.
type Options struct {
	UID  string // "Name <mail>"
	Algo string // ed25519, rsa3072 or rsa4096
	// Out is where the armored secret key goes.
	Out string
	// Revocation is where the key's revocation certificate goes, to be
	// kept offline; Out + ".rev" when empty.
	Revocation string
	// CertifyWith is the secret key file of the key being replaced (a
	// profile's key): it certifies the new key's user ID, so that keyring
	// maintainers can check the hand-over. None when empty.
	CertifyWith string
	// CertifyPassphraseFile unlocks CertifyWith when it is protected.
	CertifyPassphraseFile string
	Now                   time.Time
}

// Generated is what Generate made.
type Generated struct {
	// Public is the armored public certificate (with the certification
	// by CertifyWith, when asked).
	Public []byte
	// Revocation is the path the revocation certificate was written to.
	Revocation string
	// CertifiedBy is the fingerprint of the key that certified the new
	// one, or "".
	CertifiedBy string
}

// Generate writes a new armored secret key to o.Out and its revocation
// certificate to o.Revocation (both mode 0600, never over an existing
// file), and returns its armored public certificate. With o.CertifyWith
// the certificate also holds a certification of the user ID by that key.
func Generate(o Options) (*Generated, error) {
	if o.Revocation == "" {
		o.Revocation = o.Out + ".rev"
	}
	for _, p := range []string{o.Out, o.Revocation} {
		if _, err := os.Lstat(p); err == nil {
			return nil, &UsageError{fmt.Sprintf("%s exists: refusing to overwrite a key or revocation certificate", p)}
		}
	}
	if o.Revocation == o.Out {
		return nil, &UsageError{"--revocation must not be --out"}
	}
	e, err := New(o.UID, o.Algo, o.Now)
	if err != nil {
		return nil, err
	}
	cfg, _ := Config(o.Algo, o.Now)
	g := &Generated{Revocation: o.Revocation}
	if o.CertifyWith != "" {
		if g.CertifiedBy, err = certify(e, o, cfg); err != nil {
			return nil, err
		}
	}
	rev, err := revocation(e, cfg)
	if err != nil {
		return nil, err
	}
	var sec bytes.Buffer
	w, err := armor.Encode(&sec, openpgp.PrivateKeyType, nil)
	if err != nil {
		return nil, err
	}
	if err := e.SerializePrivate(w, cfg); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	sec.WriteByte('\n')
	err = writeNew(o.Out, sec.Bytes())
	clear(sec.Bytes())
	if err != nil {
		return nil, err
	}
	if err := writeNew(o.Revocation, rev); err != nil {
		// A key without its revocation certificate is not what was asked.
		os.Remove(o.Out)
		return nil, err
	}
	if g.Public, err = backend.ArmoredCert(e); err != nil {
		return nil, err
	}
	return g, nil
}

// writeNew writes data to a new file at path, mode 0600, and syncs it.
func writeNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if os.IsExist(err) {
			return &UsageError{fmt.Sprintf("%s exists: refusing to overwrite a key or revocation certificate", path)}
		}
		return err
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	if werr != nil || serr != nil || cerr != nil {
		os.Remove(path)
		return fmt.Errorf("cannot write %s", path)
	}
	return nil
}

// revocation is the armored revocation certificate of e: a key revocation
// signature (reason: none given) by e's own key, alone in a public key
// block, as gpg --gen-revoke writes one; gpg --import applies it to the key
// in a keyring. It is not kept in e.
func revocation(e *openpgp.Entity, cfg *packet.Config) ([]byte, error) {
	n := len(e.Revocations)
	if err := e.RevokeKey(packet.NoReason, "", cfg); err != nil {
		return nil, err
	}
	sig := e.Revocations[n]
	e.Revocations = e.Revocations[:n]
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, map[string]string{
		"Comment": "revocation certificate of " + backend.Fingerprint(e.PrimaryKey),
	})
	if err != nil {
		return nil, err
	}
	if err := sig.Serialize(w); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// certify has the key in o.CertifyWith certify e's user ID (a generic
// certification, 0x10, as gpg --sign-key makes) and returns its
// fingerprint. That key must be a valid secret primary key that may
// certify at o.Now.
func certify(e *openpgp.Entity, o Options, cfg *packet.Config) (string, error) {
	if err := backend.CheckPrivate(o.CertifyWith); err != nil {
		return "", err
	}
	old, err := backend.ReadEntity(o.CertifyWith)
	if err != nil {
		return "", err
	}
	fp := backend.Fingerprint(old.PrimaryKey)
	if _, err := backend.SigningKeys(old, o.Now); err != nil {
		return "", fmt.Errorf("--certify-with %s: %v", o.CertifyWith, err)
	}
	ck, ok := old.CertificationKey(o.Now)
	if !ok || ck.PrivateKey == nil || ck.PrivateKey.Dummy() {
		return "", &UsageError{fmt.Sprintf("--certify-with %s: key %s holds no secret key that may certify (a primary key with the certify flag): give the old key's secret primary key", o.CertifyWith, fp)}
	}
	if ck.PrivateKey.Encrypted {
		if o.CertifyPassphraseFile == "" {
			return "", &UsageError{fmt.Sprintf("--certify-with %s is passphrase-protected: add --certify-passphrase-file", o.CertifyWith)}
		}
		pass, err := backend.ReadPassphrase(o.CertifyPassphraseFile)
		if err != nil {
			return "", err
		}
		err = ck.PrivateKey.Decrypt(pass)
		clear(pass)
		if err != nil {
			return "", &UsageError{fmt.Sprintf("the passphrase in %s does not unlock %s", o.CertifyPassphraseFile, o.CertifyWith)}
		}
	}
	var uid string
	for id := range e.Identities {
		uid = id
	}
	if err := e.SignIdentity(uid, old, cfg); err != nil {
		return "", fmt.Errorf("--certify-with %s: %v", o.CertifyWith, err)
	}
	return fp, nil
}
