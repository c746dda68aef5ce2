package config

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/signstar/signstar/internal/policy"
	"github.com/signstar/signstar/internal/sandbox"
)

func TestExampleConfig(t *testing.T) {
	c, err := Load("../../configs/config.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Profiles) != 3 || c.Sandbox.Mode != sandbox.Enforce {
		t.Fatalf("got %+v", c)
	}
	repo := c.Profile("repo")
	if repo.MaxSize != 4<<30 || repo.Rate.N != 1000 || repo.Rate.Period != time.Hour {
		t.Errorf("repo: %+v", repo)
	}
	iso := c.Profile("iso")
	if iso.Rate.Period != 30*24*time.Hour || iso.GPGAgent.Socket != "/run/signstar/S.gpg-agent" || !iso.AllowsKind("iso") || iso.AllowsKind("pacman-db") {
		t.Errorf("iso: %+v", iso)
	}
	if c.Audit.Syslog != "" || c.Audit.SyslogRequired {
		t.Errorf("audit: %+v: the example's syslog lines are comments", c.Audit)
	}
	if c.Profile("card").PIV.Slot != "9c" {
		t.Errorf("card: %+v", c.Profile("card"))
	}
}

const base = `[audit]
path = "/var/log/signstar/audit.jsonl"

[[profile]]
name = "repo"
backend = "keyfile"
key = "/etc/signstar/repo.key"
users = ["signer"]
`

func TestErrors(t *testing.T) {
	cases := []struct{ text, want string }{
		{strings.Replace(base, `"/var/log/signstar/audit.jsonl"`, `"audit.jsonl"`, 1), "f.toml:2: audit.path: must be an absolute path"},
		{strings.Replace(base, "path =", "#", 1), "audit.path: missing"},
		{base + "hash = \"md5\"\n", `f.toml:9: profile[1].hash: "md5" is not supported`},
		{base + "max_size = \"lots\"\n", `f.toml:9: profile[1].max_size: "lots" is not a size`},
		{base + "rate = \"5 per hour\"\n", `f.toml:9: profile[1].rate: "5 per hour" is not a rate`},
		{base + "rate = \"0/1h\"\n", "must be more than zero"},
		{base + "max_files = -1\n", "f.toml:9: profile[1].max_files: -1: use 1 to 10000"},
		{base + "max_files = 0\n", "profile[1].max_files: 0: use 1 to 10000"},
		{base + "max_files = 10001\n", "profile[1].max_files: 10001: use 1 to 10000"},
		{base + "max_files = \"5\"\n", "f.toml"},
		{base + "kinds = [\"exe\"]\n", `profile[1].kinds: "exe" is not a kind`},
		{base + "ssh_keys = [\"MD5:aa\"]\n", "is not an SSH key fingerprint"},
		{base + "colour = \"blue\"\n", "f.toml:9: profile[1].colour: unknown key"},
		{base + "[profile.piv]\nslot = \"9c\"\n", "keyfile profiles take no"},
		{base + base[strings.Index(base, "[[profile]]"):], `profile[2].name: profile "repo" is defined twice`},
		{strings.Replace(base, `users = ["signer"]`, "", 1), "profile[1].users: missing"},
		{strings.Replace(base, `"keyfile"`, `"hsm"`, 1), `f.toml:6: profile[1].backend: "hsm" is not a backend`},
		{strings.Replace(base, `"keyfile"`, `"gpg-agent"`, 1), "profile[1].gpg_agent.socket: missing"},
		{strings.Replace(base, `"keyfile"`, `"piv"`, 1) + "[profile.piv]\nslot = \"9f\"\npin_file = \"/p\"\n", `f.toml:10: profile[1].piv.slot: "9f" is not a PIV slot`},
		{strings.Replace(base, `"keyfile"`, `"piv"`, 1), "profile[1].piv.pin_file: missing"},
		{"[audit]\npath = \"/x\"\n", "no [[profile]]"},
		{"[audit\n", "f.toml:1: "},
		{"[audit]\npath = 5\n", "f.toml"},
		{base + "[sandbox]\nmode = \"off\"\n", `"off" is not a mode`},
		{strings.Replace(base, "[[profile]]", "syslog_required = true\n[[profile]]", 1), "f.toml:4: audit.syslog_required: needs [audit] syslog"},
		{strings.Replace(base, "[[profile]]", "syslog = \"dev/log\"\n[[profile]]", 1), "f.toml:4: audit.syslog: must be an absolute path"},
		{strings.Replace(base, "[[profile]]", "syslog = \"/"+strings.Repeat("s", 107)+"\"\n[[profile]]", 1), "audit.syslog: is 108 bytes long; a unix socket path holds at most 107"},
		{strings.Replace(base, "[[profile]]", "syslog_required = \"yes\"\n[[profile]]", 1), "syslog_required"},
		{base + "next_key = \"/etc/signstar/next.key\"\n", "profile[1].next_key_from: missing"},
		{base + "next_key = \"/etc/signstar/next.key\"\nnext_key_from = \"2027-01-01\"\n", "profile[1].old_key_until: missing"},
		{base + "next_key = \"next.key\"\n", `profile[1].next_key: "next.key" must be an absolute path`},
		{base + "next_key = \"/etc/signstar/repo.key\"\n", "profile[1].next_key: \"/etc/signstar/repo.key\" is the profile's key"},
		{base + "old_key_until = \"2027-01-01\"\n", "profile[1].old_key_until: set without next_key"},
		{base + "next_key_from = \"2027-01-01\"\n", "profile[1].next_key_from: set without next_key"},
		{base + "next_key = \"/n\"\nnext_key_from = \"soon\"\nold_key_until = \"2027-02-01\"\n", `profile[1].next_key_from: "soon" is not a date`},
		{base + "next_key = \"/n\"\nnext_key_from = \"2027-02-01\"\nold_key_until = \"2027-01-31T23:59:59Z\"\n", "old_key_until: 2027-01-31T23:59:59Z is before next_key_from 2027-02-01"},
		{base + "next_key = \"/n\"\nnext_key_from = 2027-01-01\nold_key_until = \"2027-02-01\"\n", "next_key_from"},
		{strings.Replace(base, `"keyfile"`, `"piv"`, 1) + "next_key = \"/n\"\nnext_key_from = \"2027-01-01\"\nold_key_until = \"2027-02-01\"\n[profile.piv]\npin_file = \"/p\"\n", "profile[1].next_key: piv profiles cannot name a next key"},
	}
	for _, c := range cases {
		_, err := Parse("f.toml", []byte(c.text))
		if err == nil {
			t.Errorf("accepted:\n%s", c.text)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %q, want it to contain %q", err, c.want)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("error has several lines: %q", err)
		}
	}
}

func TestSizesAndRates(t *testing.T) {
	sizes := map[string]int64{"1": 1, "4GiB": 4 << 30, "512 MiB": 512 << 20, "1K": 1024, "1KB": 1000, "2TB": 2e12}
	for s, want := range sizes {
		if got, err := ParseSize(s); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "-1", "0", "1.5G", "1PiB", "99999999999999999999", "9999999999TiB"} {
		if _, err := ParseSize(s); err == nil {
			t.Errorf("ParseSize(%q) accepted", s)
		}
	}
	rates := map[string]time.Duration{"100/1h": time.Hour, "1/30d": 30 * 24 * time.Hour, "10/m": time.Minute, "5/90s": 90 * time.Second}
	for s, want := range rates {
		if r, err := policy.ParseRate(s); err != nil || r.Period != want {
			t.Errorf("ParseRate(%q) = %+v, %v", s, r, err)
		}
	}
	for _, s := range []string{"", "1", "1/", "1/0h", "0/1h", "1/1w", "1/100000d", "a/1h"} {
		if _, err := policy.ParseRate(s); err == nil {
			t.Errorf("ParseRate(%q) accepted", s)
		}
	}
}

// FuzzParse: any file is either a configuration that passed every check or
// a one-line error naming the file; never a panic.
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile("../../configs/config.toml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	f.Add([]byte(base))
	f.Add([]byte(base + "rate = \"1/30d\"\nmax_size = \"1GiB\"\nkinds = [\"iso\"]\n"))
	f.Add([]byte("[audit\n"))
	f.Add([]byte(base + "next_key = \"/etc/signstar/next.key\"\nnext_key_from = \"2027-01-01\"\nold_key_until = \"2027-02-01T12:00:00+02:00\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.toml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.toml") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("bad error %q", err)
			}
			return
		}
		if len(c.Profiles) == 0 || !strings.HasPrefix(c.Audit.Path, "/") {
			t.Fatalf("accepted an incomplete config: %+v", c)
		}
		for _, p := range c.Profiles {
			if p.Name == "" || p.Key == "" || len(p.Users) == 0 || (p.Hash != "sha256" && p.Hash != "sha512") {
				t.Fatalf("accepted profile %+v", p)
			}
			if p.NextKey != "" && (p.NextKey == p.Key || p.OldKeyUntil.Before(p.NextKeyFrom) || p.NextKeyFrom.IsZero() ||
				!contains(transitionBackends, p.Backend)) {
				t.Fatalf("accepted transition %+v", p)
			}
			if old, next := p.Signers(p.NextKeyFrom); !old && !next {
				t.Fatalf("no key signs at %v: %+v", p.NextKeyFrom, p)
			}
		}
	})
}

// TestNesting: brackets nested deeper than maxNesting are refused before
// the TOML parser, with the line; brackets in strings and comments do not
// count.
func TestNesting(t *testing.T) {
	deep := "x = " + strings.Repeat("[", 9) + strings.Repeat("]", 9) + "\n"
	if _, err := Parse("f.toml", []byte(base+"\n"+deep)); err == nil || !strings.Contains(err.Error(), "f.toml:10: arrays and inline tables nest deeper than 8") {
		t.Errorf("deep: %v", err)
	}
	quoted := base + "# [[[[[[[[[[\n" + `kinds = ["[[[[[[[[[[", '{{{{{{{{{', """
[[[[[[[[[[""", '''{{{{{{{{{{''']` + "\n"
	// The kinds are refused as kinds, by the checks after the parser.
	if _, err := Parse("f.toml", []byte(quoted)); err == nil || strings.Contains(err.Error(), "nest deeper") {
		t.Errorf("brackets in strings and comments: %v", err)
	}
}

// The configuration's kinds are the sniffers' (policy.Kinds) and "any":
// each parses and is held as given, and nothing else is a kind.
func TestKindsFromPolicy(t *testing.T) {
	if got, want := strings.Join(Kinds, ","), strings.Join(append(policy.Kinds, policy.KindAny), ","); got != want {
		t.Fatalf("kinds %s, policy's %s", got, want)
	}
	base := "[audit]\npath = \"/var/log/signstar/audit.jsonl\"\n\n[[profile]]\nname = \"p\"\nbackend = \"keyfile\"\nkey = \"/k\"\nusers = [\"u\"]\n"
	for _, k := range Kinds {
		c, err := Parse("f.toml", []byte(base+"kinds = [\""+k+"\"]\n"))
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		if p := &c.Profiles[0]; !p.AllowsKind(k) || (k != policy.KindAny && p.AllowsKind(policy.KindUnknown)) {
			t.Errorf("%s: %+v", k, p)
		}
	}
	if _, err := Parse("f.toml", []byte(base+"kinds = [\"deb\"]\n")); err == nil || !strings.Contains(err.Error(), `"deb" is not a kind`) {
		t.Errorf("deb: %v", err)
	}
}

func TestTransition(t *testing.T) {
	c, err := Parse("f.toml", []byte(base+"next_key = \"/etc/signstar/next.key\"\nnext_key_from = \"2027-01-01\"\nold_key_until = \"2027-02-01T12:00:00+02:00\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := c.Profile("repo")
	from, until := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 2, 1, 10, 0, 0, 0, time.UTC)
	if !p.NextKeyFrom.Equal(from) || !p.OldKeyUntil.Equal(until) {
		t.Fatalf("from %v until %v", p.NextKeyFrom, p.OldKeyUntil)
	}
	for _, c := range []struct {
		t         time.Time
		old, next bool
	}{
		{from.Add(-time.Second), true, false},
		{from, true, true},
		{until.Add(-time.Second), true, true},
		{until, false, true},
		{until.AddDate(5, 0, 0), false, true},
	} {
		if old, next := p.Signers(c.t); old != c.old || next != c.next {
			t.Errorf("at %v: old %v next %v, want %v %v", c.t, old, next, c.old, c.next)
		}
	}
	// The same instant twice is a switch without an overlap.
	c, err = Parse("f.toml", []byte(base+"next_key = \"/n\"\nnext_key_from = \"2027-01-01\"\nold_key_until = \"2027-01-01T00:00:00Z\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	p = c.Profile("repo")
	if old, next := p.Signers(from.Add(-time.Nanosecond)); !old || next {
		t.Errorf("before the switch: old %v next %v", old, next)
	}
	if old, next := p.Signers(from); old || !next {
		t.Errorf("at the switch: old %v next %v", old, next)
	}
	if old, next := (&Profile{Key: "/k"}).Signers(from); !old || next {
		t.Errorf("without next_key: old %v next %v", old, next)
	}
}

// TestAccept: signstar-v1 is taken only by a profile that can take it:
// kinds ["any"] (the enclave never sees the file) and hash sha512 (the
// client's state).
func TestAccept(t *testing.T) {
	for text, want := range map[string]string{
		base + "accept = [\"signstar-v2\"]\n":                                                `profile[1].accept: "signstar-v2" is not a request protocol: use "signstar-v1"`,
		base + "accept = [\"signstar-v1\", \"signstar-v1\"]\nhash = \"sha512\"\n":            `"signstar-v1" is listed twice`,
		base + "accept = [\"signstar-v1\"]\n":                                                `"signstar-v1" needs hash = "sha512"`,
		base + "accept = [\"signstar-v1\"]\nhash = \"sha512\"\nkinds = [\"pacman-db\"]\n":    `"signstar-v1" needs kinds = ["any"]`,
		base + "accept = [\"signstar-v1\"]\nhash = \"sha512\"\nkinds = [\"any\", \"iso\"]\n": `"signstar-v1" needs kinds = ["any"]`,
		base + "accept = \"signstar-v1\"\n":                                                  "accept",
		quorumBase + "accept = [\"signstar-v1\"]\nhash = \"sha512\"\n":                       `"signstar-v1" cannot be combined with quorum`,
	} {
		_, err := Parse("f.toml", []byte(text))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", text, err, want)
		}
	}
	for _, text := range []string{
		base + "accept = [\"signstar-v1\"]\nhash = \"sha512\"\n",
		base + "accept = [\"signstar-v1\"]\nhash = \"sha512\"\nkinds = [\"any\"]\n",
		base + "accept = []\n",
	} {
		c, err := Parse("f.toml", []byte(text))
		if err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		if got, want := c.Profiles[0].Accepts("signstar-v1"), strings.Contains(text, "signstar-v1"); got != want {
			t.Errorf("%q: Accepts = %v", text, got)
		}
	}
}
