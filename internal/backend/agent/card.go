package agent

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/signstar/signstar/internal/backend"
)

// GuardRetries is the number of PIN attempts left at which signstar stops
// sending the card's PIN: seed 000's rule, so that a stale pin_file cannot
// lock the card.
const GuardRetries = 1

// CardRetriesError means the card behind the agent has GuardRetries or
// fewer PIN attempts left, so no PIN was sent and the card was left as it
// was.
type CardRetriesError struct {
	Serial  string
	Retries int // 0: blocked
}

func (e *CardRetriesError) Error() string {
	if e.Retries == 0 {
		return fmt.Sprintf("the PIN of card %s is blocked (0 attempts left): unblock it with the admin PIN (gpg --card-edit, admin, passwd) or the reset code, then check pin_file", e.Serial)
	}
	return fmt.Sprintf("the PIN of card %s has only %d attempt left: refusing to use the card, to prevent a lockout; check pin_file, then reset the retry counter with one successful PIN use elsewhere (sign something with gpg) or with the admin PIN (gpg --card-edit, admin, passwd)", e.Serial, e.Retries)
}

// CardPINError means the card refused the PIN from pin_file. It was sent
// once and not retried.
type CardPINError struct {
	Serial  string
	Retries int // attempts left now; -1 when the card could not say
}

func (e *CardPINError) Error() string {
	switch e.Retries {
	case -1:
		return fmt.Sprintf("card %s refused the PIN in pin_file: fix pin_file", e.Serial)
	case 0:
		return fmt.Sprintf("card %s refused the PIN in pin_file and is now blocked (0 attempts left): fix pin_file, then unblock it with the admin PIN", e.Serial)
	case 1:
		return fmt.Sprintf("card %s refused the PIN in pin_file (1 attempt left, which signstar will not use): fix pin_file, then reset the counter with the right PIN or the admin PIN", e.Serial)
	}
	return fmt.Sprintf("card %s refused the PIN in pin_file (%d attempts left): fix pin_file", e.Serial, e.Retries)
}

// CardMissingError means scdaemon finds no card, or not the one that holds
// the key.
type CardMissingError struct {
	Want string // the card that holds the key (KEYINFO)
	Got  string // the card in the reader; "" when there is none
	// During is set when the card went missing after Open: removed while
	// the upload was read, or while signing.
	During bool
	Err    error // scdaemon's answer, when there is no card
}

func (e *CardMissingError) Error() string {
	when := ""
	if e.During {
		when = " during the request"
	}
	if e.Got != "" {
		return fmt.Sprintf("the reader holds card %s, but the key is on card %s%s: insert the right card", e.Got, e.Want, when)
	}
	return fmt.Sprintf("the key's card %s is not in the reader or does not answer%s (%v): insert it", e.Want, when, e.Err)
}

func (e *CardMissingError) Unwrap() error { return e.Err }

// ErrNeedPIN means the key is on a card and the profile has no pin_file.
var ErrNeedPIN = errors.New("the key in gpg-agent is on a smartcard and the profile has no [profile.gpg_agent] pin_file")

// gpg-error codes of scdaemon's card errors.
const (
	codeBadPIN     = 87
	codePINBlocked = 130
	codeNoSCDaemon = 119
	codeForbidden  = 251
)

// scdError words an agent's refusal of a card command: a socket that may
// not reach scdaemon, no scdaemon, or else no usable card.
func (s *Signer) scdError(err error, during bool) error {
	var ae *AgentError
	if !errors.As(err, &ae) {
		return err
	}
	switch ae.Code & 0xffff {
	case codeForbidden:
		return fmt.Errorf("%v: a restricted agent socket (such as S.gpg-agent.extra) cannot read the card's PIN retry counter: set [profile.gpg_agent] socket to the agent's standard socket", err)
	case codeNoSCDaemon:
		return fmt.Errorf("%v: gpg-agent cannot start scdaemon: install scdaemon (and pcscd) on the agent's host", err)
	}
	// scdaemon fails SERIALNO and reads only when it has no usable
	// card: none, one just removed ("General error" at first, then "Card
	// removed"), or one that does not answer.
	return &CardMissingError{Want: s.card.serial, During: during, Err: err}
}

// card is the smartcard behind the agent that holds the signing key: the
// agent's key is only a shadow of it (KEYINFO type T).
type card struct {
	serial string // the card's serial number, as scdaemon reports it
	idstr  string // the key on the card, e.g. OPENPGP.1
	pin    []byte
}

// keyInfo asks the agent about the key: type (D in the agent, T on a
// card), the card's serial number and the key's ID on it.
func (s *Signer) keyInfo() (typ, serial, idstr string, err error) {
	var line string
	s.c.status = func(kw, args string) {
		if kw == "KEYINFO" && line == "" {
			line = args
		}
	}
	defer func() { s.c.status = nil }()
	if _, err := s.c.transact("KEYINFO "+s.grip.String(), nil); err != nil {
		return "", "", "", err
	}
	return parseKeyInfo(line, s.grip.String())
}

// parseKeyInfo reads the arguments of a KEYINFO status line: keygrip,
// type, serial number, ID string, then fields signstar does not use.
func parseKeyInfo(args, grip string) (typ, serial, idstr string, err error) {
	f := strings.Fields(args)
	if len(f) < 4 || !strings.EqualFold(f[0], grip) {
		return "", "", "", fmt.Errorf("%w: KEYINFO %q", ErrProtocol, clip([]byte(args)))
	}
	typ, serial, idstr = f[1], f[2], f[3]
	if typ == "T" && (!validSerial(serial) || idstr == "-" || !printableToken(idstr)) {
		return "", "", "", fmt.Errorf("%w: KEYINFO of a card key without serial number or key ID: %q", ErrProtocol, clip([]byte(args)))
	}
	return typ, serial, idstr, nil
}

func validSerial(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !strings.ContainsRune("0123456789ABCDEFabcdef", r) {
			return false
		}
	}
	return true
}

func printableToken(s string) bool {
	if len(s) > 64 {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r >= 0x7f {
			return false
		}
	}
	return true
}

// attachCard finds out whether the chosen key is on a card and, when it
// is, reads the PIN, checks that the card is there and guards its PIN
// before the upload is read.
func (s *Signer) attachCard(pinFile string) error {
	typ, serial, idstr, err := s.keyInfo()
	var ae *AgentError
	if errors.As(err, &ae) && ae.Code&0xffff == codeForbidden {
		// A restricted socket (S.gpg-agent.extra) answers no KEYINFO.
		// It still signs with the agent's own keys, as before; a card's
		// PIN cannot be guarded through it.
		if pinFile != "" {
			return s.scdError(err, false)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if typ != "T" {
		return nil
	}
	if !strings.HasPrefix(idstr, "OPENPGP.") {
		return fmt.Errorf("the key is on card %s as %s, not on an OpenPGP card: signstar guards only OpenPGP card PINs", serial, idstr)
	}
	if pinFile == "" {
		return ErrNeedPIN
	}
	if s.noLoopback != nil {
		return fmt.Errorf("%w: the card's PIN from pin_file needs allow-loopback-pinentry in gpg-agent.conf", s.noLoopback)
	}
	pin, err := backend.ReadPassphrase(pinFile)
	if err != nil {
		return err
	}
	s.card = &card{serial: serial, idstr: idstr, pin: pin}
	_, err = s.guardCard(false)
	return err
}

// guardCard checks that the key's card is in the reader and that it has
// more than GuardRetries PIN attempts left, through scdaemon (SCD SERIALNO,
// SCD GETATTR CHV-STATUS): nothing is sent to the card but reads. It
// returns the attempts left.
func (s *Signer) guardCard(during bool) (int, error) {
	c := s.card
	serial, err := s.scdStatus("SCD SERIALNO openpgp", "SERIALNO")
	if err != nil {
		return 0, s.scdError(err, during)
	}
	got, _, _ := strings.Cut(serial, " ")
	if !strings.EqualFold(got, c.serial) {
		return 0, &CardMissingError{Want: c.serial, Got: got, During: during}
	}
	n, err := s.retries()
	if err != nil {
		// scdaemon may answer SERIALNO from memory for a card that has
		// gone: then this read fails.
		return 0, s.scdError(err, during)
	}
	if n <= GuardRetries {
		return n, &CardRetriesError{Serial: c.serial, Retries: n}
	}
	return n, nil
}

// retries reads the card's PW1 attempts left (CHV-STATUS).
func (s *Signer) retries() (int, error) {
	st, err := s.scdStatus("SCD GETATTR CHV-STATUS", "CHV-STATUS")
	if err != nil {
		return 0, err
	}
	return parseCHVStatus(st)
}

// scdStatus sends a command to scdaemon through the agent and returns the
// unescaped arguments of its first status line with keyword.
func (s *Signer) scdStatus(cmd, keyword string) (string, error) {
	var args string
	found := false
	s.c.status = func(kw, a string) {
		if kw == keyword && !found {
			args, found = a, true
		}
	}
	defer func() { s.c.status = nil }()
	if _, err := s.c.transact(cmd, nil); err != nil {
		return "", err
	}
	if !found {
		return "", fmt.Errorf("%w: no %s status in the reply to %s", ErrProtocol, keyword, cmd)
	}
	return unescapeStatus(args)
}

// unescapeStatus decodes the escaping of scdaemon's status arguments:
// '+' for a space and %XX for other bytes.
func unescapeStatus(s string) (string, error) {
	b, err := unescape([]byte(strings.ReplaceAll(s, "+", " ")))
	if err != nil {
		return "", fmt.Errorf("%w: status %q: %v", ErrProtocol, clip([]byte(s)), err)
	}
	return printable(b), nil
}

// parseCHVStatus reads OpenPGP's PW status bytes as scdaemon prints them
// (CHV-STATUS): the PW1 mode, three maximum lengths, then the attempts
// left for PW1, the resetting code and PW3. It returns PW1's.
func parseCHVStatus(s string) (int, error) {
	f := strings.Fields(s)
	if len(f) < 7 {
		return 0, fmt.Errorf("%w: CHV-STATUS %q has %d fields, want 7", ErrProtocol, clip([]byte(s)), len(f))
	}
	n, err := strconv.Atoi(f[4])
	if err != nil || n < 0 || n > 255 || strings.HasPrefix(f[4], "+") {
		return 0, fmt.Errorf("%w: CHV-STATUS %q: bad PW1 counter", ErrProtocol, clip([]byte(s)))
	}
	return n, nil
}

// cardSignError explains a failed PKSIGN with a card key: a wrong PIN
// (with the attempts now left), a card that went away, or the card's or
// agent's error.
func (s *Signer) cardSignError(err error) error {
	var ae *AgentError
	if !errors.As(err, &ae) {
		return err
	}
	if code := ae.Code & 0xffff; code == codeBadPIN || code == codePINBlocked {
		n, rerr := s.retries()
		if rerr != nil {
			n = -1
		}
		return &CardPINError{Serial: s.card.serial, Retries: n}
	}
	// scdaemon reports a card pulled out mid-command as "Card error" or
	// "General error", like a card that refused: ask whether the card is
	// still there.
	if _, gerr := s.guardCard(true); gerr != nil {
		var me *CardMissingError
		if errors.As(gerr, &me) {
			me.Err = err
			return me
		}
	}
	return fmt.Errorf("card %s did not sign: %w", s.card.serial, err)
}
