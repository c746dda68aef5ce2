package config

import (
	"fmt"
	"strings"
	"time"
)

// A key transition: a profile names its next key and two instants. Before
// next_key_from only key signs; from next_key_from until old_key_until
// every signature holds two signature packets, key's then next_key's; from
// old_key_until on only next_key signs. The switch needs no edit of the
// file on the day. next_key_from = old_key_until is a switch without an
// overlap, the one that suits pacman (README, "Key transitions").

// TransitionDateLayout is how next_key_from and old_key_until may be
// written besides RFC 3339: a date, meaning its midnight UTC.
const TransitionDateLayout = "2006-01-02"

// ParseInstant reads a transition instant: "2027-01-01" (00:00 UTC) or an
// RFC 3339 time with its offset ("2027-01-01T12:00:00Z").
func ParseInstant(s string) (time.Time, error) {
	if t, err := time.Parse(TransitionDateLayout, s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a date: use YYYY-MM-DD (midnight UTC) or an RFC 3339 time such as 2027-01-01T12:00:00Z", s)
	}
	return t.UTC(), nil
}

// transitionBackends are the backends whose next key is named by next_key
// alone. A piv or tpm key is its slot or key blob, not its certificate: a
// second one would need a second slot, PIN and card session, or a second
// blob and auth value.
var transitionBackends = []string{BackendKeyfile, BackendGPGAgent}

func (p *Profile) checkTransition(e func(key, msg string) error) error {
	if p.NextKey == "" {
		switch {
		case p.NextKeyFromText != "":
			return e("next_key_from", "set without next_key: name the next key, or remove it")
		case p.OldKeyUntilText != "":
			return e("old_key_until", "set without next_key: name the next key, or remove it")
		}
		return nil
	}
	if !contains(transitionBackends, p.Backend) {
		return e("next_key", fmt.Sprintf("%s profiles cannot name a next key (the key is the %s, not the certificate): use a %s profile, or switch keys with a new profile", p.Backend, map[string]string{BackendPIV: "card's slot", BackendTPM: "key blob"}[p.Backend], orQuoted(transitionBackends)))
	}
	if p.NextKey == p.Key {
		return e("next_key", fmt.Sprintf("%q is the profile's key: name the new key", p.NextKey))
	}
	if p.NextKeyFromText == "" {
		return e("next_key_from", "missing: when next_key starts to sign beside key, e.g. \"2027-01-01\"")
	}
	if p.OldKeyUntilText == "" {
		return e("old_key_until", "missing: when key stops signing and next_key signs alone, e.g. \"2027-02-01\"")
	}
	var err error
	if p.NextKeyFrom, err = ParseInstant(strings.TrimSpace(p.NextKeyFromText)); err != nil {
		return e("next_key_from", err.Error())
	}
	if p.OldKeyUntil, err = ParseInstant(strings.TrimSpace(p.OldKeyUntilText)); err != nil {
		return e("old_key_until", err.Error())
	}
	if p.OldKeyUntil.Before(p.NextKeyFrom) {
		return e("old_key_until", fmt.Sprintf("%s is before next_key_from %s: the old key must sign until the next key starts", p.OldKeyUntilText, p.NextKeyFromText))
	}
	return nil
}

// Signers says which keys sign at t: key (old), next_key (next), or both.
// Without a next_key it is key alone.
func (p *Profile) Signers(t time.Time) (old, next bool) {
	if p.NextKey == "" {
		return true, false
	}
	return t.Before(p.OldKeyUntil), !t.Before(p.NextKeyFrom)
}

// WithKey is a copy of p whose key is path, for opening the next key with
// the profile's backend options.
func (p *Profile) WithKey(path string) *Profile {
	c := *p
	c.Key = path
	return &c
}
