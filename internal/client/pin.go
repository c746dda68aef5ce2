package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/signstar/signstar/internal/backend"
)

// maxCertificate bounds what `pubkey` may answer.
const maxCertificate = 1 << 20

// Pinned is the certificate the client trusts, read from its file.
type Pinned struct {
	Path   string
	Entity *openpgp.Entity
	// Armored is the file's bytes.
	Armored []byte
}

// Fingerprint is the primary key's, uppercase hex.
func (p *Pinned) Fingerprint() string { return backend.Fingerprint(p.Entity.PrimaryKey) }

// UserIDs are the certificate's user IDs, in their order.
func (p *Pinned) UserIDs() []string {
	var out []string
	for _, id := range p.Entity.Identities {
		out = append(out, id.Name)
	}
	return out
}

// NotPinnedError says there is no pinned certificate yet.
type NotPinnedError struct{ Path string }

func (e *NotPinnedError) Error() string {
	return fmt.Sprintf("no pinned certificate at %s: run `signstar-client pin` once, and compare its fingerprint with the signing host's (`signstar pubkey` there)", e.Path)
}

// LoadPinned reads the pinned certificate of cfg.
func LoadPinned(cfg *Config) (*Pinned, error) {
	data, err := os.ReadFile(cfg.Certificate)
	if errors.Is(err, os.ErrNotExist) {
		return nil, &NotPinnedError{Path: cfg.Certificate}
	}
	if err != nil {
		return nil, fmt.Errorf("reading the pinned certificate: %v", err)
	}
	e, err := backend.ParseEntity(data)
	if err != nil {
		return nil, fmt.Errorf("the pinned certificate %s: %v (remove it and run `signstar-client pin` again)", cfg.Certificate, err)
	}
	if e.PrivateKey != nil {
		return nil, fmt.Errorf("the pinned certificate %s holds a secret key: pin the public certificate only", cfg.Certificate)
	}
	return &Pinned{Path: cfg.Certificate, Entity: e, Armored: data}, nil
}

// PinResult says what Pin did.
type PinResult struct {
	Pinned *Pinned
	// New is true when the certificate was written now, false when the
	// same one was pinned already.
	New bool
}

// MismatchError is a served certificate that is not the pinned one.
type MismatchError struct {
	Path          string
	Pinned, Serve string // fingerprints
}

func (e *MismatchError) Error() string {
	what := "another certificate"
	if e.Pinned == e.Serve {
		what = "the same key in a changed certificate"
	}
	return fmt.Sprintf("the enclave serves %s (%s) than the one pinned in %s (%s): refusing; if the change is intended, check the new certificate with the signing host's operator, remove %s and pin again",
		what, e.Serve, e.Path, e.Pinned, e.Path)
}

// Pin fetches the enclave's certificate with `pubkey` and stores it when
// none is pinned; when one is, the served one must be byte for byte the
// same (`pubkey` answers the same bytes on every call).
func Pin(ctx context.Context, cfg *Config, r *Remote) (*PinResult, error) {
	words := []string{"pubkey"}
	if cfg.Profile != "" {
		words = append(words, "--profile", cfg.Profile)
	}
	served, err := r.Output(ctx, words, maxCertificate)
	if err != nil {
		return nil, err
	}
	e, err := backend.ParseEntity(served)
	if err != nil {
		return nil, fmt.Errorf("the enclave's `pubkey` answer is no certificate: %v", err)
	}
	if e.PrivateKey != nil {
		return nil, errors.New("the enclave's `pubkey` answer holds a secret key: refusing to store it")
	}
	old, err := LoadPinned(cfg)
	var np *NotPinnedError
	switch {
	case errors.As(err, &np):
		if err := WriteFileAtomic(cfg.Certificate, served, 0o644); err != nil {
			return nil, fmt.Errorf("storing the pinned certificate: %v", err)
		}
		return &PinResult{Pinned: &Pinned{Path: cfg.Certificate, Entity: e, Armored: served}, New: true}, nil
	case err != nil:
		return nil, err
	}
	if !bytes.Equal(bytes.TrimSpace(old.Armored), bytes.TrimSpace(served)) {
		return nil, &MismatchError{Path: cfg.Certificate, Pinned: old.Fingerprint(), Serve: backend.Fingerprint(e.PrimaryKey)}
	}
	return &PinResult{Pinned: old}, nil
}

// KeyIDs are the fingerprints and key IDs (long and short) by which the
// pinned certificate's keys can be named, uppercase.
func (p *Pinned) KeyIDs() []string {
	var out []string
	add := func(fp []byte) {
		s := strings.ToUpper(fmt.Sprintf("%X", fp))
		out = append(out, s)
		if len(s) >= 16 {
			out = append(out, s[len(s)-16:], s[len(s)-8:])
		}
	}
	add(p.Entity.PrimaryKey.Fingerprint)
	for _, sk := range p.Entity.Subkeys {
		add(sk.PublicKey.Fingerprint)
	}
	return out
}

// Names reports whether spec (gpg's -u or --list-secret-key argument)
// names the pinned certificate: a fingerprint or key ID of its primary
// key or a subkey (with or without 0x, a trailing '!' allowed), or a part
// of a user ID (gpg's substring match; "<mail>" and "=Exact Name" too).
func (p *Pinned) Names(spec string) bool {
	s := strings.TrimSpace(spec)
	if s == "" {
		return false
	}
	hex := strings.ToUpper(strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X"), "!"))
	if isHex(hex) && (len(hex) == 8 || len(hex) == 16 || len(hex) == 40 || len(hex) == 64) {
		for _, id := range p.KeyIDs() {
			if id == hex {
				return true
			}
		}
		return false
	}
	for _, uid := range p.UserIDs() {
		switch {
		case strings.HasPrefix(s, "="):
			if uid == s[1:] {
				return true
			}
		case strings.HasPrefix(s, "<"):
			if strings.Contains(uid, s) {
				return true
			}
		case strings.Contains(strings.ToLower(uid), strings.ToLower(strings.TrimPrefix(s, "*"))):
			return true
		}
	}
	return false
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
