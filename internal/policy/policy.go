// Package policy decides whether a request may be signed: what kind of
// artifact it is (detected from the bytes while they stream through the hash
// pass), and how often the profile has signed lately (counted from the audit
// log under its lock).
//
// Refusals are typed errors whose messages name the rule that refused, so
// cmd/signstar can put them in the audit record's reason as they are.
package policy

import (
	"fmt"
	"strings"

	"github.com/signstar/signstar/internal/config"
)

// Kinds the detector reports. Unknown data is "", which only a profile with
// kinds = ["any"] may sign.
const (
	KindPackage = "pacman-package"
	KindDB      = "pacman-db"
	KindISO     = "iso"
	KindUnknown = ""
)

// KindError refuses an artifact whose kind the profile does not allow.
type KindError struct {
	Kind    string   // detected kind, "" for unknown data
	Note    string   // for unknown data, why, when the detector could say
	Profile string   // profile name
	Allowed []string // the profile's kinds
}

func (e *KindError) Error() string {
	k := e.Kind
	if k == KindUnknown {
		k = "unknown (not a pacman-package, pacman-db or iso)"
		if e.Note != "" {
			k = "unknown (not a pacman-package, pacman-db or iso: " + e.Note + ")"
		}
	}
	return fmt.Sprintf("kind %s not allowed in profile %s (kinds: %s)", k, e.Profile, strings.Join(e.Allowed, ", "))
}

// CheckKind returns a *KindError unless p may sign an artifact of kind;
// note is the Detector's Note, said in the refusal of unknown data.
func CheckKind(p *config.Profile, kind, note string) error {
	if p.AllowsKind(kind) {
		return nil
	}
	if kind != KindUnknown {
		note = ""
	}
	return &KindError{Kind: kind, Note: note, Profile: p.Name, Allowed: append([]string(nil), p.Kinds...)}
}
