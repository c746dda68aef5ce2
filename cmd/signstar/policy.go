package main

import (
	"errors"
	"time"

	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/config"
	"github.com/signstar/signstar/internal/policy"
)

// kindDetector watches the artifact's bytes as they stream by.
type kindDetector interface {
	Write(p []byte) (int, error) // never keeps p
	Kind() string                // at EOF: "pacman-package", "pacman-db", "iso" or ""
	Close()                      // stops any decompression still running
}

// newKindDetector returns the detector for the profile. Every profile gets
// one, kinds = ["any"] included, because the audit record names the kind of
// what was signed; for data that is not compressed it costs a 2 KiB copy.
func newKindDetector(p *config.Profile) kindDetector { return policy.NewDetector() }

// isRateRefusal tells a used-up rate (refused, exit 2) from a log that
// could not be read (failed, exit 1).
func isRateRefusal(err error) bool {
	var re *policy.RateError
	return errors.As(err, &re)
}

// checkKind refuses an artifact whose kind the profile does not allow, with
// a reason like "kind iso not allowed in profile repo (kinds: pacman-db,
// pacman-package)".
func checkKind(p *config.Profile, kind string) error { return policy.CheckKind(p, kind) }

// checkRate refuses when the profile's rate is used up: "rate 1/30d reached
// (last signed 2026-11-02T10:00:00Z)". tx holds the log's lock until the
// request's own record is appended. An unreadable log is an error that is
// not a *policy.RateError.
func checkRate(tx *audit.Tx, p *config.Profile, t time.Time) error {
	return policy.CheckRate(tx, p.Name, p.Rate, t)
}
