package request

import (
	"fmt"

	"github.com/signstar/signstar/internal/config"
)

// selectProfile applies the contract: a client's --profile only if the
// caller is allowed it; else the server's --profile; else the first profile
// the caller is allowed.
func selectProfile(cfg *config.Config, c Caller, asked, server string) (*config.Profile, *stop) {
	allowed := func(p *config.Profile) bool {
		return p.Allows(c.User) && p.AllowsSSHKey(c.SSHKey)
	}
	name := asked
	if name == "" {
		name = server
	}
	if name != "" {
		p := cfg.Profile(name)
		// The same words whether the profile is missing or forbidden, so a
		// client cannot list the profiles by trying names.
		if p == nil || !allowed(p) {
			return nil, halt(RefusedProfile, fmt.Sprintf("profile %q is not available to user %s%s", name, c.User, c.keyHint()))
		}
		return p, nil
	}
	for i := range cfg.Profiles {
		if p := &cfg.Profiles[i]; allowed(p) {
			return p, nil
		}
	}
	return nil, halt(RefusedProfile, fmt.Sprintf("no profile is available to user %s%s: add the user to a profile's users", c.User, c.keyHint()))
}
