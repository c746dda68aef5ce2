package main

import "github.com/signstar/signstar/internal/sshenv"

// sshIdentity returns the client address (from SSH_CONNECTION) and the SHA256
// fingerprint of the SSH key used (from sshd's ExposeAuthInfo file), "" when
// unknown. getenv is read only for variables sshd sets.
//
// An ExposeAuthInfo file that cannot be trusted or names several keys gives
// "": a profile restricted by ssh_keys then refuses, which is the safe side.
func sshIdentity(getenv func(string) string) (client, sshKey string) {
	client = sshenv.Client(getenv)
	sshKey, err := sshenv.KeyFingerprint(getenv)
	if err != nil {
		return client, ""
	}
	return client, sshKey
}
