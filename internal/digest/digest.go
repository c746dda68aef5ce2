// Package digest is the one list of the hashes signstar signs with: their
// names in the configuration, the command string and the audit log, and
// their OpenPGP identifiers.
package digest

import (
	"crypto"
	_ "crypto/sha256" // registers crypto.SHA256
	_ "crypto/sha512" // registers crypto.SHA512
)

type alg struct {
	name string
	hash crypto.Hash
	id   byte // OpenPGP hash algorithm (RFC 4880, 9.4)
}

var algs = []alg{
	{"sha256", crypto.SHA256, 8},
	{"sha512", crypto.SHA512, 10},
}

// Names are the hash names, in the order the documentation lists them.
func Names() []string {
	n := make([]string, len(algs))
	for i, a := range algs {
		n[i] = a.name
	}
	return n
}

// Parse returns the hash called name, and false for any other name.
func Parse(name string) (crypto.Hash, bool) {
	for _, a := range algs {
		if a.name == name {
			return a.hash, true
		}
	}
	return 0, false
}

// Name is h's name, or "" when signstar does not sign with h.
func Name(h crypto.Hash) string {
	for _, a := range algs {
		if a.hash == h {
			return a.name
		}
	}
	return ""
}

// OpenPGPID is h's OpenPGP identifier, and false when signstar does not
// sign with h.
func OpenPGPID(h crypto.Hash) (byte, bool) {
	for _, a := range algs {
		if a.hash == h {
			return a.id, true
		}
	}
	return 0, false
}
