// Package agent signs with keys held by a running gpg-agent, spoken to over
// its Assuan socket by a small client of our own (no gpgme, no gpg process).
//
// The certificate comes from a file; its signing keys are mapped to keygrips
// and the one GnuPG would sign with signs: the newest signing subkey the
// agent holds, else the primary (backend.SigningKeys has the rule). The
// connection is made in Open, so Sign needs no new file or socket once the
// sandbox is locked down.
//
// A socket path may also be GnuPG's socket redirection file
// ("%Assuan%\nsocket=PATH"); it is followed once, and only to an absolute
// PATH without variables.
package agent

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"sync"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/signstar/signstar/internal/backend"
)

// ErrKeyNotInAgent means the agent no longer holds the key it had when the
// connection was opened (deleted, or the agent was replaced).
var ErrKeyNotInAgent = errors.New("gpg-agent does not hold the secret key")

// ErrBadPassphrase means the agent rejected the passphrase from
// passphrase_file.
var ErrBadPassphrase = errors.New("gpg-agent rejected the passphrase")

// ErrNeedPassphrase means the agent asked for a passphrase and the profile
// has no passphrase_file.
var ErrNeedPassphrase = errors.New("the key in gpg-agent is passphrase-protected and the profile has no passphrase_file")

// HashTooShortError means the profile's hash is shorter than the ECDSA
// curve, which gpg-agent refuses to sign (a P-384 key needs sha512).
type HashTooShortError struct {
	Hash crypto.Hash
	Bits int // the curve size
}

func (e *HashTooShortError) Error() string {
	return fmt.Sprintf("gpg-agent does not sign a %d-bit %v digest with a %d-bit ECDSA key: set hash = \"sha512\" in the profile",
		e.Hash.Size()*8, e.Hash, e.Bits)
}

// NoKeyError means none of the certificate's signing keys is in the agent.
type NoKeyError struct {
	Fingerprint string   // the certificate's primary fingerprint
	Keygrips    []string // the keygrips asked for, in order
}

func (e *NoKeyError) Error() string {
	return fmt.Sprintf("gpg-agent holds none of the signing keys of certificate %s (keygrips %s): import the secret key into the agent",
		e.Fingerprint, strings.Join(e.Keygrips, ", "))
}

// Options are a gpg-agent profile's: [profile] key, passphrase_file and
// [profile.gpg_agent].
type Options struct {
	Cert           string // the public certificate file
	Socket         string // the agent's socket; "" asks gpgconf
	PassphraseFile string // answers the agent's passphrase inquiries
	PINFile        string // the PIN of a key on a card behind the agent
}

// Open reads the public certificate o.Cert, connects to the gpg-agent at
// o.Socket and returns the signing key that gpg would sign with: the newest
// signing subkey that the agent holds, else the primary key. If
// o.PassphraseFile is not empty, its first line answers the agent's
// passphrase inquiries (loopback pinentry); it is read now and kept in
// memory until Close. For a key on a smartcard behind the agent (card.go),
// o.PINFile's first line is the card's PIN, read now, sent at most once per
// signature and only after the card's retry counter was read.
func Open(o Options, now time.Time) (*backend.Key, error) {
	certPath, socket, passphraseFile, pinFile := o.Cert, o.Socket, o.PassphraseFile, o.PINFile
	cert, err := backend.ReadEntity(certPath)
	if err != nil {
		return nil, err
	}
	// A certificate that cannot sign is refused before the agent is asked.
	if _, err := backend.SigningKeys(cert, now); err != nil {
		return nil, err
	}
	var pass []byte
	if passphraseFile != "" {
		if pass, err = backend.ReadPassphrase(passphraseFile); err != nil {
			return nil, err
		}
	}
	s, err := connect(socket, pass)
	if err != nil {
		clear(pass)
		return nil, err
	}
	// The key GnuPG would sign with: for gpg too, a key's secret is
	// present when the agent has it (agent_probe_secret_key, HAVEKEY).
	var grips []string
	pub, err := backend.Choose(cert, now, func(k *packet.PublicKey) (bool, error) {
		g, err := KeygripOf(k)
		if err != nil {
			if aerr := backend.CheckAlgorithm(k); aerr != nil {
				return false, aerr
			}
			return false, fmt.Errorf("key %s: %v", backend.Fingerprint(k), err)
		}
		grips = append(grips, g.String())
		_, err = s.c.transact("HAVEKEY "+g.String(), nil)
		if errors.Is(err, ErrKeyNotInAgent) {
			return false, nil
		}
		s.grip = g
		return err == nil, err
	})
	if err != nil {
		s.Close()
		var nse *backend.NoSecretError
		if errors.As(err, &nse) {
			return nil, &NoKeyError{Fingerprint: nse.Fingerprint, Keygrips: grips}
		}
		return nil, err
	}
	s.pub = pub
	if s.public, err = backend.StdPublic(pub); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.attachCard(pinFile); err != nil {
		s.Close()
		return nil, err
	}
	return &backend.Key{Cert: cert, Public: pub, Signer: s, Closer: s}, nil
}

// connect dials the agent and sets the session options.
func connect(socket string, pass []byte) (*Signer, error) {
	c, err := dial(socket, DefaultTimeout)
	if err != nil {
		return nil, err
	}
	s := &Signer{c: c, pass: pass}
	// Loopback: the agent asks us (INQUIRE PASSPHRASE) rather than popping
	// a pinentry on some display nobody watches. An agent that refuses it
	// can still sign with unprotected keys, so only a configured passphrase
	// makes the refusal fatal.
	if _, err := c.transact("OPTION pinentry-mode=loopback", nil); err != nil {
		var ae *AgentError
		if !errors.As(err, &ae) || pass != nil {
			c.Close()
			return nil, fmt.Errorf("%w (a passphrase_file needs allow-loopback-pinentry in gpg-agent.conf)", err)
		}
		s.noLoopback = err
	}
	return s, nil
}

// Signer is a crypto.Signer whose key is in gpg-agent. It follows the
// conventions of backend.Key. Calls are serialised on the one connection.
type Signer struct {
	mu     sync.Mutex
	c      *conn
	pass   []byte
	pub    *packet.PublicKey
	public crypto.PublicKey
	grip   Keygrip
	card   *card // nil unless the key is on a smartcard
	// noLoopback is the agent's refusal of loopback pinentry, if it
	// refused: a card's PIN could then not come from pin_file.
	noLoopback error
	closed     bool
}

// Public returns the standard-library form of the signing key.
func (s *Signer) Public() crypto.PublicKey { return s.public }

// Close ends the session and forgets the passphrase.
func (s *Signer) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	clear(s.pass)
	if s.card != nil {
		clear(s.card.pin)
	}
	return s.c.Close()
}

// gcrypt's hash algorithm numbers for SETHASH; they equal OpenPGP's.
var gcryHash = map[crypto.Hash]int{crypto.SHA256: 8, crypto.SHA384: 9, crypto.SHA512: 10}

// Sign asks the agent to sign digest: SIGKEY, SETHASH, PKSIGN. For EdDSA
// (opts.HashFunc() == 0) the digest is the message; the hash named in
// SETHASH is the one its length implies, as gpg sends the signature's hash
// algorithm with the digest.
func (s *Signer) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("gpg-agent session is closed")
	}
	h := opts.HashFunc()
	if h == 0 {
		if s.pub.PubKeyAlgo != packet.PubKeyAlgoEdDSA {
			return nil, errors.New("gpg-agent: a hash function is required for RSA and ECDSA")
		}
		switch len(digest) {
		case 32:
			h = crypto.SHA256
		case 48:
			h = crypto.SHA384
		case 64:
			h = crypto.SHA512
		}
	}
	algo, ok := gcryHash[h]
	if !ok || len(digest) != h.Size() {
		return nil, fmt.Errorf("gpg-agent: cannot sign a %d-byte digest as %v", len(digest), h)
	}
	// gpg-agent refuses (GPG_ERR_INV_LENGTH) an ECDSA digest shorter than
	// the curve order, or than 512 bits for P-521 (agent/pksign.c); say so
	// before asking.
	if pub, ok := s.public.(*ecdsa.PublicKey); ok && len(digest)*8 < min(pub.Curve.Params().BitSize, 512) {
		return nil, &HashTooShortError{Hash: h, Bits: pub.Curve.Params().BitSize}
	}
	// A card key: the card must still be there, and its PIN is sent only
	// with more than GuardRetries attempts left, read right before.
	secret := s.pass
	if s.card != nil {
		if _, err := s.guardCard(true); err != nil {
			return nil, err
		}
		secret = s.card.pin
	}
	if _, err := s.c.transact("SIGKEY "+s.grip.String(), nil); err != nil {
		return nil, err
	}
	if _, err := s.c.transact(fmt.Sprintf("SETHASH %d %s", algo, strings.ToUpper(hex.EncodeToString(digest))), nil); err != nil {
		return nil, err
	}
	asked := 0
	reply, err := s.c.transact("PKSIGN", func(keyword, _ string) ([]byte, bool) {
		switch keyword {
		case "PASSPHRASE":
			asked++
			// A second inquiry means the first answer was wrong; the
			// same answer again cannot be right.
			if secret == nil || asked > 1 {
				return nil, false
			}
			return append([]byte(nil), secret...), true
		case "PINENTRY_LAUNCHED":
			// Only informational: an empty answer lets the agent go on.
			return nil, true
		}
		return nil, false
	})
	if err != nil {
		if s.card != nil {
			return nil, s.cardSignError(err)
		}
		return nil, s.signError(err, asked)
	}
	sv, err := parseSigVal(reply)
	if err != nil {
		return nil, fmt.Errorf("%w: PKSIGN: %v", ErrProtocol, err)
	}
	return s.convert(sv)
}

// signError explains a failed PKSIGN in terms of the passphrase exchange.
func (s *Signer) signError(err error, asked int) error {
	var ae *AgentError
	if !errors.As(err, &ae) {
		return err
	}
	switch ae.Code & 0xffff {
	case codeCanceled, codeFullyCanceled, codeNoPinentry, codeAssCanceled:
		if asked > 0 && s.pass == nil {
			return ErrNeedPassphrase
		}
		if asked > 1 {
			return fmt.Errorf("%w: %v", ErrBadPassphrase, err)
		}
	}
	return err
}

// convert turns the agent's sig-val into the backend.Key conventions.
func (s *Signer) convert(sv *sigVal) ([]byte, error) {
	switch pub := s.public.(type) {
	case *rsa.PublicKey:
		if sv.algo != "rsa" {
			return nil, fmt.Errorf("%w: %s signature for an RSA key", ErrProtocol, sv.algo)
		}
		sig, err := leftPad(sv.s, pub.Size())
		if err != nil {
			return nil, fmt.Errorf("%w: RSA signature: %v", ErrProtocol, err)
		}
		return sig, nil
	case *ecdsa.PublicKey:
		if sv.algo != "ecdsa" {
			return nil, fmt.Errorf("%w: %s signature for an ECDSA key", ErrProtocol, sv.algo)
		}
		return asn1.Marshal(struct{ R, S *big.Int }{mpi(sv.r), mpi(sv.s)})
	case ed25519.PublicKey:
		if sv.algo != "eddsa" {
			return nil, fmt.Errorf("%w: %s signature for an Ed25519 key", ErrProtocol, sv.algo)
		}
		r, err := leftPad(sv.r, 32)
		if err != nil {
			return nil, fmt.Errorf("%w: Ed25519 R: %v", ErrProtocol, err)
		}
		ss, err := leftPad(sv.s, 32)
		if err != nil {
			return nil, fmt.Errorf("%w: Ed25519 S: %v", ErrProtocol, err)
		}
		return append(r, ss...), nil
	}
	return nil, fmt.Errorf("unsupported key type %T", s.public)
}
