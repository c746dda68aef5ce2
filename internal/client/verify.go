package client

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// MaxSignature is the largest signature accepted, pacman's limit for a
// binary .sig; an armored one may take 4/3 of it and its armor lines.
const MaxSignature = 16 << 10

const maxArmoredSignature = MaxSignature*4/3 + 1024

// UntrustedError is an answer of the enclave that the client does not
// trust: a signature that does not verify with the pinned certificate, a
// certificate that is not the pinned one, a log that forked or was rolled
// back. Nothing is written after one.
type UntrustedError struct{ Msg string }

func (e *UntrustedError) Error() string { return e.Msg }

func untrusted(format string, a ...any) error {
	return &UntrustedError{Msg: fmt.Sprintf(format, a...)}
}

// now is the clock of signature checks; tests may set it.
var now = time.Now

// VerifyFile checks that sig is one detached v4 signature of the file at
// path (or two, during a key transition), type binary document, one made by
// a key of the pinned certificate, and returns that packet.
func VerifyFile(p *Pinned, path string, sig []byte) (*packet.Signature, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Verify(p, f, path, sig)
}

// Verify is VerifyFile over data from r; name is what messages call it.
func Verify(p *Pinned, r io.Reader, name string, sig []byte) (*packet.Signature, error) {
	bin := sig
	if isArmored(sig) {
		if len(sig) > maxArmoredSignature {
			return nil, untrusted("the signature of %s is %d bytes: more than a signature takes", name, len(sig))
		}
		var err error
		if bin, err = dearmorSignature(sig); err != nil {
			return nil, untrusted("the signature of %s: %v", name, err)
		}
	}
	if len(bin) > MaxSignature {
		return nil, untrusted("the signature of %s is %d bytes: more than pacman's 16 KiB", name, len(bin))
	}
	sigs, err := parseSignatures(bin)
	if err != nil {
		return nil, untrusted("the signature of %s: %v", name, err)
	}
	ring := openpgp.EntityList{p.Entity}
	var s *packet.Signature
	for _, c := range sigs {
		if c.Version != 4 || c.SigType != packet.SigTypeBinary {
			return nil, untrusted("the signature of %s is a v%d signature of type 0x%02x, not v4 of a binary document (0x00)", name, c.Version, byte(c.SigType))
		}
		if c.IssuerKeyId == nil {
			return nil, untrusted("the signature of %s names no issuer key ID (subpacket 16), which pacman needs", name)
		}
		if s == nil && len(ring.KeysById(*c.IssuerKeyId)) > 0 {
			s = c
		}
	}
	if s == nil {
		c := sigs[0]
		who := fmt.Sprintf("key ID %016X", *c.IssuerKeyId)
		if c.IssuerFingerprint != nil {
			who = fmt.Sprintf("key %X", c.IssuerFingerprint)
		}
		return nil, untrusted("the enclave signed %s with %s, which is not in the pinned certificate %s (%s): refusing it", name, who, p.Path, p.Fingerprint())
	}
	cfg := &packet.Config{Time: now}
	if _, err := openpgp.CheckDetachedSignature(ring, r, bytes.NewReader(bin), cfg); err != nil {
		return nil, untrusted("the signature of %s does not verify with the pinned certificate %s: %v", name, p.Fingerprint(), err)
	}
	return s, nil
}

// parseSignatures reads one signature packet, or two: during a key
// transition the enclave's .sig holds the old key's and the next key's
// (signstar's README, "Key transitions"), and the pinned key's must verify.
func parseSignatures(b []byte) ([]*packet.Signature, error) {
	rd := packet.NewReader(bytes.NewReader(b))
	var out []*packet.Signature
	for {
		pkt, err := rd.Next()
		if errors.Is(err, io.EOF) && len(out) > 0 {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("not an OpenPGP signature: %v", err)
		}
		s, ok := pkt.(*packet.Signature)
		if !ok {
			return nil, fmt.Errorf("an OpenPGP %T, not a signature", pkt)
		}
		if out = append(out, s); len(out) > 2 {
			return nil, errors.New("more than two packets: a detached signature is one, or two during a key transition")
		}
	}
}

func isArmored(sig []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(sig, " \t\r\n"), []byte("-----BEGIN PGP SIGNATURE-----"))
}

// dearmorSignature is the binary packet of an armored signature.
func dearmorSignature(sig []byte) ([]byte, error) {
	block, err := armor.Decode(bytes.NewReader(sig))
	if err != nil || block.Type != openpgp.SignatureType {
		return nil, errors.New("not an armored signature")
	}
	bin, err := io.ReadAll(io.LimitReader(block.Body, MaxSignature+1))
	if err != nil {
		return nil, fmt.Errorf("bad armor: %v", err)
	}
	return bin, nil
}
