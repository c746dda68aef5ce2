// Package config loads and checks signstar's TOML configuration.
//
// Every error names the file, the line (where one can be found) and the key,
// because an operator reading it at 3 a.m. should not have to guess.
package config

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/signstar/signstar/internal/archreq"
	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/backend/piv"
	"github.com/signstar/signstar/internal/digest"
	"github.com/signstar/signstar/internal/policy"
)

// DefaultPath is where signstar looks when no --config is given.
const DefaultPath = "/etc/signstar/config.toml"

// maxConfigSize bounds what we read: a config is a few KiB.
const maxConfigSize = 1 << 20

// Config is the whole file.
type Config struct {
	Audit    Audit     `toml:"audit"`
	Sandbox  Sandbox   `toml:"sandbox"`
	Profiles []Profile `toml:"profile"`

	// Path is the file the configuration was read from.
	Path string `toml:"-"`
}

// Audit is the [audit] table.
type Audit struct {
	Path          string `toml:"path"`
	Origin        string `toml:"origin"`
	CheckpointKey string `toml:"checkpoint_key"`
	// Syslog is the local syslog socket every record is also sent to;
	// "" for none.
	Syslog string `toml:"syslog"`
	// SyslogRequired makes a record that does not reach Syslog fail the
	// request.
	SyslogRequired bool `toml:"syslog_required"`
}

// Sandbox is the [sandbox] table.
type Sandbox struct {
	Mode string `toml:"mode"`
}

// Backends.
const (
	BackendKeyfile  = "keyfile"
	BackendGPGAgent = "gpg-agent"
	BackendPIV      = "piv"
)

// Kinds of artifact a profile may sign.
var Kinds = KeyInfo("profile", "kinds").Choices

// Profile is one [[profile]] table.
type Profile struct {
	Name           string   `toml:"name"`
	Backend        string   `toml:"backend"`
	Key            string   `toml:"key"`
	PassphraseFile string   `toml:"passphrase_file"`
	Hash           string   `toml:"hash"`
	MaxSizeText    string   `toml:"max_size"`
	Kinds          []string `toml:"kinds"`
	RateText       string   `toml:"rate"`
	MaxFilesValue  *int     `toml:"max_files"`
	Users          []string `toml:"users"`
	SSHKeys        []string `toml:"ssh_keys"`
	// Quorum, Voters, QuorumWindowText and Publishers make a quorum
	// profile (quorum.go).
	Quorum           int      `toml:"quorum"`
	Voters           []string `toml:"voters"`
	QuorumWindowText string   `toml:"quorum_window"`
	Publishers       []string `toml:"publishers"`
	// NextKey, NextKeyFromText and OldKeyUntilText are a key transition
	// (transition.go).
	NextKey         string   `toml:"next_key"`
	NextKeyFromText string   `toml:"next_key_from"`
	OldKeyUntilText string   `toml:"old_key_until"`
	Accept          []string `toml:"accept"`
	GPGAgent        GPGAgent `toml:"gpg_agent"`
	PIV             PIV      `toml:"piv"`
	TPM             TPM      `toml:"tpm"`

	// HashFunc is hash, parsed.
	HashFunc crypto.Hash `toml:"-"`
	// MaxSize is max_size in bytes; 0 means no limit.
	MaxSize int64 `toml:"-"`
	// Rate is the parsed rate; nil means no limit.
	Rate *policy.Rate `toml:"-"`
	// MaxFiles is max_files, or its default.
	MaxFiles int `toml:"-"`
	// QuorumWindow is quorum_window, parsed; 0 without a quorum.
	QuorumWindow time.Duration `toml:"-"`
	// NextKeyFrom and OldKeyUntil are next_key_from and old_key_until,
	// parsed; zero without a next_key.
	NextKeyFrom time.Time `toml:"-"`
	OldKeyUntil time.Time `toml:"-"`
}

// GPGAgent is [profile.gpg_agent].
type GPGAgent struct {
	Socket string `toml:"socket"`
	// PINFile holds the PIN of the smartcard behind the agent, for a key
	// the agent keeps on a card (optional).
	PINFile string `toml:"pin_file"`
}

// PIV is [profile.piv].
type PIV struct {
	Reader  string `toml:"reader"`
	Slot    string `toml:"slot"`
	PINFile string `toml:"pin_file"`
}

// Error is a configuration error with its location.
type Error struct {
	File string
	Line int    // 0 when unknown
	Key  string // e.g. profile[1].hash; "" for syntax errors
	Msg  string
}

func (e *Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line)
	}
	if e.Key != "" {
		return fmt.Sprintf("%s: %s: %s", loc, e.Key, e.Msg)
	}
	return fmt.Sprintf("%s: %s", loc, e.Msg)
}

// Load reads and checks the configuration at path, and that the signing
// user can change neither it nor the directories of the files it names
// (perm.go).
func Load(path string) (*Config, error) {
	return load(path, true)
}

// LoadUntrusted is Load without the owner and mode checks of the
// configuration, its directories and those of the files it names, for
// `signstar doctor`, which reports each of them itself instead of stopping
// at the first. Nothing may sign with what it returns.
func LoadUntrusted(path string) (*Config, error) {
	return load(path, false)
}

func load(path string, trust bool) (*Config, error) {
	f, err := openConfig(path, trust)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, &Error{File: path, Msg: "cannot read configuration: " + errText(err)}
	}
	if len(data) > maxConfigSize {
		return nil, &Error{File: path, Msg: "configuration is larger than 1 MiB"}
	}
	c, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	if trust {
		if err := c.checkPaths(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func errText(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// Parse checks data as the configuration file named path.
func Parse(path string, data []byte) (*Config, error) {
	if err := checkNesting(path, data); err != nil {
		return nil, err
	}
	var c Config
	md, err := toml.Decode(string(data), &c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			line := pe.Position.Line
			// The library counts an error found at a line's end on the
			// next line; count from the error's offset instead.
			if st := pe.Position.Start; st > 0 && st <= len(data) {
				line = 1 + bytes.Count(data[:st], []byte("\n"))
			}
			return nil, &Error{File: path, Line: line, Msg: oneLine(pe.Message)}
		}
		// Type mismatches ("incompatible types") come back as plain errors
		// naming the key; find its line ourselves.
		return nil, &Error{File: path, Msg: oneLine(err.Error())}
	}
	c.Path = path
	loc := locator{path: path, lines: strings.Split(string(data), "\n")}
	if und := md.Undecoded(); len(und) > 0 {
		k := und[0]
		return nil, loc.errKey(k, "unknown key (check the spelling against the documentation)")
	}
	if err := c.check(&loc); err != nil {
		return nil, err
	}
	return &c, nil
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

func (c *Config) check(loc *locator) error {
	if c.Audit.Path == "" {
		return loc.err("audit", -1, "path", "missing: set the audit log path, e.g. /var/log/signstar/audit.jsonl")
	}
	if !strings.HasPrefix(c.Audit.Path, "/") {
		return loc.err("audit", -1, "path", "must be an absolute path")
	}
	switch a := &c.Audit; {
	case a.Origin != "" && !audit.ValidOrigin(a.Origin):
		return loc.err("audit", -1, "origin", fmt.Sprintf("%q is not an origin: use 1 to 255 printable ASCII characters without spaces or '+', e.g. \"example.org/signstar\"", a.Origin))
	case a.CheckpointKey != "" && !strings.HasPrefix(a.CheckpointKey, "/"):
		return loc.err("audit", -1, "checkpoint_key", "must be an absolute path")
	case a.CheckpointKey != "" && a.Origin == "":
		return loc.err("audit", -1, "origin", "missing: checkpoint_key needs the origin its checkpoints name (the --origin given to signstar audit keygen)")
	case a.Origin != "" && a.CheckpointKey == "":
		return loc.err("audit", -1, "checkpoint_key", "missing: origin needs the key that signs its checkpoints (make one with signstar audit keygen)")
	}
	if err := c.Audit.checkSyslog(loc); err != nil {
		return err
	}
	if c.Sandbox.Mode == "" {
		c.Sandbox.Mode = defaultOf("sandbox", "mode")
	}
	if modes := KeyInfo("sandbox", "mode").Choices; !contains(modes, c.Sandbox.Mode) {
		return loc.err("sandbox", -1, "mode", fmt.Sprintf("%q is not a mode: use %s", c.Sandbox.Mode, orQuoted(modes)))
	}
	if len(c.Profiles) == 0 {
		return &Error{File: loc.path, Msg: "no [[profile]]: define at least one signing profile"}
	}
	seen := map[string]bool{}
	for i := range c.Profiles {
		p := &c.Profiles[i]
		if err := p.check(loc, i); err != nil {
			return err
		}
		if seen[p.Name] {
			return loc.err("profile", i, "name", fmt.Sprintf("profile %q is defined twice", p.Name))
		}
		seen[p.Name] = true
	}
	return nil
}

// maxSocketPath is the longest path a unix socket address holds
// (sun_path is 108 bytes with its NUL).
const maxSocketPath = 107

func (a *Audit) checkSyslog(loc *locator) error {
	switch {
	case a.Syslog == "" && a.SyslogRequired:
		return loc.err("audit", -1, "syslog_required", "needs [audit] syslog, the socket to send the records to (e.g. \"/dev/log\")")
	case a.Syslog == "":
		return nil
	case !strings.HasPrefix(a.Syslog, "/"):
		return loc.err("audit", -1, "syslog", "must be an absolute path (a unix socket, e.g. \"/dev/log\")")
	case len(a.Syslog) > maxSocketPath:
		return loc.err("audit", -1, "syslog", fmt.Sprintf("is %d bytes long; a unix socket path holds at most %d", len(a.Syslog), maxSocketPath))
	case strings.IndexByte(a.Syslog, 0) >= 0:
		return loc.err("audit", -1, "syslog", "holds a NUL byte")
	}
	return nil
}

// Validators are plain loops rather than regular expressions: compiling
// seven expressions costs a one-shot signing process a noticeable share of
// its start-up, and these shapes are simple.

// ValidName reports whether s may name a profile: 1 to 64 letters, digits,
// '.', '_' or '-', starting with a letter or digit.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 64 || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// validUser follows useradd's default NAME_REGEX, plus '.' and a trailing
// '$' for machine accounts.
func validUser(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c == '_':
		case i > 0 && (c >= '0' && c <= '9' || c == '.' || c == '-'):
		case i > 0 && i == len(s)-1 && c == '$':
		default:
			return false
		}
	}
	return true
}

// validSSHKey accepts what ssh-keygen -lf prints for SHA-256: "SHA256:" and
// 43 characters of unpadded base64.
func validSSHKey(s string) bool {
	b64, ok := strings.CutPrefix(s, "SHA256:")
	if !ok || len(b64) != 43 {
		return false
	}
	for i := 0; i < len(b64); i++ {
		if c := b64[i]; !isAlnum(c) && c != '+' && c != '/' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func (p *Profile) check(loc *locator, i int) error {
	e := func(key, msg string) error { return loc.err("profile", i, key, msg) }
	if p.Name == "" {
		return e("name", "missing: every profile needs a name")
	}
	if !ValidName(p.Name) {
		return e("name", fmt.Sprintf("%q: use letters, digits, '.', '_' and '-' (at most 64)", p.Name))
	}
	backends := KeyInfo("profile", "backend").Choices
	switch {
	case p.Backend == "":
		return e("backend", "missing: use "+orQuoted(backends))
	case !contains(backends, p.Backend):
		return e("backend", fmt.Sprintf("%q is not a backend: use %s", p.Backend, orQuoted(backends)))
	}
	if p.Backend != BackendTPM && !p.TPM.IsZero() {
		return e("backend", p.Backend+" profiles take no [profile.tpm] table")
	}
	if p.Key == "" {
		return e("key", "missing: the key file (keyfile) or public certificate (gpg-agent, piv, tpm)")
	}
	for _, f := range []struct{ key, val string }{
		{"key", p.Key}, {"passphrase_file", p.PassphraseFile}, {"next_key", p.NextKey},
		{"gpg_agent.socket", p.GPGAgent.Socket}, {"gpg_agent.pin_file", p.GPGAgent.PINFile}, {"piv.pin_file", p.PIV.PINFile},
	} {
		if f.val != "" && !strings.HasPrefix(f.val, "/") {
			return e(f.key, fmt.Sprintf("%q must be an absolute path", f.val))
		}
	}
	if p.Hash == "" {
		p.Hash = defaultOf("profile", "hash")
	}
	var ok bool
	if p.HashFunc, ok = digest.Parse(p.Hash); !ok {
		return e("hash", fmt.Sprintf("%q is not supported: use %s", p.Hash, orQuoted(digest.Names())))
	}
	if p.MaxSizeText != "" {
		n, err := ParseSize(p.MaxSizeText)
		if err != nil {
			return e("max_size", err.Error())
		}
		p.MaxSize = n
	}
	if len(p.Kinds) == 0 {
		p.Kinds = []string{policy.KindAny}
	}
	for _, k := range p.Kinds {
		if !contains(Kinds, k) {
			return e("kinds", fmt.Sprintf("%q is not a kind: use %s", k, strings.Join(quoteAll(Kinds), ", ")))
		}
	}
	if p.RateText != "" {
		r, err := policy.ParseRate(p.RateText)
		if err != nil {
			return e("rate", err.Error())
		}
		p.Rate = r
	}
	p.MaxFiles = DefaultMaxFiles
	if p.MaxFilesValue != nil {
		if n := *p.MaxFilesValue; n < 1 || n > MaxMaxFiles {
			return e("max_files", fmt.Sprintf("%d: use 1 to %d", n, MaxMaxFiles))
		}
		p.MaxFiles = *p.MaxFilesValue
	}
	if len(p.Users) == 0 {
		return e("users", "missing: list the Unix users allowed this profile")
	}
	for _, u := range p.Users {
		if !validUser(u) {
			return e("users", fmt.Sprintf("%q is not a valid Unix user name", u))
		}
	}
	for _, k := range p.SSHKeys {
		if !validSSHKey(k) {
			return e("ssh_keys", fmt.Sprintf("%q is not an SSH key fingerprint: use the SHA256:... form of ssh-keygen -lf", k))
		}
	}
	if err := p.checkQuorum(e); err != nil {
		return err
	}
	if err := p.checkTransition(e); err != nil {
		return err
	}
	if err := p.checkAccept(e); err != nil {
		return err
	}
	switch p.Backend {
	case BackendKeyfile:
		if p.GPGAgent != (GPGAgent{}) || p.PIV != (PIV{}) {
			return e("backend", "keyfile profiles take no [profile.gpg_agent] or [profile.piv] table")
		}
	case BackendGPGAgent:
		if p.GPGAgent.Socket == "" {
			return e("gpg_agent.socket", "missing: the gpg-agent socket, e.g. /run/signstar/S.gpg-agent")
		}
		if p.PIV != (PIV{}) {
			return e("backend", "gpg-agent profiles take no [profile.piv] table")
		}
	case BackendPIV:
		if p.PassphraseFile != "" {
			return e("passphrase_file", "piv profiles use [profile.piv] pin_file, not passphrase_file")
		}
		if p.GPGAgent != (GPGAgent{}) {
			return e("backend", "piv profiles take no [profile.gpg_agent] table")
		}
		if p.PIV.Slot == "" {
			p.PIV.Slot = defaultOf("profile.piv", "slot")
		}
		p.PIV.Slot = strings.ToLower(p.PIV.Slot)
		if _, err := piv.ParseSlot(p.PIV.Slot); err != nil {
			return e("piv.slot", err.Error())
		}
		if p.PIV.PINFile == "" {
			return e("piv.pin_file", "missing: the file holding the card's PIN")
		}
	case BackendTPM:
		return p.checkTPM(e)
	}
	return nil
}

// checkAccept checks accept: known protocols, each once, and what they
// need of the profile. The client hashes a signstar-v1 request's file, so
// the enclave cannot see its kind (only "any" can allow it) and the hash
// is the client's SHA-512.
func (p *Profile) checkAccept(e func(key, msg string) error) error {
	choices := KeyInfo("profile", "accept").Choices
	for i, a := range p.Accept {
		if !contains(choices, a) {
			return e("accept", fmt.Sprintf("%q is not a request protocol: use %s", a, orQuoted(choices)))
		}
		if contains(p.Accept[:i], a) {
			return e("accept", fmt.Sprintf("%q is listed twice", a))
		}
	}
	if p.Accepts(archreq.Accept) {
		if len(p.Kinds) != 1 || p.Kinds[0] != policy.KindAny {
			return e("accept", fmt.Sprintf("%q needs kinds = [\"any\"]: the client sends a hash state, not the file, so its kind cannot be checked", archreq.Accept))
		}
		if p.Quorum > 0 {
			return e("accept", fmt.Sprintf("%q cannot be combined with quorum: a vote answers with exit 3 and nothing on stdout, which signstar-request-signature cannot read", archreq.Accept))
		}
		if p.HashFunc != crypto.SHA512 {
			return e("accept", fmt.Sprintf("%q needs hash = \"sha512\": the client's state is SHA-512, and the profile's hash is its signatures'", archreq.Accept))
		}
	}
	return nil
}

// Accepts reports whether the profile opted into the request protocol
// proto (an accept value).
func (p *Profile) Accepts(proto string) bool { return contains(p.Accept, proto) }

// Allows reports whether user may use the profile.
func (p *Profile) Allows(user string) bool { return contains(p.Users, user) }

// AllowsSSHKey reports whether the SSH key fingerprint may use the profile.
// A profile without ssh_keys accepts any key.
func (p *Profile) AllowsSSHKey(fp string) bool {
	return len(p.SSHKeys) == 0 || (fp != "" && contains(p.SSHKeys, fp))
}

// AllowsKind reports whether the profile may sign an artifact of kind.
func (p *Profile) AllowsKind(kind string) bool { return policy.AllowsKind(p.Kinds, kind) }

// Profile returns the profile called name, or nil.
func (c *Config) Profile(name string) *Profile {
	for i := range c.Profiles {
		if c.Profiles[i].Name == name {
			return &c.Profiles[i]
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// orQuoted is `"a", "b" or "c"`.
func orQuoted(l []string) string {
	q := quoteAll(l)
	if len(q) < 2 {
		return strings.Join(q, "")
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

func quoteAll(l []string) []string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = strconv.Quote(s)
	}
	return out
}

var sizeRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^([0-9]{1,19})\s*(B|KiB|MiB|GiB|TiB|K|M|G|T|KB|MB|GB|TB)?$`)
})

// ParseSize reads sizes like "4GiB", "512MiB", "1000" (bytes). K, M, G and T
// are binary, like the -iB forms; KB, MB, GB and TB are decimal.
func ParseSize(s string) (int64, error) {
	m := sizeRE().FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("%q is not a size: use a number with B, KiB, MiB, GiB or TiB", s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is too large", s)
	}
	mult := map[string]int64{"": 1, "B": 1, "K": 1 << 10, "KiB": 1 << 10, "M": 1 << 20, "MiB": 1 << 20,
		"G": 1 << 30, "GiB": 1 << 30, "T": 1 << 40, "TiB": 1 << 40,
		"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}[m[2]]
	if n <= 0 {
		return 0, fmt.Errorf("%q must be more than zero", s)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mult, nil
}
