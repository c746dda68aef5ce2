package sshenv

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"strings"
)

// keyFields is the number of wire strings (or mpints, which are encoded the
// same way) after the type name in an SSH public key blob: RFC 4253 6.6
// (ssh-rsa, ssh-dss), RFC 5656 3.1 (ecdsa-sha2-*), RFC 8709 4 (ssh-ed25519)
// and OpenSSH's PROTOCOL.u2f (sk-*). The curve name of an ECDSA key is its
// first field and must match the type.
var keyFields = map[string]int{
	"ssh-rsa":                            2, // e, n
	"ssh-dss":                            4, // p, q, g, y
	"ecdsa-sha2-nistp256":                2, // curve, Q
	"ecdsa-sha2-nistp384":                2,
	"ecdsa-sha2-nistp521":                2,
	"ssh-ed25519":                        1, // 32-byte key
	"sk-ecdsa-sha2-nistp256@openssh.com": 3, // curve, Q, application
	"sk-ssh-ed25519@openssh.com":         2, // 32-byte key, application
}

// certSuffix turns a key type into its OpenSSH certificate type
// (PROTOCOL.certkeys): ssh-ed25519 -> ssh-ed25519-cert-v01@openssh.com,
// sk-ssh-ed25519@openssh.com -> sk-ssh-ed25519-cert-v01@openssh.com.
const certSuffix = "-cert-v01@openssh.com"

// wire reads SSH wire-format values (RFC 4251 5) from a byte slice.
type wire struct {
	b  []byte
	ok bool
}

func (w *wire) str() []byte {
	if !w.ok || len(w.b) < 4 {
		w.ok = false
		return nil
	}
	n := binary.BigEndian.Uint32(w.b)
	if uint64(n) > uint64(len(w.b)-4) {
		w.ok = false
		return nil
	}
	s := w.b[4 : 4+n]
	w.b = w.b[4+n:]
	return s
}

func (w *wire) skip(n int) {
	if !w.ok || len(w.b) < n {
		w.ok = false
		return
	}
	w.b = w.b[n:]
}

// keyBlob returns the type name a key or certificate blob starts with and
// the plain public key blob to fingerprint: for a certificate, the
// certified key, re-encoded as `ssh-keygen -lf` fingerprints it. ok is
// false for unknown types and for malformed or trailing bytes. It checks
// the structure, not the mathematics: sshd has verified the key with a
// signature before it wrote the file. (It replaces x/crypto/ssh's
// ParsePublicKey, whose package init cost every request 0.08 ms; the tests
// hold the two to the same fingerprints.)
func keyBlob(blob []byte) (name string, key []byte, ok bool) {
	w := wire{b: blob, ok: true}
	name = string(w.str())
	typ := name
	cert := false
	if base, found := strings.CutSuffix(typ, certSuffix); found {
		cert = true
		typ = base
		if strings.HasPrefix(base, "sk-") {
			typ = base + "@openssh.com"
		}
		w.str() // nonce
	}
	n, known := keyFields[typ]
	if !known || !w.ok {
		return "", nil, false
	}
	start := w.b
	var first []byte
	mpints := typ == "ssh-rsa" || typ == "ssh-dss"
	for i := range n {
		f := w.str()
		if i == 0 {
			first = f
		}
		if mpints && !canonicalMpint(f) {
			return "", nil, false
		}
	}
	if !w.ok {
		return "", nil, false
	}
	fields := start[:len(start)-len(w.b)]
	switch typ {
	case "ssh-ed25519", "sk-ssh-ed25519@openssh.com":
		if len(first) != 32 {
			return "", nil, false
		}
	case "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "sk-ecdsa-sha2-nistp256@openssh.com":
		if "ecdsa-sha2-"+string(first) != strings.TrimPrefix(strings.TrimSuffix(typ, "@openssh.com"), "sk-") {
			return "", nil, false
		}
	}
	if cert {
		// serial, type, key id, principals, valid after, valid before,
		// critical options, extensions, reserved, signature key, signature.
		w.skip(8 + 4)
		w.str()
		w.str()
		w.skip(8 + 8)
		for range 5 {
			w.str()
		}
	}
	if !w.ok || len(w.b) != 0 {
		return "", nil, false
	}
	if !cert {
		return name, blob, true
	}
	key = binary.BigEndian.AppendUint32(nil, uint32(len(typ)))
	key = append(key, typ...)
	return name, append(key, fields...), true
}

// canonicalMpint reports whether b is a positive mpint (RFC 4251 5) in its
// one encoding: no leading zero byte unless the next has its high bit set.
// ssh-keygen and sshd fingerprint the key as they re-encode it, so a blob
// with a padded number would have another fingerprint than the key's; sshd
// never writes one, and it is refused rather than fingerprinted wrong.
func canonicalMpint(b []byte) bool {
	if len(b) == 0 {
		return true // zero
	}
	if b[0]&0x80 != 0 {
		return false // negative
	}
	return b[0] != 0 || (len(b) > 1 && b[1]&0x80 != 0)
}

// fingerprintSHA256 is ssh-keygen's SHA-256 fingerprint of a key blob.
func fingerprintSHA256(key []byte) string {
	h := sha256.Sum256(key)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(h[:])
}
