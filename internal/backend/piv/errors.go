package piv

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// RetriesError means the card has GuardRetries or fewer PIN attempts left, so
// the PIN was not presented: one more wrong PIN (a stale pin_file) would
// block the card. Nothing was spent.
type RetriesError struct {
	Retries int // attempts left; 0 means the PIN is blocked
}

func (e *RetriesError) Error() string {
	if e.Retries == 0 {
		return "the card's PIN is blocked (0 attempts left): unblock it with the PUK (yubico-piv-tool -a unblock-pin) and check pin_file"
	}
	return fmt.Sprintf("the card's PIN has only %d attempt left: refusing to spend it; check pin_file, then reset the counter with the right PIN (yubico-piv-tool -a verify-pin) or the PUK", e.Retries)
}

// PINError means the card refused the PIN from pin_file. It wraps the
// piv-go AuthErr.
type PINError struct {
	Retries int // attempts left after this one; 0 means now blocked
	Err     error
}

func (e *PINError) Error() string {
	if e.Retries == 0 {
		return "the card refused the PIN in pin_file and is now blocked (0 attempts left): fix pin_file, then unblock with the PUK"
	}
	s := "s"
	if e.Retries == 1 {
		s = ""
	}
	return fmt.Sprintf("the card refused the PIN in pin_file (%d attempt%s left): fix pin_file", e.Retries, s)
}

func (e *PINError) Unwrap() error { return e.Err }

// MismatchError means the key in the card's slot is not the certificate's
// signing key.
type MismatchError struct {
	Slot string
	// Card is the fingerprint the card's key would have with the
	// certificate key's creation time; "" when its algorithm differs.
	Card string
	Cert string // the certificate's signing key
}

func (e *MismatchError) Error() string {
	card := e.Card
	if card == "" {
		card = "a key of another algorithm"
	}
	return fmt.Sprintf("PIV slot %s holds %s, but the certificate's signing key is %s: wrong card, slot or certificate (piv setup writes the matching one)", e.Slot, card, e.Cert)
}

// BusyError means another session held the card for the whole wait.
type BusyError struct {
	Reader string
	Waited time.Duration
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("the card in %q stayed in use by another session for %v: try again later", e.Reader, e.Waited)
}

// ErrCardGone means the card was removed or stopped answering mid-request.
var ErrCardGone = errors.New("the card was removed or stopped answering")

// PC/SC return codes piv-go reports only as text (its error type is not
// exported); matched to classify them.
var (
	pcscSharing = []string{"other connections outstanding"} // SCARD_E_SHARING_VIOLATION
	pcscGone    = []string{
		"smart card has been removed",           // SCARD_W_REMOVED_CARD
		"power has been removed",                // SCARD_W_UNPOWERED_CARD
		"no Smart Card is currently",            // SCARD_E_NO_SMARTCARD
		"not currently available",               // SCARD_E_READER_UNAVAILABLE
		"smart card has been reset",             // SCARD_W_RESET_CARD
		"not responding to a reset",             // SCARD_W_UNRESPONSIVE_CARD
		"internal communications error",         // SCARD_F_COMM_ERROR
		"communications error with the smart",   // SCARD_E_COMM_DATA_LOST
		"not ready to accept commands",          // SCARD_E_NOT_READY
		"operation requires a Smart Card",       // SCARD_E_NO_SMARTCARD
		"the specified reader is not currently", // SCARD_E_READER_UNAVAILABLE
		"an internal error has been detected",   // SCARD_F_UNKNOWN_ERROR
		"resource manager has shut down",        // SCARD_E_SYSTEM_CANCELLED
		"Resource Manager is too busy",          // SCARD_E_SERVER_TOO_BUSY
		"reader driver does not meet",           // SCARD_E_READER_UNSUPPORTED
		"the supplied handle was invalid",       // SCARD_E_INVALID_HANDLE
		"transaction",                           // SCARD_E_NOT_TRANSACTED and friends
		"scard response too short",              // vpcd answers nothing once the card is gone
	}
)

func matches(err error, subs []string) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	for _, s := range subs {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// cardErr words a failure talking to the card; a vanished card becomes
// ErrCardGone.
func cardErr(what string, err error) error {
	if matches(err, pcscGone) {
		return fmt.Errorf("%s: %w (%v)", what, ErrCardGone, err)
	}
	return fmt.Errorf("%s: %v", what, err)
}
