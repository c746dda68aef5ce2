package audit

import (
	"bytes"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// fastRecord reads a line in exactly Marshal's form: the fields in order,
// strings as appendJSONString writes them. It is audit verify's fast path
// (encoding/json's Decoder costs most of a verification); the caller still
// holds the result against the line (Marshal(rec) == line), so a line it
// reads wrongly is refused, never accepted, and one it cannot read goes to
// encoding/json for the error.
func fastRecord(line []byte) (*Record, bool) {
	p := line
	var r Record
	expect := func(lit string) bool {
		if !bytes.HasPrefix(p, []byte(lit)) {
			return false
		}
		p = p[len(lit):]
		return true
	}
	num := func() (int64, bool) {
		i := 0
		if i < len(p) && p[i] == '-' {
			i++
		}
		for i < len(p) && p[i] >= '0' && p[i] <= '9' {
			i++
		}
		n, err := strconv.ParseInt(string(p[:i]), 10, 64)
		p = p[i:]
		return n, err == nil
	}
	str := func(dst *string) bool {
		if len(p) == 0 || p[0] != '"' {
			return false
		}
		p = p[1:]
		// The common case: no escapes.
		i := 0
		for i < len(p) && p[i] != '"' && p[i] != '\\' {
			i++
		}
		if i < len(p) && p[i] == '"' {
			*dst = string(p[:i])
			p = p[i+1:]
			return true
		}
		var b []byte
		for {
			if i >= len(p) {
				return false
			}
			c := p[i]
			if c == '"' {
				b = append(b, p[:i]...)
				*dst = string(b)
				p = p[i+1:]
				return true
			}
			if c != '\\' {
				i++
				continue
			}
			b = append(b, p[:i]...)
			if i+1 >= len(p) {
				return false
			}
			e := p[i+1]
			p = p[i+2:]
			i = 0
			switch e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				if len(p) < 4 {
					return false
				}
				v, err := strconv.ParseUint(string(p[:4]), 16, 32)
				if err != nil {
					return false
				}
				p = p[4:]
				rn := rune(v)
				if utf16.IsSurrogate(rn) {
					return false // never written by Marshal: leave it to encoding/json
				}
				b = utf8.AppendRune(b, rn)
			default:
				return false
			}
		}
	}
	if !expect(`{"seq":`) {
		return nil, false
	}
	seq := 0
	for seq < len(p) && p[seq] >= '0' && p[seq] <= '9' {
		seq++
	}
	n, err := strconv.ParseUint(string(p[:seq]), 10, 64)
	if err != nil {
		return nil, false
	}
	r.Seq = n
	p = p[seq:]
	fields := []struct {
		name     string
		s        *string
		i        *int64
		optional bool // left out of the line when empty (Marshal)
	}{
		{`,"time":`, &r.Time, nil, false}, {`,"user":`, &r.User, nil, false}, {`,"ssh_key":`, &r.SSHKey, nil, false},
		{`,"client":`, &r.Client, nil, false}, {`,"command":`, &r.Command, nil, false}, {`,"profile":`, &r.Profile, nil, false},
		{`,"outcome":`, &r.Outcome, nil, false}, {`,"reason":`, &r.Reason, nil, false}, {`,"name":`, &r.Name, nil, true},
		{`,"size":`, nil, &r.Size, false}, {`,"digest":`, &r.Digest, nil, false},
		{`,"hashed_by":`, &r.HashedBy, nil, true}, {`,"kind":`, &r.Kind, nil, false},
		{`,"voter":`, &r.Voter, nil, true}, {`,"key":`, &r.Key, nil, false}, {`,"next_key":`, &r.NextKey, nil, true},
		{`,"signature":`, &r.Signature, nil, false}, {`,"sandbox":`, &r.Sandbox, nil, false}, {`,"prev":`, &r.Prev, nil, false},
	}
	for _, f := range fields {
		if !expect(f.name) {
			if f.optional {
				continue
			}
			return nil, false
		}
		if f.i != nil {
			v, ok := num()
			if !ok {
				return nil, false
			}
			*f.i = v
			continue
		}
		if !str(f.s) {
			return nil, false
		}
	}
	if string(p) != "}" {
		return nil, false
	}
	return &r, true
}
