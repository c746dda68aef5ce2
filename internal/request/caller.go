package request

import (
	"os"
	"os/user"
	"strconv"

	"github.com/signstar/signstar/internal/sshenv"
)

// Caller is who asks: read once, at the start, and then only passed around.
// It is both the authorization input (profile users and ssh_keys) and the
// audit record's who.
type Caller struct {
	// User is the Unix user of the real uid, never $USER.
	User string
	// SSHKey is the SHA256 fingerprint of the SSH key that authenticated
	// the session (sshd's ExposeAuthInfo), "" when unknown.
	SSHKey string
	// Client is the client's address from SSH_CONNECTION, "" when local.
	Client string
}

// CurrentCaller reads the caller of this process. getenv is read only for
// the variables sshd sets.
//
// An ExposeAuthInfo file that cannot be trusted or names several keys gives
// SSHKey "": a profile restricted by ssh_keys then refuses, which is the
// safe side.
func CurrentCaller(getenv func(string) string) Caller {
	c := Caller{User: uidUser(os.Getuid()), Client: sshenv.Client(getenv)}
	if fp, err := sshenv.KeyFingerprint(getenv); err == nil {
		c.SSHKey = fp
	}
	return c
}

// uidUser names the user of uid, or gives the number when it has no name.
func uidUser(uid int) string {
	s := strconv.Itoa(uid)
	if u, err := user.LookupId(s); err == nil {
		return u.Username
	}
	return s
}

// keyHint is " with SSH key FP" for messages, "" without a key.
func (c Caller) keyHint() string {
	if c.SSHKey == "" {
		return ""
	}
	return " with SSH key " + c.SSHKey
}
