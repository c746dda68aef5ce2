package config

import (
	"fmt"
	"slices"
	"strings"
)

// BackendTPM signs with a key held in the host's TPM 2.0.
const BackendTPM = "tpm"

// DefaultTPMDevice is the kernel's TPM resource manager.
const DefaultTPMDevice = "/dev/tpmrm0"

// TPM is [profile.tpm].
type TPM struct {
	// Device is the TPM character device; tests give swtpm's command
	// socket instead.
	Device string `toml:"device"`
	// PCRs are the PCR indices the key is bound to; empty means not bound.
	PCRs []int `toml:"pcrs"`
	// AuthFile holds the key's auth value; "" means none.
	AuthFile string `toml:"auth_file"`
	// KeyBlob is the file `signstar tpm setup` wrote: the key, wrapped by
	// this TPM, and the PCR values it is bound to.
	KeyBlob string `toml:"key_blob"`
}

// IsZero reports whether no [profile.tpm] key was given.
func (t *TPM) IsZero() bool {
	return t.Device == "" && t.PCRs == nil && t.AuthFile == "" && t.KeyBlob == ""
}

// PCRList is the bound PCRs as the audit record's sandbox field names
// them: "7+16".
func (t *TPM) PCRList() string {
	s := make([]string, len(t.PCRs))
	for i, p := range t.PCRs {
		s[i] = fmt.Sprint(p)
	}
	return strings.Join(s, "+")
}

// checkTPM checks a tpm profile's [profile.tpm] and fills in the default
// device; e reports an error at a profile key.
func (p *Profile) checkTPM(e func(key, msg string) error) error {
	if p.PassphraseFile != "" {
		return e("passphrase_file", "tpm profiles use [profile.tpm] auth_file, not passphrase_file")
	}
	if p.GPGAgent != (GPGAgent{}) || p.PIV != (PIV{}) {
		return e("backend", "tpm profiles take no [profile.gpg_agent] or [profile.piv] table")
	}
	t := &p.TPM
	if t.Device == "" {
		t.Device = defaultOf("profile.tpm", "device")
	}
	for _, f := range []struct{ key, val string }{
		{"tpm.device", t.Device}, {"tpm.auth_file", t.AuthFile}, {"tpm.key_blob", t.KeyBlob},
	} {
		if f.val != "" && !strings.HasPrefix(f.val, "/") {
			return e(f.key, fmt.Sprintf("%q must be an absolute path", f.val))
		}
	}
	if t.KeyBlob == "" {
		return e("tpm.key_blob", "missing: the key blob file that signstar tpm setup writes, e.g. /etc/signstar/repo.tpmkey")
	}
	seen := map[int]bool{}
	for _, n := range t.PCRs {
		if n < 0 || n > 23 {
			return e("tpm.pcrs", fmt.Sprintf("%d is not a PCR: use 0 to 23", n))
		}
		if seen[n] {
			return e("tpm.pcrs", fmt.Sprintf("PCR %d is listed twice", n))
		}
		seen[n] = true
	}
	slices.Sort(t.PCRs)
	return nil
}
