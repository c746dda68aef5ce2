package tpm

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// NoTPMError means there is no TPM at the configured path.
type NoTPMError struct {
	Path string
	Err  error
}

func (e *NoTPMError) Error() string {
	return fmt.Sprintf("no TPM at %s (%v): check [profile.tpm] device, that the TPM is enabled in the firmware and that the kernel's tpm_crb or tpm_tis driver is loaded", e.Path, errText(e.Err))
}

func (e *NoTPMError) Unwrap() error { return e.Err }

// BusyError means another process holds the TPM: /dev/tpm0 opened by
// tpm2-abrmd or a tool (Open), or a TPM that did not answer within Waited.
type BusyError struct {
	Path   string
	Open   bool
	Waited time.Duration
}

func (e *BusyError) Error() string {
	if e.Open {
		return fmt.Sprintf("TPM %s is in use by another process (tpm2-abrmd or a tool holds it): use the kernel resource manager /dev/tpmrm0 as [profile.tpm] device", e.Path)
	}
	return fmt.Sprintf("TPM %s did not answer within %v: another process holds it, or it is busy; try again, and check what else uses the TPM", e.Path, e.Waited)
}

// PCRError means the PCRs the key is bound to no longer hold the values
// they held when the key was made: the machine booted something else.
// Changed lists the PCR indices that differ.
type PCRError struct {
	Changed []int
}

func (e *PCRError) Error() string {
	return fmt.Sprintf("PCR %s changed since the key was made (the machine booted other firmware, boot loader or kernel, or its Secure Boot state changed): the TPM will not sign; if this boot state is the intended one, re-provision with 'signstar tpm setup'", joinInts(e.Changed, ", "))
}

// AuthError means the TPM rejected the auth value from auth_file. The
// failure counts towards the TPM's dictionary-attack lockout; Left is the
// number of failures the TPM still allows before it locks out.
type AuthError struct {
	File string
	Left int
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("the TPM rejected the auth value in %s (%d more failures before the TPM locks out): fix auth_file", e.File, e.Left)
}

// LockoutError means signstar did not try the auth value: the TPM is in
// dictionary-attack lockout, or one more failure would put it there.
type LockoutError struct {
	Counter, Max int
	InLockout    bool
}

func (e *LockoutError) Error() string {
	if e.InLockout {
		return fmt.Sprintf("the TPM is in dictionary-attack lockout (%d of %d failures): nothing was tried; wait for it to recover or reset it (tpm2_dictionarylockout --clear-lockout), and fix auth_file first", e.Counter, e.Max)
	}
	return fmt.Sprintf("the TPM's dictionary-attack counter is at %d of %d: signstar does not try the auth value with one failure left; fix auth_file, then reset the counter (tpm2_dictionarylockout --clear-lockout) or wait for it to decay", e.Counter, e.Max)
}

// ForeignBlobError means the key blob was made by another TPM, or by this
// one before its owner hierarchy was cleared: its parent key is not this
// TPM's storage root key.
type ForeignBlobError struct {
	Path string
}

func (e *ForeignBlobError) Error() string {
	return fmt.Sprintf("key blob %s was made by another TPM (or before this TPM was cleared): its key cannot be loaded here; run 'signstar tpm setup' on this host", e.Path)
}

func joinInts(l []int, sep string) string {
	s := make([]string, len(l))
	for i, n := range l {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, sep)
}
