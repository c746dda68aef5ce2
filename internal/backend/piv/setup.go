package piv

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	pivgo "github.com/go-piv/piv-go/v2/piv"

	"github.com/signstar/signstar/internal/backend"
	"github.com/signstar/signstar/internal/backend/keyfile"
	"github.com/signstar/signstar/internal/signer"
)

// SetupOptions say what `piv setup` puts on the card.
type SetupOptions struct {
	Reader string // substring of the reader name
	Slot   string // 9a, 9c, 9d, 9e or 82-95
	UID    string // "Name <mail>"
	// Exactly one of Generate (ecc-p256, ecc-p384, rsa2048) and ImportFile
	// (an OpenPGP secret key file whose signing key goes to the card).
	Generate             string
	ImportFile           string
	ImportPassphraseFile string // optional, for an encrypted ImportFile
	// ManagementKeyFile holds the card's management key in hex; "" means
	// the factory default key.
	ManagementKeyFile string
	PINFile           string
	// Force replaces a key already in the slot.
	Force bool
	// Now is the creation time of a generated key and of the self-signature.
	Now time.Time
}

// UsageError means the options are wrong (exit 2), not the card.
type UsageError = backend.UsageError

var generateAlgs = map[string]pivgo.Algorithm{
	"ecc-p256": pivgo.AlgorithmEC256,
	"ecc-p384": pivgo.AlgorithmEC384,
	"rsa2048":  pivgo.AlgorithmRSA2048,
}

// setupPINPolicy is the PIN policy Setup gives the key: "always", so that
// each signature needs the PIN. Tests set "once", the policy of keys that
// other tools provision, to show that no PIN stays verified.
var setupPINPolicy = pivgo.PINPolicyAlways

// Setup puts a key in the slot (generated on the card, or imported), then
// returns the armored OpenPGP certificate for it: the card's public key as
// primary key, with the user ID and a self-signature made by the card. For
// an imported key the key's own creation time is kept, so its fingerprint
// stays the same.
func Setup(o SetupOptions) (out []byte, err error) {
	if err := backend.CheckUID(o.UID); err != nil {
		return nil, err
	}
	if (o.Generate == "") == (o.ImportFile == "") {
		return nil, &UsageError{Msg: "give exactly one of --generate ecc-p256|ecc-p384|rsa2048 and --import KEYFILE"}
	}
	slot, err := ParseSlot(o.Slot)
	if err != nil {
		return nil, &UsageError{Msg: err.Error()}
	}
	var alg pivgo.Algorithm
	if o.Generate != "" {
		var ok bool
		if alg, ok = generateAlgs[o.Generate]; !ok {
			return nil, &UsageError{Msg: fmt.Sprintf("--generate %q: use ecc-p256, ecc-p384 or rsa2048", o.Generate)}
		}
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	created := o.Now.Truncate(time.Second)
	var imported crypto.Signer
	if o.ImportFile != "" {
		imported, created, err = readImport(o.ImportFile, o.ImportPassphraseFile, o.Now)
		if err != nil {
			return nil, err
		}
	}
	mgmt := pivgo.DefaultManagementKey
	if o.ManagementKeyFile != "" {
		if mgmt, err = readManagementKey(o.ManagementKeyFile); err != nil {
			return nil, err
		}
	}
	pin, err := readPIN(o.PINFile)
	if err != nil {
		return nil, err
	}
	defer clear(pin)

	yk, _, err := openCard(o.Reader)
	if err != nil {
		return nil, err
	}
	// The certificate's self-signature presents the PIN: it must not stay
	// verified after Setup, whatever happens.
	defer func() {
		if cerr := endSession(yk); cerr != nil && err == nil {
			out, err = nil, cerr
		}
	}()
	if !o.Force {
		if info, err := yk.KeyInfo(slot); err == nil && info.PublicKey != nil {
			return nil, &UsageError{Msg: fmt.Sprintf("PIV slot %s already holds a key: give --force to replace it", o.Slot)}
		}
	}
	policy := pivgo.Key{Algorithm: alg, PINPolicy: setupPINPolicy, TouchPolicy: pivgo.TouchPolicyNever}
	if imported != nil {
		err = yk.SetPrivateKeyInsecure(mgmt, slot, imported, policy)
	} else {
		_, err = yk.GenerateKey(mgmt, slot, policy)
	}
	if err != nil {
		if strings.Contains(err.Error(), "authenticating with management key") {
			return nil, fmt.Errorf("the card refused the management key: give the right one with --management-key-file (%v)", err)
		}
		return nil, cardErr(fmt.Sprintf("putting the key in PIV slot %s", o.Slot), err)
	}

	// Sign the certificate through the same path as signing artifacts:
	// read the key back from the card, guard the PIN, present it.
	s := &cardSigner{slot: slot, slotName: o.Slot, pin: pin}
	if err := s.read(yk); err != nil {
		return nil, err
	}
	pk, raw, err := signer.PublicKey(s.pub, created)
	if err != nil {
		return nil, err
	}
	if imported != nil {
		want, _, err := signer.PublicKey(imported.Public(), created)
		if err != nil || string(want.Fingerprint) != string(pk.Fingerprint) {
			return nil, fmt.Errorf("the card does not hold the imported key after IMPORT")
		}
	}
	sigTime := o.Now.Truncate(time.Second)
	if sigTime.Before(created) {
		sigTime = created
	}
	cert, err := signer.Certify(pk, raw, o.UID, s, sigTime)
	if err != nil {
		return nil, err
	}
	e, err := backend.ParseEntity(cert)
	if err != nil {
		return nil, fmt.Errorf("the certificate made on the card does not parse: %v", err)
	}
	keys, err := backend.SigningKeys(e, sigTime)
	if err != nil {
		return nil, fmt.Errorf("the certificate made on the card is not usable: %v", err)
	}
	if string(keys[0].Fingerprint) != string(pk.Fingerprint) {
		return nil, errors.New("the certificate made on the card signs with another key")
	}
	return backend.ArmoredCert(e)
}

// readImport opens the signing key of an OpenPGP secret key file as a Go
// key piv-go can import, with the key's creation time.
func readImport(path, passFile string, now time.Time) (crypto.Signer, time.Time, error) {
	k, err := keyfile.Open(keyfile.Options{Key: path, PassphraseFile: passFile}, now)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("--import %s: %w", path, err)
	}
	switch sk := k.Signer.(type) {
	case *rsa.PrivateKey:
		if bits := sk.N.BitLen(); bits != 2048 && bits != 3072 && bits != 4096 {
			return nil, time.Time{}, &UsageError{Msg: fmt.Sprintf("--import %s: RSA of %d bits: a PIV slot takes 2048, 3072 or 4096", path, bits)}
		}
		if sk.E != 65537 {
			return nil, time.Time{}, &UsageError{Msg: fmt.Sprintf("--import %s: RSA public exponent %d: PIV cards take only 65537", path, sk.E)}
		}
		return sk, k.Public.CreationTime, nil
	case *ecdsa.PrivateKey:
		if sk.Curve != elliptic.P256() && sk.Curve != elliptic.P384() {
			return nil, time.Time{}, &UsageError{Msg: fmt.Sprintf("--import %s: ECDSA curve %s: a PIV slot takes P-256 or P-384", path, sk.Curve.Params().Name)}
		}
		return sk, k.Public.CreationTime, nil
	}
	return nil, time.Time{}, &UsageError{Msg: fmt.Sprintf("--import %s: the signing key is %T: PIV slots take RSA or ECDSA P-256/P-384 (not Ed25519)", path, k.Signer)}
}

// readManagementKey reads a hex management key (24 bytes for 3DES; 16, 24
// or 32 for AES) from a private file.
func readManagementKey(path string) ([]byte, error) {
	line, err := backend.ReadPassphrase(path)
	if err != nil {
		return nil, err
	}
	defer clear(line)
	key, err := hex.DecodeString(strings.TrimSpace(string(line)))
	if err != nil {
		return nil, fmt.Errorf("%s: the management key must be hex", path)
	}
	switch len(key) {
	case 16, 24, 32:
		return key, nil
	}
	return nil, fmt.Errorf("%s: a management key has 16, 24 or 32 bytes, not %d", path, len(key))
}
