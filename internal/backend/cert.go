package backend

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

// OpenPGP packet tags (RFC 9580, 5) that PublicPackets treats apart.
const (
	tagSecretKey    = 5
	tagPublicKey    = 6
	tagSecretSubkey = 7
	tagTrust        = 12
	tagPublicSubkey = 14
)

// ReadPublic reads the key or certificate file at path, checks that it is
// exactly one transferable key (ParseEntity), and returns its public
// certificate, ASCII-armored, as PublicPackets makes it: what `pubkey`
// serves. The file's bytes are cleared afterwards.
func ReadPublic(path string) ([]byte, error) {
	data, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	defer clear(data)
	out, err := publicArmored(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return out, nil
}

func publicArmored(data []byte) ([]byte, error) {
	e, err := ParseEntity(data)
	if err != nil {
		return nil, err
	}
	bin := data
	if isArmored(data) {
		block, err := armor.Decode(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("bad ASCII armor: %v", err)
		}
		if bin, err = io.ReadAll(io.LimitReader(block.Body, maxKeyFileSize+1)); err != nil {
			return nil, fmt.Errorf("bad ASCII armor: %v", err)
		}
		defer clear(bin)
	}
	pub, err := PublicPackets(bin)
	if err != nil {
		return nil, err
	}
	// The packets served are the key that was parsed and checked.
	if got, err := ParseEntity(pub); err != nil {
		return nil, fmt.Errorf("its public part does not parse: %v", err)
	} else if !bytes.Equal(got.PrimaryKey.Fingerprint, e.PrimaryKey.Fingerprint) {
		return nil, errors.New("its public part is another key")
	}
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		return nil, err
	}
	w.Write(pub)
	if err := w.Close(); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

func isArmored(data []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("-----BEGIN "))
}

// PublicPackets returns the transferable public key in the binary packet
// stream data: every packet in the given order and with its bytes as given
// (direct-key signatures and designated revokers, user IDs, user
// attributes, third-party signatures alike), except that a secret key or
// subkey packet becomes the public key or subkey packet of the same key (its
// leading public fields, RFC 9580 5.5.3) and GnuPG's local trust packets are
// left out, as gpg --export does. A rewritten packet keeps its header's
// format with the shortest length that fits, as GnuPG writes it.
//
// It refuses data that is not a sequence of complete packets with definite
// lengths, and a second primary key.
func PublicPackets(data []byte) ([]byte, error) {
	var out bytes.Buffer
	primaries := 0
	for off := 0; off < len(data); {
		p, err := nextPacket(data[off:])
		if err != nil {
			return nil, fmt.Errorf("packet at offset %d: %v", off, err)
		}
		off += p.size
		switch p.tag {
		case tagSecretKey, tagPublicKey:
			if primaries++; primaries > 1 {
				return nil, errors.New("holds more than one key: give exactly one")
			}
		}
		switch p.tag {
		case tagTrust:
			continue
		case tagSecretKey, tagSecretSubkey:
			n, err := publicLength(p.body)
			if err != nil {
				return nil, err
			}
			tag := byte(tagPublicKey)
			if p.tag == tagSecretSubkey {
				tag = tagPublicSubkey
			}
			writeHeader(&out, tag, p.newFormat, n)
			out.Write(p.body[:n])
		default:
			out.Write(p.raw)
		}
	}
	if primaries == 0 {
		return nil, errors.New("holds no key")
	}
	return out.Bytes(), nil
}

// withoutCardStubs rewrites the secret key packets of keys on a smartcard
// (S2K usage 254 or 255, GNU extension S2K 101 in its divert-to-card mode 2,
// as gpg --export-secret-keys writes a key moved with keytocard) into the
// public key packets of the same keys. They hold no secret, and go-crypto
// reads only GnuPG's mode 1 stub (gnu-dummy). It reports false, and
// allocates nothing, when data holds no such packet or does not split into
// packets (ParseEntity then reports what is wrong).
func withoutCardStubs(data []byte) ([]byte, bool) {
	var out []byte
	for off := 0; off < len(data); {
		p, err := nextPacket(data[off:])
		if err != nil {
			clear(out)
			return nil, false
		}
		n := 0
		if p.tag == tagSecretKey || p.tag == tagSecretSubkey {
			if n, err = publicLength(p.body); err != nil || !isCardStub(p.body[n:]) {
				n = 0
			}
		}
		if n > 0 && out == nil {
			out = append(make([]byte, 0, len(data)), data[:off]...)
		}
		switch {
		case n > 0:
			tag := byte(tagPublicKey)
			if p.tag == tagSecretSubkey {
				tag = tagPublicSubkey
			}
			var h bytes.Buffer
			writeHeader(&h, tag, p.newFormat, n)
			out = append(append(out, h.Bytes()...), p.body[:n]...)
		case out != nil:
			out = append(out, p.raw...)
		}
		off += p.size
	}
	return out, out != nil
}

// isCardStub reports whether the secret part of a v4 key packet is GnuPG's
// stub for a key kept elsewhere in any mode but gnu-dummy (1), which
// go-crypto reads itself.
func isCardStub(s []byte) bool {
	return len(s) >= 8 && (s[0] == 254 || s[0] == 255) && s[2] == 101 &&
		string(s[4:7]) == "GNU" && s[7] != 1
}

type rawPacket struct {
	tag       byte
	newFormat bool
	raw       []byte // header and body
	body      []byte
	size      int
}

// nextPacket splits off the packet at the start of b.
func nextPacket(b []byte) (rawPacket, error) {
	var p rawPacket
	if len(b) < 2 || b[0]&0x80 == 0 {
		return p, errors.New("not an OpenPGP packet header")
	}
	var hdr, n int
	if b[0]&0x40 != 0 {
		p.newFormat, p.tag = true, b[0]&0x3f
		switch l := b[1]; {
		case l < 192:
			hdr, n = 2, int(l)
		case l < 224:
			if len(b) < 3 {
				return p, io.ErrUnexpectedEOF
			}
			hdr, n = 3, (int(l)-192)<<8+int(b[2])+192
		case l == 255:
			if len(b) < 6 {
				return p, io.ErrUnexpectedEOF
			}
			hdr, n = 6, int(binary.BigEndian.Uint32(b[2:6]))
		default:
			return p, errors.New("partial body length in a key")
		}
	} else {
		p.tag = (b[0] >> 2) & 0x0f
		switch b[0] & 3 {
		case 0:
			hdr, n = 2, int(b[1])
		case 1:
			if len(b) < 3 {
				return p, io.ErrUnexpectedEOF
			}
			hdr, n = 3, int(binary.BigEndian.Uint16(b[1:3]))
		case 2:
			if len(b) < 5 {
				return p, io.ErrUnexpectedEOF
			}
			hdr, n = 5, int(binary.BigEndian.Uint32(b[1:5]))
		default:
			return p, errors.New("indeterminate length in a key")
		}
	}
	if p.tag == 0 {
		return p, errors.New("reserved packet tag 0")
	}
	if n < 0 || n > len(b)-hdr {
		return p, io.ErrUnexpectedEOF
	}
	p.size = hdr + n
	p.raw, p.body = b[:p.size], b[hdr:p.size]
	return p, nil
}

func writeHeader(w *bytes.Buffer, tag byte, newFormat bool, n int) {
	if newFormat {
		w.WriteByte(0xc0 | tag)
		switch {
		case n < 192:
			w.WriteByte(byte(n))
		case n < 8384:
			n -= 192
			w.Write([]byte{byte(n>>8) + 192, byte(n)})
		default:
			w.WriteByte(255)
			w.Write(binary.BigEndian.AppendUint32(nil, uint32(n)))
		}
		return
	}
	switch {
	case n < 1<<8:
		w.Write([]byte{0x80 | tag<<2, byte(n)})
	case n < 1<<16:
		w.Write([]byte{0x80 | tag<<2 | 1, byte(n >> 8), byte(n)})
	default:
		w.WriteByte(0x80 | tag<<2 | 2)
		w.Write(binary.BigEndian.AppendUint32(nil, uint32(n)))
	}
}

// publicLength is the length of the public fields at the start of a secret
// key packet's body: what the public key packet of the same key holds.
func publicLength(body []byte) (int, error) {
	if len(body) < 1 {
		return 0, errors.New("empty key packet")
	}
	switch v := body[0]; v {
	case 4:
		if len(body) < 6 {
			return 0, io.ErrUnexpectedEOF
		}
		n, err := publicFieldsV4(body[5], body[6:])
		if err != nil {
			return 0, err
		}
		return 6 + n, nil
	case 6:
		// version, time, algorithm, then the public fields' length
		if len(body) < 10 {
			return 0, io.ErrUnexpectedEOF
		}
		n := int(binary.BigEndian.Uint32(body[6:10]))
		if n > len(body)-10 {
			return 0, io.ErrUnexpectedEOF
		}
		return 10 + n, nil
	default:
		return 0, fmt.Errorf("a v%d secret key, which signstar does not read", v)
	}
}

// publicFieldsV4 is the length of a v4 key's algorithm-specific public
// fields at the start of b.
func publicFieldsV4(algo byte, b []byte) (int, error) {
	r := fieldReader{b: b}
	switch algo {
	case 1, 2, 3: // RSA: n, e
		r.mpi()
		r.mpi()
	case 16, 20: // Elgamal: p, g, y
		r.mpi()
		r.mpi()
		r.mpi()
	case 17: // DSA: p, q, g, y
		r.mpi()
		r.mpi()
		r.mpi()
		r.mpi()
	case 19, 22: // ECDSA, EdDSA (legacy): curve OID, point
		r.oid()
		r.mpi()
	case 18: // ECDH: curve OID, point, KDF parameters
		r.oid()
		r.mpi()
		r.oid() // a length octet and that many octets, like an OID
	case 25, 27: // X25519, Ed25519
		r.fixed(32)
	case 26: // X448
		r.fixed(56)
	case 28: // Ed448
		r.fixed(57)
	default:
		return 0, fmt.Errorf("public-key algorithm %d, whose public part signstar cannot tell from its secret", algo)
	}
	if r.err != nil {
		return 0, r.err
	}
	return r.off, nil
}

type fieldReader struct {
	b   []byte
	off int
	err error
}

func (r *fieldReader) fixed(n int) {
	if r.err == nil && n > len(r.b)-r.off {
		r.err = io.ErrUnexpectedEOF
	}
	if r.err == nil {
		r.off += n
	}
}

func (r *fieldReader) mpi() {
	if r.err != nil {
		return
	}
	if len(r.b)-r.off < 2 {
		r.err = io.ErrUnexpectedEOF
		return
	}
	bits := int(binary.BigEndian.Uint16(r.b[r.off:]))
	r.off += 2
	r.fixed((bits + 7) / 8)
}

func (r *fieldReader) oid() {
	if r.err != nil {
		return
	}
	if len(r.b)-r.off < 1 {
		r.err = io.ErrUnexpectedEOF
		return
	}
	n := int(r.b[r.off])
	r.off++
	if n == 0 || n == 0xff {
		r.err = errors.New("reserved length of a curve OID or KDF field")
		return
	}
	r.fixed(n)
}
