package main

import (
	"fmt"
	"time"

	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/config"
)

// kindDetector watches the artifact's bytes as they stream by.
type kindDetector interface {
	Write(p []byte) (int, error) // never keeps p
	Kind() string                // at EOF: "pacman-package", "pacman-db", "iso" or ""
}

// newKindDetector returns the detector for the profile, or nil when the
// profile does not need one.
//
// Hook for the policy owner.
func newKindDetector(p *config.Profile) kindDetector { return nil }

// checkKind refuses an artifact whose kind the profile does not allow.
//
// Hook for the policy owner.
func checkKind(p *config.Profile, kind string) error {
	if p.AllowsKind(kind) {
		return nil
	}
	name := kind
	if name == "" {
		name = "unknown"
	}
	return fmt.Errorf("kind %s not allowed in profile %s", name, p.Name)
}

// checkRate refuses when the profile's rate is used up. tx holds the log's
// lock until the request's own record is appended.
//
// Hook for the policy owner.
func checkRate(tx *audit.Tx, p *config.Profile, t time.Time) error {
	since := t.Add(-p.Rate.Period)
	count, last := 0, ""
	err := tx.Scan(func(rec *audit.Record) bool {
		ts, err := time.Parse(audit.TimeFormat, rec.Time)
		if err == nil && ts.Before(since) {
			return false
		}
		if rec.Outcome == audit.Signed && rec.Profile == p.Name {
			count++
			if last == "" {
				last = rec.Time
			}
		}
		return count < p.Rate.N
	})
	if err != nil {
		return err
	}
	if count >= p.Rate.N {
		return fmt.Errorf("rate %s reached (last signed %s)", p.Rate.Text, last)
	}
	return nil
}
