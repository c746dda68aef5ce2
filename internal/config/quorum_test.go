package config

import (
	"strings"
	"testing"
	"time"
)

const (
	fpA = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	fpB = "SHA256:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
	fpP = "SHA256:PPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPP"
)

var quorumBase = base + "quorum = 2\nvoters = [\"" + fpA + "\", \"" + fpB + "\"]\nquorum_window = \"2h\"\n"

func TestQuorumConfig(t *testing.T) {
	c, err := Parse("f.toml", []byte(quorumBase+"publishers = [\""+fpP+"\", \"signer\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := &c.Profiles[0]
	if !p.IsQuorum() || p.QuorumWindow != 2*time.Hour {
		t.Fatalf("%+v", p)
	}
	if p.VoterOf("signer", fpB) != fpB || p.VoterOf("signer", fpP) != "" || p.VoterOf("signer", "") != "" {
		t.Error("VoterOf by key")
	}
	if !p.IsPublisher("signer", fpP) || !p.IsPublisher("signer", "") || p.IsPublisher("other", fpA) {
		t.Error("IsPublisher")
	}
	// Users as voters: the first entry that names the caller.
	c, err = Parse("f.toml", []byte(strings.Replace(base, `users = ["signer"]`, `users = ["signer", "b2"]`, 1)+
		"quorum = 1\nvoters = [\"b2\", \"signer\"]\nquorum_window = \"30m\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p := &c.Profiles[0]; p.VoterOf("signer", fpA) != "signer" || p.VoterOf("b2", "") != "b2" {
		t.Error("VoterOf by user")
	}
	if c.Profiles[0].QuorumWindow != 30*time.Minute {
		t.Error("window")
	}
}

func TestQuorumConfigErrors(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{base + "voters = [\"" + fpA + "\"]\n", "profile[1].voters: needs quorum"},
		{base + "quorum_window = \"1h\"\n", "profile[1].quorum_window: needs quorum"},
		{base + "publishers = [\"signer\"]\n", "profile[1].publishers: needs quorum"},
		{base + "quorum = -1\n", "profile[1].quorum: -1: must be at least 1"},
		{base + "quorum = 2\nquorum_window = \"1h\"\n", "profile[1].voters: missing"},
		{strings.Replace(quorumBase, "quorum = 2", "quorum = 3", 1), "f.toml:9: profile[1].quorum: 3 is more than the 2 voters listed"},
		{strings.Replace(quorumBase, "quorum_window = \"2h\"\n", "", 1), "profile[1].quorum_window: missing"},
		{strings.Replace(quorumBase, `"2h"`, `"2 hours"`, 1), `profile[1].quorum_window: "2 hours" is not a duration`},
		{strings.Replace(quorumBase, `"2h"`, `"0h"`, 1), "must be more than zero"},
		{strings.Replace(quorumBase, `"2h"`, `"4000d"`, 1), "longer than ten years"},
		{strings.Replace(quorumBase, fpB, fpA, 1), `profile[1].voters: "` + fpA + `" is listed twice`},
		{strings.Replace(quorumBase, fpB, "SHA256:short", 1), "is not an SSH key fingerprint"},
		{strings.Replace(quorumBase, fpB, "Bob", 1), `"Bob" is neither an SSH key fingerprint (SHA256:...) nor a valid Unix user name`},
		{strings.Replace(quorumBase, fpB, "builder", 1), `user "builder" is not among the profile's users`},
		{quorumBase + "ssh_keys = [\"" + fpA + "\"]\n", `"` + fpB + `" is not among the profile's ssh_keys`},
		{quorumBase + "publishers = [\"" + fpA + "\"]\n", `profile[1].publishers: "` + fpA + `" is a voter already`},
		{quorumBase + "publishers = [\"" + fpP + "\", \"" + fpP + "\"]\n", "is listed twice"},
		{quorumBase + "publishers = [\"nobody\"]\n", `user "nobody" is not among the profile's users`},
		{quorumBase + "quorum = 2\n", "f.toml"},
	} {
		_, err := Parse("f.toml", []byte(c.text))
		if err == nil {
			t.Errorf("accepted:\n%s", c.text)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("error %q, want it to contain %q", err, c.want)
		}
	}
}
