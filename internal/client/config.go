// Package client is signstar-client's work: its configuration, the ssh
// session to the enclave, the batch of signatures (sent in one `sign --tar`
// session, verified against the pinned certificate, written atomically),
// the pinned certificate, and the witness of the enclave's log.
//
// It never prints; cmd/signstar-client turns its errors into messages.
package client

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
	"golang.org/x/mod/sumdb/note"
)

// ConfigName is the configuration's path below the user's configuration
// directory ($XDG_CONFIG_HOME, else ~/.config).
const ConfigName = "signstar/client.toml"

// maxConfigSize bounds what is read: a client configuration is a few lines.
const maxConfigSize = 64 << 10

// Config is client.toml.
type Config struct {
	// Host is the signing host, as ssh takes it (a name, an address, or a
	// Host alias of the operator's ssh config).
	Host string `toml:"host"`
	// User is the signing user; "" leaves it to the ssh config.
	User string `toml:"user"`
	// Port is the ssh port; 0 leaves it to the ssh config.
	Port int `toml:"port"`
	// Profile is sent as --profile when set.
	Profile string `toml:"profile"`
	// Certificate is the pinned certificate's file.
	Certificate string `toml:"certificate"`
	// StateDir holds the witness's state.
	StateDir string `toml:"state_dir"`
	// SSH is the OpenSSH client to start.
	SSH string `toml:"ssh"`
	// SSHOptions go to ssh before the destination.
	SSHOptions []string `toml:"ssh_options"`
	// LogKey is the verifier key of the enclave's checkpoints.
	LogKey string `toml:"log_key"`
	// Witness is false to sign without witnessing the log.
	Witness *bool `toml:"witness"`
	// Proofs asks for each signature's proof file next to it.
	Proofs bool `toml:"proofs"`

	// Path is the file the configuration was read from.
	Path string `toml:"-"`
	// Verifier is LogKey, parsed; nil when the witness is off.
	Verifier note.Verifier `toml:"-"`
}

// ConfigError is a configuration error: the file, the line when one is
// known, the key, what is wrong and what to do.
type ConfigError struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (e *ConfigError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line)
	}
	if e.Key != "" {
		return fmt.Sprintf("%s: %s: %s", loc, e.Key, e.Msg)
	}
	return fmt.Sprintf("%s: %s", loc, e.Msg)
}

// Env is what the configuration's defaults depend on: the environment's
// XDG directories and the home directory.
type Env struct {
	Home, ConfigHome, StateHome string
}

// OSEnv reads Env from the process.
func OSEnv() Env {
	home, _ := os.UserHomeDir()
	return Env{Home: home, ConfigHome: os.Getenv("XDG_CONFIG_HOME"), StateHome: os.Getenv("XDG_STATE_HOME")}
}

// DefaultPath is where the configuration is when no --config is given.
func (e Env) DefaultPath() string {
	dir := e.ConfigHome
	if dir == "" || !filepath.IsAbs(dir) {
		dir = filepath.Join(e.Home, ".config")
	}
	return filepath.Join(dir, ConfigName)
}

func (e Env) defaultState() string {
	dir := e.StateHome
	if dir == "" || !filepath.IsAbs(dir) {
		dir = filepath.Join(e.Home, ".local", "state")
	}
	return filepath.Join(dir, "signstar")
}

// Load reads and checks the configuration at path.
func Load(path string, env Env) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		msg := "cannot read the configuration: " + pathErr(err)
		if errors.Is(err, os.ErrNotExist) {
			msg = "no configuration: write one (signstar-client(1) lists its keys: host, and log_key or witness = false, at least), or name it with --config"
		}
		return nil, &ConfigError{File: path, Msg: msg}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, &ConfigError{File: path, Msg: "cannot read the configuration: " + pathErr(err)}
	}
	if len(data) > maxConfigSize {
		return nil, &ConfigError{File: path, Msg: "the configuration is larger than 64 KiB"}
	}
	return Parse(path, data, env)
}

func pathErr(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// Parse checks data as the configuration file at path.
func Parse(path string, data []byte, env Env) (*Config, error) {
	var c Config
	md, err := toml.Decode(string(data), &c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			line := pe.Position.Line
			if st := pe.Position.Start; st > 0 && st <= len(data) {
				line = 1 + bytes.Count(data[:st], []byte("\n"))
			}
			return nil, &ConfigError{File: path, Line: line, Msg: oneLine(pe.Message)}
		}
		// A value of the wrong type: the library names the key.
		msg := oneLine(err.Error())
		for _, k := range keyNames {
			if strings.Contains(msg, "'"+k+"'") || strings.Contains(msg, `"`+k+`"`) {
				return nil, &ConfigError{File: path, Line: keyLine(data, k), Key: k, Msg: "wrong type: " + msg}
			}
		}
		return nil, &ConfigError{File: path, Msg: msg}
	}
	c.Path = path
	if und := md.Undecoded(); len(und) > 0 {
		k := und[0].String()
		return nil, &ConfigError{File: path, Line: keyLine(data, und[0][0]), Key: k,
			Msg: "unknown key (the keys are " + strings.Join(keyNames, ", ") + ")"}
	}
	bad := func(key, msg string) error {
		return &ConfigError{File: path, Line: keyLine(data, key), Key: key, Msg: msg}
	}
	dir := filepath.Dir(path)
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	if c.Host == "" {
		return nil, bad("host", "missing: name the signing host, as ssh takes it (host = \"signing-host\")")
	}
	if err := checkHost(c.Host); err != nil {
		return nil, bad("host", err.Error())
	}
	if c.User != "" && !userRE.MatchString(c.User) {
		return nil, bad("user", fmt.Sprintf("%q is not a user name: letters, digits, '.', '_' and '-', not starting with '-'", c.User))
	}
	if c.Port < 0 || c.Port > 65535 {
		return nil, bad("port", fmt.Sprintf("%d is not a TCP port (1 to 65535)", c.Port))
	}
	if c.Profile != "" && !profileRE.MatchString(c.Profile) {
		return nil, bad("profile", fmt.Sprintf("%q is not a profile name: 1 to 64 letters, digits, '.', '_' and '-', starting with a letter or digit", c.Profile))
	}
	if c.StateDir == "" {
		c.StateDir = env.defaultState()
	} else if c.StateDir, err = expand(c.StateDir, dir, env); err != nil {
		return nil, bad("state_dir", err.Error())
	}
	if c.Certificate == "" {
		c.Certificate = filepath.Join(c.StateDir, "certificate.asc")
	} else if c.Certificate, err = expand(c.Certificate, dir, env); err != nil {
		return nil, bad("certificate", err.Error())
	}
	if c.SSH == "" {
		c.SSH = "ssh"
	} else if strings.ContainsRune(c.SSH, '/') {
		if c.SSH, err = expand(c.SSH, dir, env); err != nil {
			return nil, bad("ssh", err.Error())
		}
	}
	for i, o := range c.SSHOptions {
		if o == "" || strings.ContainsAny(o, "\x00\n") {
			return nil, bad("ssh_options", fmt.Sprintf("option %d is empty or holds a NUL or newline", i+1))
		}
	}
	witness := c.Witness == nil || *c.Witness
	switch {
	case witness && c.LogKey == "":
		return nil, bad("log_key", "missing: give the enclave log's verifier key (what `signstar audit keygen` printed on the signing host), or witness = false to sign without checking the log")
	case !witness && c.LogKey != "":
		return nil, bad("witness", "false, but log_key is set: remove one of them")
	case !witness && c.Proofs:
		return nil, bad("proofs", "true needs the witness: remove witness = false, or proofs")
	case witness:
		v, err := note.NewVerifier(strings.TrimSpace(c.LogKey))
		if err != nil {
			return nil, bad("log_key", fmt.Sprintf("not a note verifier key (NAME+HASH+KEY, as `signstar audit keygen` prints it): %v", err))
		}
		c.Verifier = v
	}
	return &c, nil
}

var keyNames = keyNameList()

var (
	userRE    = regexp.MustCompile(`^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}$`)
	profileRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	hostRE    = regexp.MustCompile(`^[A-Za-z0-9_.:\[\]%-]{1,253}$`)
)

// checkHost refuses what ssh would read as an option or a user.
func checkHost(h string) error {
	switch {
	case strings.HasPrefix(h, "-"):
		return fmt.Errorf("%q starts with '-': ssh would read it as an option", h)
	case strings.Contains(h, "@"):
		return fmt.Errorf("%q holds '@': put the user in user = \"...\"", h)
	case !hostRE.MatchString(h):
		return fmt.Errorf("%q is not a host name, address or ssh Host alias", h)
	}
	return nil
}

// SetDestination applies `--host [USER@]HOST`.
func (c *Config) SetDestination(dest string) error {
	user, host, ok := strings.Cut(dest, "@")
	if !ok {
		user, host = "", dest
	}
	if err := checkHost(host); err != nil {
		return fmt.Errorf("--host: %v", err)
	}
	if ok {
		if !userRE.MatchString(user) {
			return fmt.Errorf("--host: %q is not a user name", user)
		}
		c.User = user
	}
	c.Host = host
	return nil
}

// Destination is what ssh is given: USER@HOST or HOST.
func (c *Config) Destination() string {
	if c.User != "" {
		return c.User + "@" + c.Host
	}
	return c.Host
}

// expand makes p absolute: ~/ is the home directory, a relative path is
// relative to the configuration's directory.
func expand(p, dir string, env Env) (string, error) {
	switch {
	case strings.ContainsRune(p, 0):
		return "", errors.New("holds a NUL byte")
	case p == "~" || strings.HasPrefix(p, "~/"):
		if env.Home == "" {
			return "", errors.New("starts with ~ but there is no home directory: give an absolute path")
		}
		return filepath.Join(env.Home, p[1:]), nil
	case strings.HasPrefix(p, "~"):
		return "", errors.New("~user is not expanded: give an absolute path")
	case filepath.IsAbs(p):
		return filepath.Clean(p), nil
	}
	return filepath.Join(dir, p), nil
}

// keyLine is the line that assigns key, or 0.
func keyLine(data []byte, key string) int {
	re := regexp.MustCompile(`^\s*"?` + regexp.QuoteMeta(key) + `"?\s*=`)
	for i, l := range strings.Split(string(data), "\n") {
		if re.MatchString(l) {
			return i + 1
		}
	}
	return 0
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
