package request

import (
	"errors"
	"fmt"
	"time"

	"github.com/signstar/signstar/internal/backend"
	"github.com/signstar/signstar/internal/config"
	"github.com/signstar/signstar/internal/signer"
)

// A key transition (config.Profile.Signers): before next_key_from the
// profile's key signs; from next_key_from until old_key_until key and
// next_key both sign, and the .sig holds key's packet then next_key's; from
// old_key_until on next_key signs alone. Both packets are made before the
// record is appended, and the record names both keys (key, next_key).

// openKeys opens the keys that sign now, and checks each against the
// profile's hash.
func (s *session) openKeys() *stop {
	p := s.profile
	now := s.Now()
	old, next := p.Signers(now)
	if old {
		k, err := s.Open(p, now)
		if err != nil {
			return halt(FailedBackend, expiredHint(p, now, backendMessage(p, err), err))
		}
		s.key = k
	}
	if next {
		np := p.WithKey(p.NextKey)
		k, err := s.Open(np, now)
		if err != nil {
			return halt(FailedBackend, "next_key: "+backendMessage(np, err))
		}
		if s.key == nil {
			s.key = k
		} else {
			s.next = k
		}
	}
	for _, k := range []*backend.Key{s.key, s.next} {
		if k == nil {
			continue
		}
		if err := backend.CheckHash(k.Public, s.hash); err != nil {
			return halt(FailedProfile, fmt.Sprintf("profile %s: %v", p.Name, err))
		}
	}
	return nil
}

// expiredHint adds to the refusal of an expired key what the operator can
// do with the profile's transition key, or how to set one up.
func expiredHint(p *config.Profile, now time.Time, msg string, err error) string {
	var ee *backend.ExpiredError
	if !errors.As(err, &ee) {
		return msg
	}
	if p.NextKey == "" {
		return msg + "; to hand over to a new key without a gap, name it in next_key with next_key_from and old_key_until (signstar.toml(5), key transitions)"
	}
	set := "old_key_until"
	if p.NextKeyFrom.After(now) {
		set = "next_key_from and old_key_until"
	}
	return fmt.Sprintf("%s; the profile's transition key next_key %s signs alone from old_key_until %s: set %s = %q to sign with it alone now",
		msg, p.NextKey, p.OldKeyUntil.Format(time.RFC3339), set, now.UTC().Format(config.TransitionDateLayout))
}

// signAll makes the signature packets of the keys that sign now, each with
// notes and verified against its key (signer.Sign), and returns them in one
// .sig. Its error is worded for stderr and the record (backendMessage).
func (s *session) signAll(in *signer.Input, created time.Time, notes ...signer.Notation) ([]byte, error) {
	sig, err := signer.Sign(in, s.key, created, notes...)
	if err != nil {
		return nil, errors.New(backendMessage(s.profile, err))
	}
	if s.next == nil {
		return sig, nil
	}
	second, err := signer.Sign(in, s.next, created, notes...)
	if err != nil {
		return nil, errors.New("next_key: " + backendMessage(s.profile.WithKey(s.profile.NextKey), err))
	}
	return append(sig, second...), nil
}

// PubkeyFile is the certificate pubkey serves at t: one, as the
// contract's pubkey has always been (signstar-client pins exactly one):
// key's until old_key_until, next_key's from then on. The next key's
// certificate reaches keyrings before its day from keygen's output (README,
// "Key transitions").
func PubkeyFile(p *config.Profile, t time.Time) string {
	if old, _ := p.Signers(t); old {
		return p.Key
	}
	return p.NextKey
}
