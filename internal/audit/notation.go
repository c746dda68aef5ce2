package audit

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"golang.org/x/mod/sumdb/tlog"
)

// NotationName is the name of the notation (a hashed, non-critical,
// human-readable notation data subpacket) by which every signature commits
// to the log: in the namespace of the project's GitHub organisation, which
// the project controls (RFC 4880 5.2.3.16: name@domain).
const NotationName = "log@signstar.github.io"

// FormatNotation is the notation's value for record seq whose log held the
// tree root (of the seq-1 records before it): "seq=N root=BASE64", the
// root in standard base64 with padding, as a checkpoint writes it.
func FormatNotation(seq uint64, root tlog.Hash) string {
	return "seq=" + strconv.FormatUint(seq, 10) + " root=" + base64.StdEncoding.EncodeToString(root[:])
}

// ParseNotation reads a value FormatNotation wrote; anything else (another
// spelling, a leading zero, padding missing) is an error.
func ParseNotation(v string) (seq uint64, root tlog.Hash, err error) {
	bad := fmt.Errorf("%s notation %q is not seq=N root=BASE64", NotationName, clipNote(v))
	s, r, ok := strings.Cut(v, " ")
	s, ok1 := strings.CutPrefix(s, "seq=")
	r, ok2 := strings.CutPrefix(r, "root=")
	if !ok || !ok1 || !ok2 {
		return 0, root, bad
	}
	seq, err = strconv.ParseUint(s, 10, 64)
	if err != nil || seq == 0 || strconv.FormatUint(seq, 10) != s {
		return 0, root, bad
	}
	b, err := base64.StdEncoding.Strict().DecodeString(r)
	if err != nil || len(b) != tlog.HashSize {
		return 0, root, bad
	}
	copy(root[:], b)
	if FormatNotation(seq, root) != v {
		return 0, root, bad
	}
	return seq, root, nil
}

func clipNote(s string) string {
	if len(s) > 100 {
		return s[:100] + "..."
	}
	return s
}

// ErrNoNotation is a signature without the log's notation.
var ErrNoNotation = errors.New("the signature carries no " + NotationName + " notation")

// SignatureNotation reads the log's notation from an OpenPGP signature
// packet (binary): it must be there once, in the hashed area, human-readable
// and not critical.
func SignatureNotation(sig *packet.Signature) (seq uint64, root tlog.Hash, err error) {
	var found *packet.Notation
	for _, n := range sig.Notations {
		if n.Name != NotationName {
			continue
		}
		if found != nil {
			return 0, root, errors.New("the signature carries the " + NotationName + " notation twice")
		}
		found = n
	}
	if found == nil {
		return 0, root, ErrNoNotation
	}
	if found.IsCritical || !found.IsHumanReadable {
		return 0, root, errors.New("the signature's " + NotationName + " notation is critical or not human-readable")
	}
	return ParseNotation(string(found.Value))
}

// ReadSignatures parses a .sig file, binary or armored: one or more
// OpenPGP signature packets, and nothing else.
func ReadSignatures(b []byte) ([]*packet.Signature, error) {
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("-----BEGIN PGP SIGNATURE-----")) {
		blk, err := armor.Decode(bytes.NewReader(b))
		if err != nil || blk.Type != "PGP SIGNATURE" {
			return nil, errors.New("not an armored OpenPGP signature")
		}
		raw, err := io.ReadAll(io.LimitReader(blk.Body, 1<<20))
		if err != nil {
			return nil, errors.New("not an armored OpenPGP signature")
		}
		b = raw
	}
	var out []*packet.Signature
	r := packet.NewReader(bytes.NewReader(b))
	for {
		p, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, errors.New("not an OpenPGP signature")
		}
		sig, ok := p.(*packet.Signature)
		if !ok {
			return nil, errors.New("holds a packet that is not a signature")
		}
		out = append(out, sig)
	}
	if len(out) == 0 {
		return nil, errors.New("holds no OpenPGP signature")
	}
	return out, nil
}
