package client

import (
	"strings"
	"testing"
)

// The enclave's exit status names what happened; a quorum profile's vote
// (3) is neither a refusal nor a failure of the enclave.
func TestRemoteErrorWording(t *testing.T) {
	for exit, want := range map[int]string{
		1:   "the enclave failed `sign` (exit status 1): m",
		2:   "the enclave refused `sign` (exit status 2): m",
		3:   "the enclave recorded a vote, not signed yet, `sign` (exit status 3): m",
		255: "ssh failed `sign` (exit status 255): m",
	} {
		e := &RemoteError{Command: "sign", Exit: exit, Message: "m"}
		if got := e.Error(); got != want || e.Refused() != (exit == 2) {
			t.Errorf("exit %d: %q, refused %v", exit, got, e.Refused())
		}
	}
	if strings.Contains((&RemoteError{Exit: 3}).Error(), "failed") {
		t.Error("a vote is worded as a failure")
	}
}
