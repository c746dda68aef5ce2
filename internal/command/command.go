// Package command parses what a client asks for. The remote grammar is
// deliberately poor: words split on spaces and tabs, printable ASCII only, no
// quoting, escapes or globbing, so there is nothing for a shell-minded
// attacker to play with.
package command

import (
	"crypto"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/signstar/signstar/internal/config"
	"github.com/signstar/signstar/internal/digest"
)

// MaxLength is the longest command string accepted from a client.
const MaxLength = 1024

// Commands a client may send.
const (
	Sign       = "sign"
	Pubkey     = "pubkey"
	Checkpoint = "checkpoint"
	Proof      = "proof"
	Version    = "version"
)

// Request is a parsed remote command.
type Request struct {
	Name string
	// Empty is an empty command (no words), which means sign; to a profile
	// that accepts signstar-v1 it means a signstar-v1 request.
	Empty bool
	Armor bool
	// Tar: stdin is a tar of files, stdout a tar of their signatures.
	Tar     bool
	Profile string // "" when the client did not ask for one
	Expect  *Expect
	// From is checkpoint's --from N, when HasFrom.
	From    int64
	HasFrom bool
	// Seq is proof's SEQ.
	Seq uint64
}

// Expect is the digest the client says it sent.
type Expect struct {
	Hash   crypto.Hash
	Digest []byte
}

// String is the ALGO:HEX form.
func (e *Expect) String() string {
	return digest.Name(e.Hash) + ":" + hex.EncodeToString(e.Digest)
}

// Error is a refusal of the command string; the message says what to send
// instead.
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

func refuse(format string, args ...any) error { return &Error{fmt.Sprintf(format, args...)} }

// ParseRemote parses a command string received from a client. The empty
// string means sign.
func ParseRemote(s string) (*Request, error) {
	if len(s) > MaxLength {
		return nil, refuse("command is %d bytes, longer than %d: send only %s with their options", len(s), MaxLength, orList(quoted(RemoteNames())))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 0 {
			return nil, refuse("command contains a NUL byte at offset %d", i)
		}
		if (c < 0x20 && c != '\t') || c >= 0x7f {
			return nil, refuse("command contains the control or non-ASCII byte 0x%02x at offset %d: only printable ASCII is accepted", c, i)
		}
	}
	words := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' })
	return ParseWords(words, true)
}

// plainWord reports whether w is made only of the characters a command word
// may hold: letters, digits and ._:/=+@,-. Anything a shell would treat
// specially is missing from the list.
func plainWord(w string) bool {
	if w == "" {
		return false
	}
	for i := 0; i < len(w); i++ {
		c := w[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._:/=+@,-", c) >= 0) {
			return false
		}
	}
	return true
}

// ParseWords parses a command already split into words. remote only changes
// the wording of refusals for admin commands.
func ParseWords(words []string, remote bool) (*Request, error) {
	if len(words) == 0 {
		return &Request{Name: Sign, Empty: true}, nil
	}
	for _, w := range words {
		if !plainWord(w) {
			return nil, refuse("refused word %q: commands are plain words without shell syntax", clip(w))
		}
	}
	name := words[0]
	req := &Request{Name: name}
	spec := Lookup(name)
	if spec == nil || !spec.Remote {
		if spec != nil && remote && name != "help" {
			return nil, refuse("%q is a local administration command and is refused over SSH", name)
		}
		return nil, refuse("unknown command %q: use %s", clip(name), strings.Join(RemoteNames()[:len(RemoteNames())-1], ", ")+" or "+RemoteNames()[len(RemoteNames())-1])
	}
	seen := map[string]bool{}
	args := words[1:]
	for i := 0; i < len(args); i++ {
		opt, val, hasVal := strings.Cut(args[i], "=")
		if !strings.HasPrefix(opt, "--") {
			if name != Proof || req.Seq != 0 {
				return nil, refuse("unexpected argument %q to %s", clip(args[i]), name)
			}
			n, ok := decimal(args[i])
			if !ok || n == 0 {
				return nil, refuse("proof %q: SEQ is a record's seq, a decimal number from 1", clip(args[i]))
			}
			req.Seq = n
			continue
		}
		if seen[opt] {
			return nil, refuse("option %s given twice", opt)
		}
		seen[opt] = true
		f := spec.Flag(opt)
		if f == nil {
			return nil, refuse("%s does not take option %s", name, clip(opt))
		}
		takesValue := f.Value != ""
		if takesValue && !hasVal {
			if i+1 >= len(args) {
				return nil, refuse("option %s needs a value", opt)
			}
			i++
			val = args[i]
		} else if !takesValue && hasVal {
			return nil, refuse("option %s takes no value", opt)
		}
		switch {
		case opt == "--profile" && (name == Sign || name == Pubkey):
			if !config.ValidName(val) {
				return nil, refuse("%q is not a profile name", clip(val))
			}
			req.Profile = val
		case opt == "--armor" && name == Sign:
			req.Armor = true
		case opt == "--tar" && name == Sign:
			req.Tar = true
		case opt == "--expect" && name == Sign:
			e, err := ParseExpect(val)
			if err != nil {
				return nil, err
			}
			req.Expect = e
		case opt == "--from" && name == Checkpoint:
			n, ok := decimal(val)
			if !ok || n > 1<<62 {
				return nil, refuse("--from %q: N is a tree size, a decimal number", clip(val))
			}
			req.From, req.HasFrom = int64(n), true
		default:
			return nil, refuse("%s does not take option %s", name, clip(opt))
		}
	}
	if name == Proof && req.Seq == 0 {
		return nil, refuse("proof needs SEQ, the record's seq: proof 42")
	}
	return req, nil
}

// decimal reads a decimal number without sign or leading zeros.
func decimal(s string) (uint64, bool) {
	if s == "" || len(s) > 19 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + uint64(s[i]-'0')
	}
	return n, true
}

func quoted(words []string) []string {
	out := make([]string, len(words))
	for i, w := range words {
		out[i] = strconv.Quote(w)
	}
	return out
}

// ParseExpect reads "sha256:HEX" or "sha512:HEX".
func ParseExpect(s string) (*Expect, error) {
	algo, hexDigest, ok := strings.Cut(s, ":")
	h, known := digest.Parse(algo)
	if !ok || !known {
		return nil, refuse("--expect %q: use sha256:HEX or sha512:HEX", clip(s))
	}
	d, err := hex.DecodeString(strings.ToLower(hexDigest))
	if err != nil || len(d) != h.Size() {
		return nil, refuse("--expect %q: the digest must be %d hex digits", clip(s), 2*h.Size())
	}
	return &Expect{Hash: h, Digest: d}, nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
