// Package archreq reads the signing request of Arch Linux's Signstar client
// (signstar-request-signature), version 1, and writes its response.
//
// The client does not send the file: it hashes it with the Rust sha2 0.11
// crate's SHA-512, stops before the padding, and sends the hasher's
// serialized state as JSON. The server resumes that state, appends the
// OpenPGP v4 signature trailer and signs the result, so the signature
// verifies over the original file. The formats are upstream's request.md
// and response.md (a copy is under testdata/upstream).
package archreq

import (
	"bytes"
	"crypto"
	"crypto/sha512"
	"encoding"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Names of the protocol.
const (
	// Accept is the profile's accept value that opts into this protocol.
	Accept = "signstar-v1"
	// InputType is the one input type of version 1 understood here.
	InputType = "sha2-0.11-SHA512-state"
	// OutputType is the one output type.
	OutputType = "OpenPGPv4"
	// ResponseVersion is the response format's version.
	ResponseVersion = "1.0.0"
)

// MaxRequest bounds a request. One is about 1 KiB compact and 3 KiB
// pretty-printed (the state is 208 numbers); the rest is room for optional
// fields, which are ignored.
const MaxRequest = 64 << 10

// maxDepth bounds the nesting of arrays and objects (optional values).
const maxDepth = 16

// StateSize is the length of a serialized sha2 0.11 SHA-512 state.
const StateSize = 208

// Request is a parsed version 1 request.
type Request struct {
	// Version is the request's version string, e.g. "1.0.0".
	Version string
	// State is the client's SHA-512 state, resumed: it has hashed the
	// file, and nothing else.
	State hash.Hash
	// Size is the number of bytes the state says it hashed.
	Size uint64
	// Ignored are the names of the optional fields, none of which is
	// understood (upstream defines none), in sorted order.
	Ignored []string
}

// Error is a refusal of the request; Msg says what is wrong with it.
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

func refuse(format string, args ...any) error { return &Error{fmt.Sprintf(format, args...)} }

// ErrTooLarge is the refusal of a request longer than MaxRequest.
var ErrTooLarge = &Error{fmt.Sprintf("request is longer than %d bytes", MaxRequest)}

// Read reads a request from r to its end, at most MaxRequest bytes of it,
// and parses it. It also returns how many bytes it read (MaxRequest+1 when
// the request is too long). An error is an *Error for a refusal, any other
// for a failed read.
func Read(r io.Reader) (*Request, int, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxRequest+1))
	if err != nil {
		return nil, len(data), err
	}
	if len(data) > MaxRequest {
		return nil, len(data), ErrTooLarge
	}
	req, err := Parse(data)
	return req, len(data), err
}

// Parse parses one request. Following request.md: the top level holds only
// version, required and optional; required holds only input and output,
// each with exactly its fields; a value other than those listed is
// refused, and so is a major version other than 1. The optional fields are
// ignored, whatever they hold, as the format says a server must. Beyond the
// format, because a signing server must not guess: names match exactly
// (not case-insensitively, as encoding/json matches struct fields), a name
// twice in one object and anything after the JSON value are refused, and
// content must be 208 plain integers 0 to 255.
func Parse(data []byte) (*Request, error) {
	if err := wellFormed(data); err != nil {
		return nil, err
	}
	top, err := object(data, "the request", "version", "required", "optional")
	if err != nil {
		return nil, err
	}
	req := &Request{}
	v, ok := top["version"]
	if !ok {
		return nil, refuse("the request has no version: it is not a signstar request")
	}
	if req.Version, err = str(v, "version"); err != nil {
		return nil, err
	}
	if err := checkVersion(req.Version); err != nil {
		return nil, err
	}
	rq, ok := top["required"]
	if !ok {
		return nil, refuse("the request has no required object")
	}
	required, err := object(rq, "required", "input", "output")
	if err != nil {
		return nil, err
	}
	in, ok := required["input"]
	if !ok {
		return nil, refuse("required has no input")
	}
	input, err := object(in, "required.input", "type", "content")
	if err != nil {
		return nil, err
	}
	out, ok := required["output"]
	if !ok {
		return nil, refuse("required has no output")
	}
	output, err := object(out, "required.output", "type")
	if err != nil {
		return nil, err
	}
	if err := typeIs(input, "required.input", InputType); err != nil {
		return nil, err
	}
	if err := typeIs(output, "required.output", OutputType); err != nil {
		return nil, err
	}
	c, ok := input["content"]
	if !ok {
		return nil, refuse("required.input has no content")
	}
	state, err := content(c)
	if err != nil {
		return nil, err
	}
	if req.State, req.Size, err = ResumeSHA512(state); err != nil {
		return nil, err
	}
	if o, ok := top["optional"]; ok {
		opt, err := object(o, "optional")
		if err != nil {
			return nil, err
		}
		for k := range opt {
			req.Ignored = append(req.Ignored, k)
		}
		sort.Strings(req.Ignored)
	}
	return req, nil
}

// wellFormed checks data is one JSON value and nothing but white space
// (json.Valid), nested at most maxDepth deep, with no name twice in an
// object (encoding/json would keep the last).
func wellFormed(data []byte) error {
	if !json.Valid(data) {
		return refuse("the request is not JSON")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	type frame struct {
		names map[string]bool // nil for an array
		key   bool            // an object expecting a name next
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return refuse("the request is not JSON")
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.names != nil && top.key {
			if name, ok := tok.(string); ok {
				if top.names[name] {
					return refuse("the request names %q twice in one object", clip(name))
				}
				top.names[name] = true
				top.key = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if len(stack) >= maxDepth {
				return refuse("the request nests deeper than %d", maxDepth)
			}
			if top != nil {
				top.key = top.names != nil
			}
			f := &frame{}
			if tok == json.Delim('{') {
				f.names, f.key = map[string]bool{}, true
			}
			stack = append(stack, f)
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		default:
			if top != nil {
				top.key = top.names != nil
			}
		}
	}
}

// object decodes an object of where; with names given, it may hold only
// those, spelt exactly.
func object(data json.RawMessage, where string, names ...string) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil || m == nil {
		return nil, refuse("%s is not a JSON object", where)
	}
	if len(names) == 0 {
		return m, nil
	}
	var unknown []string
	for k := range m {
		known := false
		for _, n := range names {
			known = known || k == n
		}
		if !known {
			unknown = append(unknown, strconv.Quote(clip(k)))
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, refuse("%s has the unknown field %s (only %s are defined): refused, as request.md requires", where, strings.Join(unknown, ", "), strings.Join(names, ", "))
	}
	return m, nil
}

func str(data json.RawMessage, where string) (string, error) {
	var s string
	if len(data) == 0 || data[0] != '"' || json.Unmarshal(data, &s) != nil {
		return "", refuse("%s is not a string", where)
	}
	return s, nil
}

func typeIs(m map[string]json.RawMessage, where, want string) error {
	t, ok := m["type"]
	if !ok {
		return refuse("%s has no type", where)
	}
	s, err := str(t, where+".type")
	if err != nil {
		return err
	}
	if s != want {
		return refuse("%s.type %q is not understood: only %q is", where, clip(s), want)
	}
	return nil
}

// checkVersion accepts any 1.x.y: minor versions add optional fields
// (ignored) and required ones (refused as unknown), so every 1.x request
// either means what version 1.0 means or is refused. The version must be
// semantic versioning's MAJOR.MINOR.PATCH, with an optional pre-release
// and build suffix.
func checkVersion(v string) error {
	core, suffix := v, ""
	if i := strings.IndexAny(v, "-+"); i >= 0 {
		core, suffix = v[:i], v[i:]
	}
	parts := strings.Split(core, ".")
	ok := len(parts) == 3 && validSuffix(suffix)
	for _, p := range parts {
		ok = ok && numeric(p)
	}
	if !ok {
		return refuse("version %q is not a semantic version", clip(v))
	}
	if parts[0] != "1" {
		return refuse("version %q is not understood: this server speaks version 1 (1.x.y)", clip(v))
	}
	return nil
}

// numeric is a semantic version number: digits, no leading zero.
func numeric(s string) bool {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// validSuffix is "", or "-PRE", "+BUILD" or "-PRE+BUILD" made of
// letters, digits, '-' and '.'.
func validSuffix(s string) bool {
	pre, build, hasBuild := strings.Cut(s, "+")
	if hasBuild && !identifiers(build) {
		return false
	}
	if pre == "" {
		return true
	}
	return pre[0] == '-' && identifiers(pre[1:])
}

func identifiers(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// content reads the state bytes: an array of integers 0 to 255. JSON has
// other ways to write bytes (a base64 string, as encoding/json would
// accept for a []byte; 1.0, 1e2); none of them is taken.
func content(data json.RawMessage) ([]byte, error) {
	var nums []json.RawMessage
	if len(data) == 0 || data[0] != '[' || json.Unmarshal(data, &nums) != nil {
		return nil, refuse("required.input.content is not an array of bytes")
	}
	if len(nums) != StateSize {
		return nil, refuse("required.input.content has %d bytes, not the %d of a %s", len(nums), StateSize, InputType)
	}
	out := make([]byte, len(nums))
	for i, n := range nums {
		s := string(n)
		v, err := strconv.ParseUint(s, 10, 8)
		if err != nil || (len(s) > 1 && s[0] == '0') {
			return nil, refuse("required.input.content[%d] is %s, not an integer 0 to 255", i, clip(s))
		}
		out[i] = byte(v)
	}
	return out, nil
}

// ResumeSHA512 turns a serialized sha2 0.11 SHA-512 state into a
// crypto/sha512 hash that carries on from it, and says how many bytes it
// has hashed. The layout (sha2's Sha512VarCore and block-buffer's Eager
// BlockBuffer, serialized one after the other):
//
//	 0..64   H0..H7, each a little-endian uint64
//	64..80   the number of 128-byte blocks compressed, little-endian uint128
//	80       the number of bytes buffered, 0 to 127
//	81..208  the buffered bytes, then zeros
//
// As block-buffer's own deserialize does, a count of 128 or more, or a
// byte other than zero after the buffered ones, is refused. The state is
// put into crypto/sha512's MarshalBinary form ("sha\x07", H0..H7
// big-endian, a 128-byte block, the length in bytes as a big-endian
// uint64) and unmarshalled, so the hashing that follows is the standard
// library's.
func ResumeSHA512(state []byte) (hash.Hash, uint64, error) {
	if len(state) != StateSize {
		return nil, 0, refuse("the state is %d bytes, not %d", len(state), StateSize)
	}
	lo := binary.LittleEndian.Uint64(state[64:72])
	hi := binary.LittleEndian.Uint64(state[72:80])
	pos := int(state[80])
	if pos >= sha512.BlockSize {
		return nil, 0, refuse("the state buffers %d bytes, more than the %d a SHA-512 block leaves", pos, sha512.BlockSize-1)
	}
	for i, b := range state[81+pos:] {
		if b != 0 {
			return nil, 0, refuse("the state has the non-zero byte 0x%02x at offset %d, after its %d buffered bytes", b, 81+pos+i, pos)
		}
	}
	// Bytes hashed: blocks*128 + pos, which must fit in 63 bits (a file
	// size, and crypto/sha512's counter).
	if hi != 0 || lo > (math.MaxInt64-uint64(pos))/sha512.BlockSize {
		return nil, 0, refuse("the state claims more than 2^63 bytes hashed")
	}
	size := lo*sha512.BlockSize + uint64(pos)

	m := make([]byte, 0, 4+64+sha512.BlockSize+8)
	m = append(m, "sha\x07"...)
	for i := 0; i < 8; i++ {
		m = binary.BigEndian.AppendUint64(m, binary.LittleEndian.Uint64(state[8*i:]))
	}
	var block [sha512.BlockSize]byte
	copy(block[:], state[81:81+pos])
	m = append(m, block[:]...)
	m = binary.BigEndian.AppendUint64(m, size)
	h := crypto.SHA512.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(m); err != nil {
		return nil, 0, fmt.Errorf("cannot resume the SHA-512 state: %v", err)
	}
	return h, size, nil
}

// SerializeSHA512 is the inverse of ResumeSHA512: a crypto/sha512 state in
// sha2 0.11's serialized form, as the client would send it after hashing
// the same bytes. Tests build requests from real files with it.
func SerializeSHA512(h hash.Hash) ([]byte, error) {
	mb, ok := h.(encoding.BinaryMarshaler)
	if !ok {
		return nil, errors.New("not a crypto/sha512 state")
	}
	m, err := mb.MarshalBinary()
	if err != nil {
		return nil, err
	}
	if len(m) != 4+64+sha512.BlockSize+8 || string(m[:4]) != "sha\x07" {
		return nil, errors.New("not a crypto/sha512 SHA-512 state")
	}
	out := make([]byte, StateSize)
	for i := 0; i < 8; i++ {
		binary.LittleEndian.PutUint64(out[8*i:], binary.BigEndian.Uint64(m[4+8*i:]))
	}
	size := binary.BigEndian.Uint64(m[4+64+sha512.BlockSize:])
	binary.LittleEndian.PutUint64(out[64:], size/sha512.BlockSize)
	pos := int(size % sha512.BlockSize)
	out[80] = byte(pos)
	copy(out[81:], m[4+64:4+64+pos])
	return out, nil
}

// Response is the response to a signed request: armored is the signature
// in ASCII armor, as response.md requires.
func Response(armored []byte) []byte {
	b, _ := json.Marshal(struct {
		Version   string `json:"version"`
		Signature string `json:"signature"`
	}{ResponseVersion, strings.TrimRight(string(armored), "\n")})
	return append(b, '\n')
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
