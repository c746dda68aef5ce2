package sshenv

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
)

// MaxAuthInfo bounds the ExposeAuthInfo file we read. sshd writes one line
// per authentication method, a few hundred bytes each (an RSA-16384 key
// line is about 2.8 KiB).
const MaxAuthInfo = 64 << 10

// isAuthInfoPath reports whether p is the name OpenSSH gives the file: session.c
// prepare_auth_info_file calls mkstemp("/tmp/sshauth.XXXXXXXXXXXXXXX") as
// the user, whatever TMPDIR says, and glibc fills the X with [A-Za-z0-9].
func isAuthInfoPath(p string) bool {
	rest, ok := strings.CutPrefix(p, "/tmp/sshauth.")
	if !ok || len(rest) != 15 {
		return false
	}
	for _, c := range []byte(rest) {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// ErrSeveralKeys means more than one public key authenticated the session
// (AuthenticationMethods publickey,publickey): no single key can be named,
// so an ssh_keys check cannot be decided and the caller must refuse.
var ErrSeveralKeys = errors.New("several public keys authenticated this session")

// AuthInfoError says why the ExposeAuthInfo file was not trusted or not
// understood. It never quotes the file's contents.
type AuthInfoError struct {
	Path   string
	Reason string
}

func (e *AuthInfoError) Error() string {
	if e.Path == "" {
		return "ssh auth info: " + e.Reason
	}
	return "ssh auth info " + e.Path + ": " + e.Reason
}

// KeyFingerprint returns the SHA-256 fingerprint ("SHA256:...", as
// ssh-keygen -lf prints it) of the public key that authenticated the SSH
// session, from the file sshd names in SSH_USER_AUTH when ExposeAuthInfo
// is on. It returns "" and no error when SSH_USER_AUTH is unset (sshd does
// not expose it, or the process is local) or when no public key was used.
//
// The file is trusted only if its path is the one sshd creates, it is a
// regular file (symbolic links are not followed) owned by the current uid
// and not accessible to others, and it is at most MaxAuthInfo bytes. Any
// doubt is an error: a caller deciding ssh_keys must then refuse.
func KeyFingerprint(getenv func(string) string) (string, error) {
	path := getenv("SSH_USER_AUTH")
	if path == "" {
		return "", nil
	}
	if !isAuthInfoPath(path) {
		return "", &AuthInfoError{Reason: "SSH_USER_AUTH is not a file sshd creates (/tmp/sshauth.XXXXXXXXXXXXXXX)"}
	}
	data, err := readAuthInfo(path)
	if err != nil {
		return "", err
	}
	fp, err := ParseAuthInfo(data)
	if err != nil {
		var ae *AuthInfoError
		if errors.As(err, &ae) {
			ae.Path = path
		}
		return "", err
	}
	return fp, nil
}

// ParseAuthInfo returns the fingerprint of the public key named in the
// "publickey KEYTYPE BASE64" lines of an ExposeAuthInfo file, "" when there
// is none, and ErrSeveralKeys when different keys were used. Lines of other
// methods (password, keyboard-interactive, gssapi-with-mic, hostbased) are
// skipped. For an OpenSSH certificate the fingerprint is that of the
// certified key, as ssh-keygen -lf prints it.
func ParseAuthInfo(data []byte) (string, error) {
	if len(data) > MaxAuthInfo {
		return "", &AuthInfoError{Reason: "file is too large"}
	}
	fp := ""
	for _, line := range bytes.Split(data, []byte("\n")) {
		method, rest, _ := bytes.Cut(line, []byte(" "))
		if string(method) != "publickey" {
			continue
		}
		f := bytes.Split(rest, []byte(" "))
		if len(f) < 2 {
			return "", &AuthInfoError{Reason: "publickey line without a key"}
		}
		blob, err := base64.StdEncoding.Strict().DecodeString(string(f[1]))
		if err != nil {
			return "", &AuthInfoError{Reason: "publickey line with a malformed key"}
		}
		name, key, ok := keyBlob(blob)
		if !ok {
			return "", &AuthInfoError{Reason: "publickey line with an unparseable key"}
		}
		if name != string(f[0]) {
			return "", &AuthInfoError{Reason: "publickey line whose key type does not match its key"}
		}
		k := fingerprintSHA256(key)
		if fp != "" && fp != k {
			return "", ErrSeveralKeys
		}
		fp = k
	}
	return fp, nil
}
