// Package piv opens a signing key held in a PIV smartcard slot (a YubiKey,
// or any card piv-go speaks to through PC/SC) and provisions one
// (Setup). The OpenPGP certificate lives in a file; the card holds only the
// private key and signs digests with it, so the key never leaves the card.
//
// The PIN guard: before presenting the PIN the card's retry counter is read,
// and at GuardRetries or fewer attempts left nothing is presented
// (RetriesError), so a stale pin_file cannot block the card.
package piv

import (
	"crypto"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
	pivgo "github.com/go-piv/piv-go/v2/piv"

	"github.com/signstar/signstar/internal/backend"
	"github.com/signstar/signstar/internal/signer"
)

// GuardRetries is the number of PIN attempts left at which signstar stops
// presenting the PIN.
const GuardRetries = 1

// OpenTimeout bounds the wait for a card another session holds open (at
// Open and again at each Sign); piv-go opens cards exclusively. Tests
// shorten it.
var OpenTimeout = 10 * time.Second

// SlotNames are the slots a profile may name, as the configuration and
// messages list them: the four key slots and the retired ones.
var SlotNames = []string{"9a", "9c", "9d", "9e", "82-95"}

// ParseSlot maps a slot name (SlotNames) to piv-go's Slot.
func ParseSlot(name string) (pivgo.Slot, error) {
	switch strings.ToLower(name) {
	case "9a":
		return pivgo.SlotAuthentication, nil
	case "9c":
		return pivgo.SlotSignature, nil
	case "9d":
		return pivgo.SlotKeyManagement, nil
	case "9e":
		return pivgo.SlotCardAuthentication, nil
	}
	if n, err := strconv.ParseUint(name, 16, 8); err == nil && len(name) == 2 {
		if s, ok := pivgo.RetiredKeyManagementSlot(uint32(n)); ok {
			return s, nil
		}
	}
	return pivgo.Slot{}, fmt.Errorf("%q is not a PIV slot: use %s", name, strings.Join(SlotNames, ", "))
}

// Options are a piv profile's: [profile] key and [profile.piv].
type Options struct {
	Cert    string // the certificate `signstar piv setup` wrote
	Reader  string // a part of the reader's name
	Slot    string // "9a", "9c", "9d", "9e" or a retired slot "82".."95"
	PINFile string
}

// Open reads the certificate o.Cert, opens the card in the reader whose
// name contains o.Reader, checks that o.Slot holds the certificate's
// signing key and returns a key that signs with it. The PIN from
// o.PINFile is read now (before any sandbox) and presented at Sign.
//
// The card is released before Open returns: other sessions may use it
// while the artifact is read. Open keeps a pcscd connection instead
// (pivgo.PreparePCSC), and Sign claims the card again through it,
// exclusively, waiting up to OpenTimeout while another session holds it,
// and releases it afterwards: signing needs no new file or socket. Sign
// refuses a card whose slot no longer holds the same key.
func Open(o Options, now time.Time) (*backend.Key, error) {
	e, keys, err := backend.CertSigningKeys(o.Cert, now)
	if err != nil {
		return nil, err
	}
	slot, err := ParseSlot(o.Slot)
	if err != nil {
		return nil, err
	}
	pin, err := readPIN(o.PINFile)
	if err != nil {
		return nil, err
	}
	// The connection to pcscd that Sign will use, dialed now, while
	// sockets may still be opened.
	if err := pivgo.PreparePCSC(); err != nil {
		clear(pin)
		return nil, fmt.Errorf("connecting to pcscd (is pcscd running?): %v", err)
	}
	yk, name, err := openCard(o.Reader)
	if err != nil {
		clear(pin)
		return nil, err
	}
	s := &cardSigner{reader: name, slot: slot, slotName: o.Slot, pin: pin}
	err = s.read(yk)
	if err == nil {
		s.cert, err = s.match(keys)
	}
	if err == nil {
		// SigningKeys leaves the algorithm to the chosen key: the card's.
		err = backend.CheckAlgorithm(s.cert)
	}
	if err == nil {
		// Refuse early, before the artifact is read, when the PIN may
		// not be tried; Sign checks again right before presenting it.
		err = s.guard()
	}
	s.release()
	if err != nil {
		s.Close()
		return nil, err
	}
	return &backend.Key{Cert: e, Public: s.cert, Signer: s, Closer: s}, nil
}

func readPIN(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("no pin_file: the card's PIN is needed to sign")
	}
	pin, err := backend.ReadPassphrase(path)
	if err != nil {
		return nil, err
	}
	if len(pin) > 8 {
		clear(pin)
		return nil, fmt.Errorf("%s: a PIV PIN has at most 8 characters", path)
	}
	return pin, nil
}

// openCard opens the first reader whose name contains reader, waiting up to
// OpenTimeout while another session holds it, and returns the reader's
// name.
func openCard(reader string) (*pivgo.YubiKey, string, error) {
	cards, err := pivgo.Cards()
	if err != nil {
		return nil, "", fmt.Errorf("listing smartcard readers (is pcscd running?): %v", err)
	}
	name := ""
	for _, c := range cards {
		if strings.Contains(c, reader) {
			name = c
			break
		}
	}
	if name == "" {
		return nil, "", fmt.Errorf("no smartcard reader matches %q (readers: %s): check [profile.piv] reader and that the card is plugged in", reader, listOrNone(cards))
	}
	yk, err := claim(name)
	return yk, name, err
}

// claim opens the card in the reader called name, exclusively, waiting up
// to OpenTimeout while another session holds it. Each try is a new PC/SC
// context, on the connection PreparePCSC kept when it is idle.
func claim(name string) (*pivgo.YubiKey, error) {
	start := time.Now()
	for {
		yk, err := pivgo.Open(name)
		if err == nil {
			return yk, nil
		}
		// Only a refused connect is "busy": piv-go reports the others
		// after it connected, and then keeps the card (its Open does not
		// release it when SELECT fails), so waiting would not help.
		if !strings.HasPrefix(err.Error(), "connecting to smart card:") || !matches(err, pcscSharing) {
			return nil, cardErr(fmt.Sprintf("opening the card in %q", name), err)
		}
		if time.Since(start) >= OpenTimeout {
			return nil, &BusyError{Reader: name, Waited: OpenTimeout}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// cardSigner signs with a card slot. It is the crypto.Signer of backend.Key
// and its Closer. It holds the card (yk) only within Open and Sign.
type cardSigner struct {
	mu       sync.Mutex
	reader   string // the reader's full name
	slot     pivgo.Slot
	slotName string
	cert     *packet.PublicKey // the certificate key the slot holds
	pin      []byte
	closed   bool

	// Read from the card by read, each time it is claimed.
	yk       *pivgo.YubiKey
	pub      crypto.PublicKey
	priv     crypto.Signer
	policy   pivgo.PINPolicy
	verified bool
}

// read takes the claimed card yk and reads the slot's public key and PIN
// policy (YubiKey metadata, else the slot's X.509 certificate).
func (s *cardSigner) read(yk *pivgo.YubiKey) error {
	s.yk, s.pub, s.priv, s.policy, s.verified = yk, nil, nil, pivgo.PINPolicyAlways, false
	slot := s.slot
	info, err := yk.KeyInfo(slot)
	switch {
	case err == nil && info.PublicKey != nil:
		s.pub = info.PublicKey
		if info.PINPolicy != 0 {
			s.policy = info.PINPolicy
		}
	case errors.Is(err, pivgo.ErrNotFound):
		return fmt.Errorf("PIV slot %s holds no key: provision it with signstar piv setup", slot)
	default:
		cert, cerr := yk.Certificate(slot)
		if cerr != nil {
			if err == nil {
				err = cerr
			}
			return cardErr(fmt.Sprintf("reading the key in PIV slot %s", slot), err)
		}
		s.pub = cert.PublicKey
	}
	// The PIN is presented by Sign itself, after the guard, so piv-go is
	// told not to.
	priv, err := yk.PrivateKey(slot, s.pub, pivgo.KeyAuth{PINPolicy: pivgo.PINPolicyNever})
	if err != nil {
		return fmt.Errorf("PIV slot %s: %v", slot, err)
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return fmt.Errorf("PIV slot %s holds a key that cannot sign", slot)
	}
	s.priv = signer
	return nil
}

// release closes the claimed card, if any, for other sessions. It leaves
// the PIN's security status as it found it: Open presents no PIN.
func (s *cardSigner) release() {
	if s.yk != nil {
		s.yk.Close()
	}
	s.yk, s.priv = nil, nil
}

// logout releases the claimed card, if any, leaving no PIN verified on it
// (endSession), as Sign does on every path once it claimed the card.
func (s *cardSigner) logout() error {
	var err error
	if s.yk != nil {
		err = endSession(s.yk)
	}
	s.yk, s.priv, s.verified = nil, nil, false
	return err
}

// endSession closes yk so that the next session, in any process, finds the
// PIN not verified: a slot with PIN policy "once" would otherwise sign for
// whoever opens the card next, without a PIN. It asks the card to reset the
// PIN's security status (VERIFY P1=FF, SP 800-73-4 part 2, 3.2.1) and
// checks with an empty VERIFY that the card did; when the card refused
// (Yubico documents VERIFY with P1=00 only) or still reports the PIN
// verified, it disconnects with SCARD_RESET_CARD, a warm reset, which
// clears every security status. An error means the PIN may still be
// verified; a card gone needs no reset.
func endSession(yk *pivgo.YubiKey) error {
	err := yk.ResetPINStatus()
	if err == nil {
		_, err = yk.Retries()
		var ae pivgo.AuthErr
		if err == nil || errors.As(err, &ae) { // counter (63Cx) or blocked (6983): not verified
			return yk.Close()
		}
	}
	if matches(err, pcscGone) {
		// Nothing is verified on a card that is gone, and pcscd would
		// only fail to reset the empty reader.
		yk.Close()
		return nil
	}
	err = yk.CloseReset()
	if err == nil || matches(err, pcscGone) {
		return nil
	}
	return cardErr("resetting the card so that no PIN stays verified", err)
}

// match returns the certificate key the card's key is, or a MismatchError.
func (s *cardSigner) match(keys []*packet.PublicKey) (*packet.PublicKey, error) {
	cardFP := ""
	for _, k := range keys {
		pk, _, err := signer.PublicKey(s.pub, k.CreationTime)
		if err != nil {
			return nil, err
		}
		if pk.PubKeyAlgo == k.PubKeyAlgo && string(pk.Fingerprint) == string(k.Fingerprint) {
			return k, nil
		}
		if pk.PubKeyAlgo == k.PubKeyAlgo && cardFP == "" {
			cardFP = backend.Fingerprint(pk)
		}
	}
	return nil, &MismatchError{Slot: s.slotName, Card: cardFP, Cert: backend.Fingerprint(keys[0])}
}

// Public is the certificate's key; within Setup (no certificate yet), the
// slot's.
func (s *cardSigner) Public() crypto.PublicKey {
	if s.cert != nil {
		return s.cert.PublicKey
	}
	return s.pub
}

// Sign claims the card (waiting up to OpenTimeout while another session
// holds it: *BusyError), checks that the slot still holds the
// certificate's key (*MismatchError), presents the PIN if the card needs it
// (after the guard), has the card sign digest and releases the card.
// Errors: *RetriesError (PIN not presented), *PINError (wrong PIN),
// ErrCardGone (wrapped), or the card's refusal.
func (s *cardSigner) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("the card is closed")
	}
	if s.cert != nil {
		// Before the PIN is tried: a signature GnuPG would reject.
		if err := backend.CheckHash(s.cert, opts.HashFunc()); err != nil {
			return nil, err
		}
	}
	if s.reader != "" { // else Setup holds the card, read
		yk, err := claim(s.reader)
		if err != nil {
			return nil, err
		}
		sig, err := s.signClaimed(yk, rand, digest, opts)
		// On every path, the card is left with no PIN verified; a
		// signature made while that failed is not handed out.
		if lerr := s.logout(); lerr != nil && err == nil {
			return nil, lerr
		}
		return sig, err
	}
	return s.signHeld(rand, digest, opts)
}

// signClaimed signs with the card Sign claimed, after checking that it is
// still the card Open read.
func (s *cardSigner) signClaimed(yk *pivgo.YubiKey, rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if err := s.read(yk); err != nil {
		return nil, err
	}
	// The card may have been swapped, or the slot written, since Open.
	if _, err := s.match([]*packet.PublicKey{s.cert}); err != nil {
		return nil, err
	}
	return s.signHeld(rand, digest, opts)
}

// signHeld presents the PIN if needed and signs with the card s holds.
func (s *cardSigner) signHeld(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if err := s.login(); err != nil {
		return nil, err
	}
	sig, err := s.priv.Sign(rand, digest, opts)
	if err != nil {
		return nil, cardErr(fmt.Sprintf("signing with PIV slot %s", s.slot), err)
	}
	return sig, nil
}

// errVerified is piv-go's answer to a retries query when the PIN is already
// verified in this session (status 9000 to an empty VERIFY).
const errVerified = "expected error code from empty pin"

// retries reads the PIN attempts left; verified reports that the card says
// the PIN is already verified (so its counter is full).
func (s *cardSigner) retries() (n int, verified bool, err error) {
	n, err = s.yk.Retries()
	if err != nil {
		if err.Error() == errVerified {
			return 0, true, nil
		}
		var ae pivgo.AuthErr
		if errors.As(err, &ae) { // blocked: 6983
			return 0, false, nil
		}
		return 0, false, cardErr("reading the card's PIN retry counter", err)
	}
	return n, false, nil
}

// guard refuses when the PIN may not be presented.
func (s *cardSigner) guard() error {
	n, verified, err := s.retries()
	if err != nil || verified {
		return err
	}
	if n <= GuardRetries {
		return &RetriesError{Retries: n}
	}
	return nil
}

func (s *cardSigner) login() error {
	if s.policy == pivgo.PINPolicyNever || (s.verified && s.policy != pivgo.PINPolicyAlways) {
		return nil
	}
	n, verified, err := s.retries()
	if err != nil {
		return err
	}
	if verified && s.policy != pivgo.PINPolicyAlways {
		s.verified = true
		return nil
	}
	// A verified card has a full counter: presenting the PIN again, as
	// PIN policy "always" needs, risks nothing.
	if !verified && n <= GuardRetries {
		return &RetriesError{Retries: n}
	}
	err = s.yk.VerifyPIN(string(s.pin))
	var ae pivgo.AuthErr
	if errors.As(err, &ae) {
		return &PINError{Retries: ae.Retries, Err: ae}
	}
	if err != nil {
		return cardErr("presenting the PIN", err)
	}
	s.verified = true
	return nil
}

// Close forgets the PIN. The card is held only within Open and Sign.
func (s *cardSigner) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.pin)
	s.closed = true
	s.release()
	return nil
}
