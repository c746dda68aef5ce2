// Package sshtest runs a real, throwaway OpenSSH sshd on 127.0.0.1 for the
// end-to-end tests and for `make demo`: its own host key, configuration and
// authorized_keys in a fresh directory, client keys made with ssh-keygen,
// and a dedicated Unix user (created when missing) whose sessions run one
// program, either as ForceCommand or as the login shell.
//
// The sshd configuration is Debian's /etc/ssh/sshd_config with the repo's
// configs/sshd_config.d/signstar.conf included where Debian includes its
// drop-ins, so the tests exercise the drop-in an operator installs. Only
// the ForceCommand line is rewritten to point at the program under test.
//
// It needs root (sshd, useradd, usermod) and Linux. The user's shell is
// global state, so a Server holds an exclusive lock for its whole life:
// servers for the same user, in any process, run one after another.
package sshtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Deployment is how sshd starts the program.
type Deployment int

const (
	// ForceCommand puts "ForceCommand PROGRAM ARGS" in the Match block;
	// the user's shell is /bin/sh.
	ForceCommand Deployment = iota
	// LoginShell removes ForceCommand and makes the user's shell a wrapper
	// that execs "PROGRAM ARGS [-c CMD]" with argv[0] "-signstar" for a
	// login without a command, "signstar" otherwise. The README no longer
	// offers it: sshd serves internal-sftp without starting the shell.
	LoginShell
	// ShellAndForceCommand is the README's second deployment: the user's
	// shell is the LoginShell wrapper and the Match block keeps
	// "ForceCommand PROGRAM", so sshd runs "wrapper -c PROGRAM" for every
	// session, subsystems included. ARGS go in the wrapper only.
	ShellAndForceCommand
)

func (d Deployment) String() string {
	switch d {
	case LoginShell:
		return "login-shell-only"
	case ShellAndForceCommand:
		return "login-shell+forcecommand"
	}
	return "forcecommand"
}

// DefaultUser is the Unix user the drop-in is written for.
const DefaultUser = "signer"

// Config says what to start.
type Config struct {
	Deployment Deployment
	// Program is the absolute path sshd runs for the user. It and every
	// directory above it must be readable and searchable by User.
	Program string
	// Args are server-side arguments placed before the client's command,
	// e.g. --config PATH.
	Args []string
	// User is the account clients log in as; DefaultUser when "".
	User string
	// Keys names the client key pairs to create; {"client"} when empty.
	Keys []string
	// KeyOptions are authorized_keys options per key name, e.g.
	// `command="/usr/bin/signstar --profile a"`.
	KeyOptions map[string]string
	// DropIn is the sshd_config.d file to use; the repo's
	// configs/sshd_config.d/signstar.conf when "".
	DropIn string
	// SFTP is the command of sshd's "Subsystem sftp"; Debian's
	// /usr/lib/openssh/sftp-server when "". "internal-sftp" makes sshd
	// serve SFTP itself, without the user's shell.
	SFTP string
}

// Key is a client key pair.
type Key struct {
	Name string
	// Path is the private key file (root, 0600).
	Path string
	// Public is the authorized_keys line ("ssh-ed25519 AAAA... name").
	Public string
	// Fingerprint is what `ssh-keygen -lf` prints: "SHA256:...".
	Fingerprint string
}

// Server is a running sshd.
type Server struct {
	// Dir holds everything the server uses; removed by Close.
	Dir  string
	Port int
	User string
	// Host is the address sshd listens on.
	Host string

	cfg       Config
	keys      map[string]*Key
	knownHost string
	cmd       *exec.Cmd
	done      chan struct{}
	logPath   string
	lock      *os.File
	oldShell  string
	closed    bool
}

// SSHD, SSH, SSHKeygen are the programs used; Debian's paths.
var (
	SSHD      = "/usr/sbin/sshd"
	SSH       = "ssh"
	SSHKeygen = "ssh-keygen"
)

// Start sets up the user, keys and configuration and starts sshd. On error
// everything already made is undone.
func Start(cfg Config) (s *Server, err error) {
	if runtime.GOOS != "linux" {
		return nil, errors.New("sshtest runs on Linux only")
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("sshtest needs root: it starts sshd and manages the user account")
	}
	if !filepath.IsAbs(cfg.Program) {
		return nil, fmt.Errorf("program %q must be an absolute path", cfg.Program)
	}
	if cfg.User == "" {
		cfg.User = DefaultUser
	}
	if len(cfg.Keys) == 0 {
		cfg.Keys = []string{"client"}
	}
	if cfg.DropIn == "" {
		cfg.DropIn, err = RepoFile("configs/sshd_config.d/signstar.conf")
		if err != nil {
			return nil, err
		}
	}
	s = &Server{User: cfg.User, Host: "127.0.0.1", cfg: cfg, keys: map[string]*Key{}}
	defer func() {
		if err != nil {
			s.Close()
			s = nil
		}
	}()
	if s.lock, err = lockUser(cfg.User); err != nil {
		return s, err
	}
	if s.Dir, err = SafeTempDir("sshd"); err != nil {
		return s, err
	}
	s.logPath = filepath.Join(s.Dir, "sshd.log")
	if err = s.setupUser(); err != nil {
		return s, err
	}
	if err = s.makeKeys(); err != nil {
		return s, err
	}
	if err = s.start(); err != nil {
		return s, err
	}
	return s, nil
}

// setupUser creates the account when missing and sets its shell for the
// deployment. sshd refuses accounts whose shell is not executable and,
// without PAM, accounts whose password is locked ("!"), so a new account
// gets the password "*": no password can match it, but it is not locked.
func (s *Server) setupUser() error {
	u, err := user.Lookup(s.User)
	if err != nil {
		var unknown user.UnknownUserError
		if !errors.As(err, &unknown) {
			return fmt.Errorf("looking up user %s: %v", s.User, err)
		}
		out, err := exec.Command("useradd", "--system", "--create-home",
			"--home-dir", "/var/lib/"+s.User, "--shell", "/bin/sh",
			"--password", "*", "--comment", "signstar signing enclave", s.User).CombinedOutput()
		if err != nil {
			return fmt.Errorf("useradd %s: %v: %s", s.User, err, bytes.TrimSpace(out))
		}
		if u, err = user.Lookup(s.User); err != nil {
			return err
		}
	}
	if locked, err := passwordLocked(s.User); err != nil {
		return err
	} else if locked {
		if out, err := exec.Command("usermod", "--password", "*", s.User).CombinedOutput(); err != nil {
			return fmt.Errorf("usermod --password '*' %s: %v: %s", s.User, err, bytes.TrimSpace(out))
		}
	}
	if s.oldShell, err = loginShell(s.User); err != nil {
		return err
	}
	shell := "/bin/sh"
	if s.cfg.Deployment == LoginShell || s.cfg.Deployment == ShellAndForceCommand {
		shell = filepath.Join(s.Dir, "signstar-shell")
		if err := os.WriteFile(shell, []byte(s.wrapper()), 0o755); err != nil {
			return err
		}
	}
	if shell != s.oldShell {
		if out, err := exec.Command("usermod", "--shell", shell, s.User).CombinedOutput(); err != nil {
			return fmt.Errorf("usermod --shell %s: %v: %s", s.User, err, bytes.TrimSpace(out))
		}
	}
	// sshd only warns when the home directory is missing, but the warning
	// lands on the client's stderr.
	if u.HomeDir != "" {
		if _, err := os.Stat(u.HomeDir); errors.Is(err, os.ErrNotExist) {
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			if err := os.MkdirAll(u.HomeDir, 0o750); err != nil {
				return err
			}
			if err := os.Chown(u.HomeDir, uid, gid); err != nil {
				return err
			}
		}
	}
	return nil
}

// wrapper is the login shell for the LoginShell deployment: sshd runs it as
// "-signstar-shell" (no command) or "signstar-shell -c CMD"; it adds the
// server-side arguments and keeps the leading "-" that tells signstar it is
// a login shell. bash, for exec -a; it reads no startup file when started
// this way, and the drop-in lets the client set no BASH_ENV.
func (s *Server) wrapper() string {
	argv := strings.Join(shellQuote(append([]string{s.cfg.Program}, s.cfg.Args...)), " ")
	return "#!/bin/bash\n" +
		"# login shell written by signstar's sshtest harness\n" +
		"case $0 in\n" +
		"-*) exec -a -signstar " + argv + " \"$@\" ;;\n" +
		"esac\n" +
		"exec -a signstar " + argv + " \"$@\"\n"
}

func (s *Server) makeKeys() error {
	for _, d := range []string{"host", "client", "authorized_keys"} {
		if err := os.Mkdir(filepath.Join(s.Dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(s.Dir, "client"), 0o700); err != nil {
		return err
	}
	hostKey := filepath.Join(s.Dir, "host", "ssh_host_ed25519_key")
	if err := keygen(hostKey, "sshtest-host"); err != nil {
		return err
	}
	pub, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		return err
	}
	f := strings.Fields(string(pub))
	if len(f) < 2 {
		return fmt.Errorf("%s.pub: unexpected contents", hostKey)
	}
	s.knownHost = f[0] + " " + f[1]

	var auth bytes.Buffer
	for _, name := range s.cfg.Keys {
		if !regexp.MustCompile(`^[A-Za-z0-9_-]+$`).MatchString(name) {
			return fmt.Errorf("key name %q: use letters, digits, _ and -", name)
		}
		k := &Key{Name: name, Path: filepath.Join(s.Dir, "client", name)}
		if err := keygen(k.Path, name); err != nil {
			return err
		}
		pub, err := os.ReadFile(k.Path + ".pub")
		if err != nil {
			return err
		}
		k.Public = strings.TrimSpace(string(pub))
		out, err := exec.Command(SSHKeygen, "-l", "-E", "sha256", "-f", k.Path+".pub").Output()
		if err != nil {
			return fmt.Errorf("ssh-keygen -lf %s: %v", k.Path, err)
		}
		if f := strings.Fields(string(out)); len(f) >= 2 && strings.HasPrefix(f[1], "SHA256:") {
			k.Fingerprint = f[1]
		} else {
			return fmt.Errorf("ssh-keygen -lf %s: unexpected output %q", k.Path, out)
		}
		if o := s.cfg.KeyOptions[name]; o != "" {
			auth.WriteString(o + " ")
		}
		auth.WriteString(k.Public + "\n")
		s.keys[name] = k
	}
	return os.WriteFile(filepath.Join(s.Dir, "authorized_keys", s.User), auth.Bytes(), 0o644)
}

func keygen(path, comment string) error {
	out, err := exec.Command(SSHKeygen, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ssh-keygen %s: %v: %s", path, err, bytes.TrimSpace(out))
	}
	return nil
}

// sshdConfig is the configuration for port: the harness's own settings
// first (sshd keeps the first value it reads), then Debian's sshd_config
// with the drop-in directory included where Debian includes it.
func (s *Server) sshdConfig(port int) string {
	sftp := s.cfg.SFTP
	if sftp == "" {
		sftp = "/usr/lib/openssh/sftp-server"
	}
	return fmt.Sprintf(`# written by signstar's sshtest harness
Port %d
ListenAddress 127.0.0.1
AddressFamily inet
HostKey %s
PidFile none
# Without PAM: containers refuse pam_loginuid, and the account check is
# sshd's own (shell executable, password not locked).
UsePAM no
StrictModes yes
AuthorizedKeysFile %s/%%u
LogLevel VERBOSE
# The load test opens 32 connections at once; Debian's 10:30:100 would
# drop some before authentication.
MaxStartups 100

# Debian's /etc/ssh/sshd_config follows.
Include %s/*.conf
KbdInteractiveAuthentication no
UsePAM yes
X11Forwarding yes
PrintMotd no
AcceptEnv LANG LC_*
Subsystem	sftp	%s
`, port, filepath.Join(s.Dir, "host", "ssh_host_ed25519_key"),
		filepath.Join(s.Dir, "authorized_keys"), filepath.Join(s.Dir, "sshd_config.d"), sftp)
}

// dropIn is the repo's drop-in with the user and ForceCommand adapted.
func (s *Server) dropIn() (string, error) {
	data, err := os.ReadFile(s.cfg.DropIn)
	if err != nil {
		return "", err
	}
	var out strings.Builder
	sawForce, sawMatch := false, false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) > 0 && !strings.HasPrefix(f[0], "#") {
			switch strings.ToLower(f[0]) {
			case "match":
				if len(f) != 3 || !strings.EqualFold(f[1], "user") || f[2] != DefaultUser {
					return "", fmt.Errorf("%s: expected \"Match User %s\", got %q", s.cfg.DropIn, DefaultUser, line)
				}
				sawMatch = true
				line = "Match User " + s.User
			case "forcecommand":
				sawForce = true
				indent := line[:len(line)-len(strings.TrimLeft(line, " \t"))]
				switch s.cfg.Deployment {
				case LoginShell:
					line = indent + "# ForceCommand removed: login-shell-only deployment"
				case ShellAndForceCommand:
					line = indent + "ForceCommand " + strings.Join(shellQuote([]string{s.cfg.Program}), " ")
				default:
					line = indent + "ForceCommand " + strings.Join(shellQuote(append([]string{s.cfg.Program}, s.cfg.Args...)), " ")
				}
			}
		}
		out.WriteString(line + "\n")
	}
	if !sawMatch || !sawForce {
		return "", fmt.Errorf("%s: no Match User / ForceCommand lines", s.cfg.DropIn)
	}
	return out.String(), sc.Err()
}

// start picks a free port and starts sshd, retrying when another process
// takes the port between our probe and sshd's bind.
func (s *Server) start() error {
	// Debian's sshd refuses to start without its privilege separation
	// directory, normally made by the systemd unit.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return err
	}
	dropDir := filepath.Join(s.Dir, "sshd_config.d")
	if err := os.Mkdir(dropDir, 0o755); err != nil {
		return err
	}
	drop, err := s.dropIn()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dropDir, "signstar.conf"), []byte(drop), 0o644); err != nil {
		return err
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		cfgPath := filepath.Join(s.Dir, "sshd_config")
		if err := os.WriteFile(cfgPath, []byte(s.sshdConfig(port)), 0o644); err != nil {
			return err
		}
		if out, err := exec.Command(SSHD, "-t", "-f", cfgPath).CombinedOutput(); err != nil {
			return fmt.Errorf("sshd -t: %v: %s", err, bytes.TrimSpace(out))
		}
		lastErr = s.startOn(port, cfgPath)
		if lastErr == nil {
			return nil
		}
		if !strings.Contains(lastErr.Error(), "Address already in use") {
			return lastErr
		}
	}
	return lastErr
}

func (s *Server) startOn(port int, cfgPath string) error {
	logf, err := os.OpenFile(s.logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(SSHD, "-D", "-e", "-f", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so that a test binary killed by a signal does
	// not leave it holding the terminal's group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting sshd: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	want := fmt.Sprintf("Server listening on 127.0.0.1 port %d.", port)
	deadline := time.Now().Add(15 * time.Second)
	for {
		log, _ := os.ReadFile(s.logPath)
		if bytes.Contains(log, []byte(want)) {
			s.cmd, s.done, s.Port = cmd, done, port
			s.writeKnownHosts()
			return nil
		}
		select {
		case <-done:
			log, _ := os.ReadFile(s.logPath)
			return fmt.Errorf("sshd exited: %s", bytes.TrimSpace(log))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			return fmt.Errorf("sshd did not start listening within 15s: %s", bytes.TrimSpace(log))
		}
	}
}

func (s *Server) writeKnownHosts() {
	line := fmt.Sprintf("[%s]:%d %s\n", s.Host, s.Port, s.knownHost)
	os.WriteFile(filepath.Join(s.Dir, "client", "known_hosts"), []byte(line), 0o600)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Key returns the client key called name, or nil.
func (s *Server) Key(name string) *Key { return s.keys[name] }

// Log returns what sshd has logged so far (LogLevel VERBOSE), for test
// failure messages.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

// ClientOptions are the options for ssh, scp and sftp to reach the server
// as the user with key: no user or system configuration, this server's host
// key only, no agent, no password prompt.
func (s *Server) ClientOptions(key string) []string {
	k := s.keys[key]
	path := "/nonexistent"
	if k != nil {
		path = k.Path
	}
	return []string{
		"-F", "/dev/null",
		"-i", path,
		"-o", "Port=" + strconv.Itoa(s.Port),
		"-o", "User=" + s.User,
		"-o", "IdentitiesOnly=yes",
		"-o", "IdentityAgent=none",
		"-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile=" + filepath.Join(s.Dir, "client", "known_hosts"),
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "UpdateHostKeys=no",
		"-o", "ConnectTimeout=15",
		"-o", "LogLevel=ERROR",
	}
}

// Command prepares `ssh OPTIONS [opts...] USER@HOST [remote...]` with key.
func (s *Server) Command(ctx context.Context, key string, opts []string, remote ...string) *exec.Cmd {
	args := append(s.ClientOptions(key), opts...)
	args = append(args, s.User+"@"+s.Host)
	args = append(args, remote...)
	return exec.CommandContext(ctx, SSH, args...)
}

// Result is what an ssh client run produced.
type Result struct {
	Stdout, Stderr []byte
	// ExitCode is ssh's exit status: the remote program's, or 255 when
	// ssh itself failed.
	ExitCode int
}

// Run runs ssh with stdin (nil: empty) and collects its output. The error
// is only for an ssh that could not be started or was killed.
func (s *Server) Run(ctx context.Context, stdin io.Reader, key string, opts []string, remote ...string) (*Result, error) {
	cmd := s.Command(ctx, key, opts, remote...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errb
	err := cmd.Run()
	r := &Result{Stdout: out.Bytes(), Stderr: errb.Bytes()}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.Exited() {
		r.ExitCode = ee.ExitCode()
		return r, nil
	}
	return r, err
}

// Close stops sshd, restores the user's shell, removes Dir and releases
// the lock. Sessions still open end when their clients go.
func (s *Server) Close() error {
	if s == nil || s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	if s.cmd != nil {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			s.cmd.Process.Kill()
			<-s.done
		}
	}
	if s.oldShell != "" {
		if cur, err := loginShell(s.User); err == nil && cur != s.oldShell {
			if out, err := exec.Command("usermod", "--shell", s.oldShell, s.User).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("usermod --shell %s: %v: %s", s.oldShell, err, bytes.TrimSpace(out)))
			}
		}
	}
	if s.Dir != "" {
		if err := RemoveAll(s.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	if s.lock != nil {
		s.lock.Close()
	}
	return errors.Join(errs...)
}

// shellQuote quotes each word for sh (and for sshd's ForceCommand, which
// runs through the user's shell).
func shellQuote(words []string) []string {
	out := make([]string, len(words))
	for i, w := range words {
		if w != "" && regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`).MatchString(w) {
			out[i] = w
			continue
		}
		out[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return out
}

// RepoFile returns the absolute path of a file of this repository, found
// from this source file's location or, failing that, the working directory.
func RepoFile(rel string) (string, error) {
	var starts []string
	if _, file, _, ok := runtime.Caller(0); ok {
		starts = append(starts, filepath.Dir(file))
	}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	for _, dir := range starts {
		for d := dir; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				p := filepath.Join(d, rel)
				if _, err := os.Stat(p); err == nil {
					return p, nil
				}
				break
			}
			if d == filepath.Dir(d) {
				break
			}
		}
	}
	return "", fmt.Errorf("cannot find %s in the repository", rel)
}
