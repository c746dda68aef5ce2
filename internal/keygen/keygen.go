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

// Generate writes a new armored secret key to out (mode 0600, never over an
// existing file) and returns its armored public certificate.
func Generate(uid, algo, out string, t time.Time) ([]byte, error) {
	e, err := New(uid, algo, t)
	if err != nil {
		return nil, err
	}
	cfg, _ := Config(algo, t)
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
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if os.IsExist(err) {
			return nil, &UsageError{fmt.Sprintf("%s exists: refusing to overwrite a key", out)}
		}
		return nil, err
	}
	_, werr := f.Write(sec.Bytes())
	serr := f.Sync()
	cerr := f.Close()
	clear(sec.Bytes())
	if werr != nil || serr != nil || cerr != nil {
		os.Remove(out)
		return nil, fmt.Errorf("cannot write %s", out)
	}
	return backend.ArmoredCert(e)
}
