// Package policy decides whether a request may be signed: what kind of
// artifact it is (detected from the bytes while they stream through the hash
// pass), and how often the profile has signed lately (counted from the audit
// log under its lock).
//
// Refusals are typed errors whose messages name the rule that refused, so
// internal/request can put them in the audit record's reason as they are.
// The kinds (Kinds) and the rate grammar (ParseRate) live here, and the
// configuration takes them from here.
package policy

import (
	"fmt"
	"slices"
	"strings"
)

// Kinds the detector reports. Unknown data is "", which only a profile with
// kinds = ["any"] may sign.
const (
	KindPackage = "pacman-package"
	KindDB      = "pacman-db"
	KindISO     = "iso"
	KindUnknown = ""
	// KindAny, in a profile's kinds, allows every kind and unknown data.
	KindAny = "any"
)

// Kinds are the kinds the sniffers report (tar.go: KindPackage, KindDB;
// iso.go: KindISO), the one list the configuration's kinds take (besides
// KindAny) and refusals name.
var Kinds = []string{KindPackage, KindDB, KindISO}

// notAKind is how a refusal of unknown data says what it is not.
var notAKind = "not a " + strings.Join(Kinds[:len(Kinds)-1], ", ") + " or " + Kinds[len(Kinds)-1]

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
		k = "unknown (" + notAKind + ")"
		if e.Note != "" {
			k = "unknown (" + notAKind + ": " + e.Note + ")"
		}
	}
	return fmt.Sprintf("kind %s not allowed in profile %s (kinds: %s)", k, e.Profile, strings.Join(e.Allowed, ", "))
}

// AllowsKind reports whether a profile whose kinds are allowed may sign an
// artifact of kind.
func AllowsKind(allowed []string, kind string) bool {
	return slices.Contains(allowed, KindAny) || (kind != KindUnknown && slices.Contains(allowed, kind))
}

// CheckKind returns a *KindError unless profile, whose kinds are allowed,
// may sign an artifact of kind; note is the Detector's Note, said in the
// refusal of unknown data.
func CheckKind(profile string, allowed []string, kind, note string) error {
	if AllowsKind(allowed, kind) {
		return nil
	}
	if kind != KindUnknown {
		note = ""
	}
	return &KindError{Kind: kind, Note: note, Profile: profile, Allowed: slices.Clone(allowed)}
}
