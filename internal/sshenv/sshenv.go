// Package sshenv reads what sshd tells a forced command about the session:
// the client address (SSH_CONNECTION) and the public key that authenticated
// it (the ExposeAuthInfo file named by SSH_USER_AUTH).
//
// Both come from the environment, which only sshd sets for a remote
// signstar: sshd rebuilds the child's environment, and the recommended
// configuration accepts nothing from the client (no AcceptEnv,
// PermitUserEnvironment no). Still, the values are checked as if hostile.
package sshenv

import (
	"net/netip"
	"strconv"
	"strings"
)

// Client returns the client IP address from SSH_CONNECTION
// ("CLIENT_IP CLIENT_PORT SERVER_IP SERVER_PORT"), in canonical form, or ""
// when the variable is absent or malformed. An IPv4-mapped IPv6 address is
// given as the IPv4 address.
func Client(getenv func(string) string) string {
	f := strings.Split(getenv("SSH_CONNECTION"), " ")
	if len(f) != 4 {
		return ""
	}
	client, err := netip.ParseAddr(f[0])
	if err != nil {
		return ""
	}
	if _, err := netip.ParseAddr(f[2]); err != nil {
		return ""
	}
	for _, p := range []string{f[1], f[3]} {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 || p != strconv.FormatUint(n, 10) {
			return ""
		}
	}
	// The zone of a link-local address names an interface of the server,
	// not the client: leave it out.
	return client.WithZone("").Unmap().String()
}
