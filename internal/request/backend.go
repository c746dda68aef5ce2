package request

import (
	"errors"
	"fmt"
	"time"

	"github.com/signstar/signstar/internal/backend"
	"github.com/signstar/signstar/internal/backend/agent"
	"github.com/signstar/signstar/internal/backend/keyfile"
	"github.com/signstar/signstar/internal/backend/piv"
	"github.com/signstar/signstar/internal/backend/tpm"
	"github.com/signstar/signstar/internal/config"
)

// OpenBackend opens the profile's key. It runs before the sandbox locks
// down: every file, socket or card the backend needs must be opened here.
func OpenBackend(p *config.Profile, t time.Time) (*backend.Key, error) {
	switch p.Backend {
	case config.BackendKeyfile:
		return keyfile.Open(keyfile.Options{Key: p.Key, PassphraseFile: p.PassphraseFile}, t)
	case config.BackendGPGAgent:
		return agent.Open(agent.Options{Cert: p.Key, Socket: p.GPGAgent.Socket, PassphraseFile: p.PassphraseFile, PINFile: p.GPGAgent.PINFile}, t)
	case config.BackendPIV:
		return piv.Open(piv.Options{Cert: p.Key, Reader: p.PIV.Reader, Slot: p.PIV.Slot, PINFile: p.PIV.PINFile}, t)
	case config.BackendTPM:
		return tpm.Open(TPMOptions(p), t)
	}
	return nil, fmt.Errorf("unknown backend %q", p.Backend)
}

// TPMOptions are the tpm backend's options of a tpm profile.
func TPMOptions(p *config.Profile) tpm.Options {
	return tpm.Options{Cert: p.Key, Device: p.TPM.Device, PCRs: p.TPM.PCRs, AuthFile: p.TPM.AuthFile, KeyBlob: p.TPM.KeyBlob}
}

// backendEnforced is what the backend enforces besides the sandbox, for the
// audit record's sandbox field: "tpm-pcr=7+16" when the TPM key signs only
// while PCRs 7 and 16 hold the values they had at setup; "" for the others.
func backendEnforced(p *config.Profile) string {
	if p.Backend == config.BackendTPM && len(p.TPM.PCRs) > 0 {
		return "tpm-pcr=" + p.TPM.PCRList()
	}
	return ""
}

// withEnforced appends backendEnforced(p) to a sandbox report.
func withEnforced(report string, p *config.Profile) string {
	if e := backendEnforced(p); e != "" {
		return report + "," + e
	}
	return report
}

// backendMessage words a backend error for stderr and the audit record: what
// went wrong, and what to do about it. Errors never carry key material.
func backendMessage(p *config.Profile, err error) string {
	switch {
	case err == keyfile.ErrPassphrase:
		return fmt.Sprintf("profile %s: the passphrase in %s does not unlock %s: fix passphrase_file", p.Name, p.PassphraseFile, p.Key)
	case err == keyfile.ErrNeedPassphrase:
		return fmt.Sprintf("profile %s: %s is passphrase-protected: set passphrase_file", p.Name, p.Key)
	case errors.Is(err, agent.ErrBadPassphrase):
		return fmt.Sprintf("profile %s: gpg-agent rejected the passphrase in %s: fix passphrase_file", p.Name, p.PassphraseFile)
	case errors.Is(err, agent.ErrNeedPIN):
		return fmt.Sprintf("profile %s: the key in gpg-agent is on a smartcard: set pin_file in [profile.gpg_agent]", p.Name)
	case errors.Is(err, agent.ErrNeedPassphrase):
		return fmt.Sprintf("profile %s: the key in gpg-agent is passphrase-protected: set passphrase_file", p.Name)
	}
	return fmt.Sprintf("profile %s: %v", p.Name, err)
}

// CheckBackend opens the profile's key and closes it again, for `signstar
// doctor`; the error is worded as a sign request's would be. During a key
// transition it opens both keys, and before one the next key too, so that
// a next key that would fail is found before its day; after
// old_key_until only the next key.
func CheckBackend(p *config.Profile, t time.Time) error {
	if old, _ := p.Signers(t); old {
		k, err := OpenBackend(p, t)
		if err != nil {
			return errors.New(expiredHint(p, t, backendMessage(p, err), err))
		}
		k.Close()
		if exp, ok := backend.Expiry(k.Cert); ok && p.NextKey != "" && exp.Before(p.OldKeyUntil) {
			return fmt.Errorf("profile %s: key %s expires at %s, before old_key_until %s, and signing fails from then: set old_key_until to that day or earlier, or extend the key (gpg --quick-set-expire)",
				p.Name, backend.Fingerprint(k.Cert.PrimaryKey), exp.UTC().Format(time.RFC3339), p.OldKeyUntil.Format(time.RFC3339))
		}
	}
	if p.NextKey == "" {
		return nil
	}
	np := p.WithKey(p.NextKey)
	k, err := OpenBackend(np, t)
	if err != nil {
		return errors.New("next_key: " + backendMessage(np, err))
	}
	return k.Close()
}
