package piv

import "fmt"

// This file is signstar's addition to piv-go (see SIGNSTAR.md): ending a
// session without leaving the PIN verified on the card.

// ResetPINStatus asks the card to forget that the PIN was verified: VERIFY
// with P1=FF for the PIN's key reference (SP 800-73-4 part 2, 3.2.1). A card
// that does not implement it answers with an error (an *apduErr, such as
// 6A86); callers then check with Retries and fall back to CloseReset.
func (yk *YubiKey) ResetPINStatus() error {
	cmd := apdu{instruction: insVerify, param1: 0xff, param2: 0x80}
	if _, err := yk.tx.Transmit(cmd); err != nil {
		return fmt.Errorf("reset pin status: %w", err)
	}
	return nil
}

// CloseReset releases the connection as Close does, but has PC/SC reset the
// card on disconnect (SCARD_RESET_CARD), which clears every security status
// the session set, on any card.
func (yk *YubiKey) CloseReset() error {
	err1 := yk.h.CloseReset()
	err2 := yk.ctx.Close()
	if err1 == nil {
		return err2
	}
	return err1
}
