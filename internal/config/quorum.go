package config

import (
	"fmt"
	"strings"

	"github.com/signstar/signstar/internal/policy"
)

// A quorum profile signs only bytes that quorum distinct voters sent
// within quorum_window (internal/policy/quorum.go counts them). Voters and
// publishers are named as users or ssh_keys are: a "SHA256:..." SSH key
// fingerprint, or a Unix user name.

// checkQuorum checks a profile's quorum keys and parses quorum_window; e
// reports an error at a profile key.
func (p *Profile) checkQuorum(e func(key, msg string) error) error {
	if p.Quorum == 0 {
		for _, k := range []struct {
			key string
			set bool
		}{{"voters", p.Voters != nil}, {"publishers", p.Publishers != nil}, {"quorum_window", p.QuorumWindowText != ""}} {
			if k.set {
				return e(k.key, "needs quorum: set quorum to how many distinct voters must send the same bytes")
			}
		}
		return nil
	}
	if p.Quorum < 0 {
		return e("quorum", fmt.Sprintf("%d: must be at least 1", p.Quorum))
	}
	if len(p.Voters) == 0 {
		return e("voters", "missing: a quorum profile lists its voters (SSH key fingerprints or Unix users)")
	}
	if p.Quorum > len(p.Voters) {
		return e("quorum", fmt.Sprintf("%d is more than the %d voters listed: the quorum could never be met", p.Quorum, len(p.Voters)))
	}
	if p.QuorumWindowText == "" {
		return e("quorum_window", "missing: how long votes count, e.g. \"1h\" or \"2d\"")
	}
	w, err := policy.ParseWindow(p.QuorumWindowText)
	if err != nil {
		return e("quorum_window", err.Error())
	}
	p.QuorumWindow = w
	seen := map[string]string{}
	for _, l := range []struct {
		key   string
		names []string
	}{{"voters", p.Voters}, {"publishers", p.Publishers}} {
		for _, n := range l.names {
			if prev, ok := seen[n]; ok {
				if prev == l.key {
					return e(l.key, fmt.Sprintf("%q is listed twice", n))
				}
				return e(l.key, fmt.Sprintf("%q is a voter already: a voter's request is a vote, and the one that meets the quorum is signed", n))
			}
			seen[n] = l.key
			if err := p.checkMember(n); err != "" {
				return e(l.key, err)
			}
		}
	}
	return nil
}

// checkMember says why n cannot name a voter or publisher of p, "" when
// it can: a fingerprint the profile's ssh_keys admit, or one of its users.
func (p *Profile) checkMember(n string) string {
	if strings.HasPrefix(n, "SHA256:") {
		if !validSSHKey(n) {
			return fmt.Sprintf("%q is not an SSH key fingerprint: use the SHA256:... form of ssh-keygen -lf", n)
		}
		if !p.AllowsSSHKey(n) {
			return fmt.Sprintf("%q is not among the profile's ssh_keys, so it could never reach the profile", n)
		}
		return ""
	}
	if !validUser(n) {
		return fmt.Sprintf("%q is neither an SSH key fingerprint (SHA256:...) nor a valid Unix user name", n)
	}
	if !p.Allows(n) {
		return fmt.Sprintf("user %q is not among the profile's users, so it could never reach the profile", n)
	}
	return ""
}

// IsQuorum reports whether the profile signs only on a quorum of votes.
func (p *Profile) IsQuorum() bool { return p.Quorum > 0 }

// VoterOf is the entry of voters that the caller (Unix user, SSH key
// fingerprint or "") is, "" when none: the first that names the caller's
// key or user, so one caller always counts as the same voter.
func (p *Profile) VoterOf(user, sshKey string) string { return member(p.Voters, user, sshKey) }

// IsPublisher reports whether the caller is one of publishers.
func (p *Profile) IsPublisher(user, sshKey string) bool {
	return member(p.Publishers, user, sshKey) != ""
}

func member(list []string, user, sshKey string) string {
	for _, n := range list {
		if (sshKey != "" && n == sshKey) || (!strings.HasPrefix(n, "SHA256:") && n == user) {
			return n
		}
	}
	return ""
}
