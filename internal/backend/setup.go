package backend

import (
	"strings"
	"time"
	"unicode"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// UsageError means a setup command's options are wrong (exit 2), not the
// device it talks to.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// CheckUID checks the --uid a setup command puts into the certificate it
// makes: present, at most 1 KiB, valid UTF-8 without control characters.
func CheckUID(uid string) error {
	if strings.TrimSpace(uid) == "" {
		return &UsageError{`--uid "Name <mail>" is required`}
	}
	if len(uid) > 1024 {
		return &UsageError{"--uid is longer than 1024 bytes"}
	}
	for _, r := range uid {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return &UsageError{"--uid holds control characters or invalid UTF-8"}
		}
	}
	return nil
}

// CertSigningKeys reads the certificate at path and returns it with its
// keys that may sign at now, in the order Choose takes them.
func CertSigningKeys(path string, now time.Time) (*openpgp.Entity, []*packet.PublicKey, error) {
	e, err := ReadEntity(path)
	if err != nil {
		return nil, nil, err
	}
	keys, err := SigningKeys(e, now)
	return e, keys, err
}
