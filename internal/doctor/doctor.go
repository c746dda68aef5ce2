// Package doctor checks a signing host's deployment against what the
// README's "Files, owners and modes" table and the enclave need: owners and
// modes, the audit log's append-only attribute, the syslog socket, the sshd
// settings in force for the signing users, each profile's backend, the
// sandbox and the audit chain. It returns findings; cmd/signstar prints them.
package doctor

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/signstar/signstar/internal/audit"
	"github.com/signstar/signstar/internal/backend"
	"github.com/signstar/signstar/internal/config"
)

// Finding is one thing wrong, and what fixes it.
type Finding struct {
	// Subject is what is wrong: a path, "sshd for user signer", "profile repo".
	Subject string
	Problem string
	Fix     string
}

func (f Finding) String() string {
	if f.Fix == "" { // the problem says what to run
		return f.Subject + ": " + f.Problem
	}
	return f.Subject + ": " + f.Problem + ": " + f.Fix
}

// Options are what a run checks, and the hooks to the rest of signstar.
type Options struct {
	Config *config.Config
	// SSHD is the sshd program; "/usr/sbin/sshd" when "".
	SSHD string
	// SSHDConfig is the configuration sshd -T reads; sshd's default
	// (/etc/ssh/sshd_config) when "".
	SSHDConfig string
	// OpenBackend opens and closes the profile's key, as a signing
	// process does; nil skips the check.
	OpenBackend func(*config.Profile) error
	// Sandbox reports whether mode can be met, and what is missing
	// when not; nil skips the check.
	Sandbox func(mode string) (ok bool, missing string)
	// VerifyLog checks the audit chain of the file at path and returns
	// the number of records; nil skips the check.
	VerifyLog func(path string) (int, error)
}

// Report is the result of a run.
type Report struct {
	Findings []Finding
	// Checked names what was checked, for the all-clear line.
	Checked []string
}

// add records a finding once: a directory above two checked files is
// named once.
func (r *Report) add(subject, problem, fix string) {
	f := Finding{Subject: subject, Problem: problem, Fix: fix}
	for _, g := range r.Findings {
		if g == f {
			return
		}
	}
	r.Findings = append(r.Findings, f)
}

func (r *Report) checked(what string) { r.Checked = append(r.Checked, what) }

// account is a Unix user that a profile allows.
type account struct {
	name     string
	uid, gid int
	groups   map[int]bool // primary and supplementary
	home     string
}

func lookupAccount(name string) (*account, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, err
	}
	a := &account{name: name, groups: map[int]bool{}, home: u.HomeDir}
	a.uid, _ = strconv.Atoi(u.Uid)
	a.gid, _ = strconv.Atoi(u.Gid)
	a.groups[a.gid] = true
	if gids, err := u.GroupIds(); err == nil {
		for _, g := range gids {
			if n, err := strconv.Atoi(g); err == nil {
				a.groups[n] = true
			}
		}
	}
	return a, nil
}

// Run checks everything and returns the findings.
func Run(o Options) *Report {
	r := &Report{}
	cfg := o.Config
	accounts := map[string]*account{}
	var names []string
	for _, p := range cfg.Profiles {
		for _, u := range p.Users {
			if _, seen := accounts[u]; seen {
				continue
			}
			accounts[u] = nil
			names = append(names, u)
		}
	}
	sort.Strings(names)
	var all []*account
	for _, n := range names {
		a, err := lookupAccount(n)
		if err != nil {
			r.add("user "+n, "no such user (named in users of a profile)",
				"create it: useradd --system --create-home --home-dir /var/lib/"+n+" --shell /bin/sh "+n+" (README, Setting up a signing host)")
			continue
		}
		accounts[n] = a
		all = append(all, a)
	}
	r.checked("users")

	// The directory checks are Load's own (config.CheckDirs), one rule for
	// signing and for doctor; seen names each directory once.
	seen := map[string]bool{}
	checkConfig(r, cfg, all, seen)
	bad := checkProfiles(r, cfg, accounts, seen)
	checkLog(r, cfg, all, o.VerifyLog, seen)
	checkSyslog(r, cfg, seen)
	checkSSHD(r, o, all, seen)
	if o.OpenBackend != nil {
		for i := range cfg.Profiles {
			p := &cfg.Profiles[i]
			if bad[p.Name] {
				continue // its files have findings already; opening would repeat them
			}
			if err := o.OpenBackend(p); err != nil {
				r.add("profile "+p.Name, "the "+p.Backend+" backend does not open: "+oneLine(err.Error()), backendFix(p))
			}
		}
		r.checked("backends")
	}
	if o.Sandbox != nil {
		if ok, missing := o.Sandbox(cfg.Sandbox.Mode); !ok {
			r.add(cfg.Path, fmt.Sprintf("[sandbox] mode %q cannot be met on this kernel (%s): signing will be refused", cfg.Sandbox.Mode, missing),
				"run signstar sandbox check; fix the kernel, or set mode = \"best-effort\"")
		}
		r.checked("sandbox")
	}
	return r
}

func backendFix(p *config.Profile) string {
	switch p.Backend {
	case config.BackendGPGAgent:
		return "start the agent on " + p.GPGAgent.Socket + " with the key of " + p.Key + " in it (README, Backends)"
	case config.BackendPIV:
		return "insert the card, check pcscd, [profile.piv] and the PIN retries (reset them by hand or with the PUK) (README, Backends)"
	case config.BackendTPM:
		return "check [profile.tpm] device (the tss group may use /dev/tpmrm0), the auth value and the dictionary-attack counter; if the PCRs changed, re-provision with signstar tpm setup --force (README, Backends)"
	}
	return "fix key and passphrase_file (README, A key)"
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

// dirs reports the first problem above path, by Load's rule, once per
// directory.
func dirs(r *Report, path, what string, seen map[string]bool) {
	err := config.CheckDirs(path, what, seen)
	if err == nil {
		return
	}
	subject := path
	var de *config.DirError
	if errors.As(err, &de) {
		subject = de.Dir
		for _, f := range r.Findings {
			if f.Subject == subject {
				return
			}
		}
	}
	r.add(subject, oneLine(err.Error()), "")
}

// checkConfig: root owns the configuration and its directories, no signing
// user can change it (Load's rule, config.CheckConfigFile), and every
// signing user can read it.
func checkConfig(r *Report, cfg *config.Config, users []*account, seen map[string]bool) {
	path := cfg.Path
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	group := "signer"
	if len(users) > 0 {
		group = groupName(users[0].gid)
	}
	fix := fmt.Sprintf("chown root:%s %s && chmod 0640 %s", group, path, path)
	if st := statFile(r, path, "the configuration"); st != nil {
		if err := config.CheckConfigFile(path); err != nil {
			r.add(path, oneLine(err.Error()), "")
		}
		for _, u := range users {
			if !canRead(st, u) {
				r.add(path, "user "+u.name+" cannot read it, so every request fails", fix)
			}
		}
		dirs(r, path, "the configuration", seen)
	}
	r.checked("configuration")
}

// checkProfiles: secret files (keys, passphrase and PIN files) belong to a
// user of the profile and are open to nobody else; certificates are not
// writable by others; their directories are root's. It returns the
// profiles with findings.
func checkProfiles(r *Report, cfg *config.Config, accounts map[string]*account, seen map[string]bool) map[string]bool {
	bad := map[string]bool{}
	for _, p := range cfg.Profiles {
		before := len(r.Findings)
		var users []*account
		for _, n := range p.Users {
			if a := accounts[n]; a != nil {
				users = append(users, a)
			}
		}
		owner := "signer"
		if len(p.Users) > 0 {
			owner = p.Users[0]
		}
		secret := func(path, what string) {
			if path == "" {
				return
			}
			fix := fmt.Sprintf("chown %s:%s %s && chmod 0400 %s", owner, owner, path, path)
			st := statFile(r, path, what+" of profile "+p.Name)
			if st == nil {
				return
			}
			// The backends' own rule for secret files.
			if err := backend.CheckPrivate(path); err != nil {
				r.add(path, what+": "+oneLine(err.Error()), "")
			}
			for _, u := range users {
				if u.uid != 0 && st.uid != u.uid {
					r.add(path, fmt.Sprintf("owned by %s, not by %s, who must read it alone", userName(st.uid), u.name), fix)
				}
			}
			dirs(r, path, path, seen)
		}
		public := func(path, what string) {
			st := statFile(r, path, what+" of profile "+p.Name)
			if st == nil {
				return
			}
			if st.mode&0o022 != 0 {
				r.add(path, fmt.Sprintf("mode %04o: %s writable by group or others", st.mode, what), "chown root:root "+path+" && chmod 0644 "+path)
			}
			dirs(r, path, path, seen)
		}
		if p.Backend == config.BackendKeyfile {
			secret(p.Key, "secret key")
			if p.NextKey != "" {
				secret(p.NextKey, "next secret key")
			}
		} else {
			public(p.Key, "certificate")
			if p.NextKey != "" {
				public(p.NextKey, "next certificate")
			}
		}
		secret(p.PassphraseFile, "passphrase file")
		if p.Backend == config.BackendPIV {
			secret(p.PIV.PINFile, "PIN file")
		}
		if p.Backend == config.BackendGPGAgent {
			secret(p.GPGAgent.PINFile, "card PIN file")
		}
		if p.Backend == config.BackendTPM {
			secret(p.TPM.AuthFile, "TPM auth file")
			secret(p.TPM.KeyBlob, "TPM key blob")
		}
		if len(r.Findings) > before {
			bad[p.Name] = true
		}
	}
	r.checked("keys")
	return bad
}

// checkLog: root owns the log directory; the log and its side files are
// root's with the signing users' group, append-only and writable by them;
// the log verifies.
func checkLog(r *Report, cfg *config.Config, users []*account, verify func(string) (int, error), seen map[string]bool) {
	path := cfg.Audit.Path
	dirs(r, path, "the audit log", seen)
	group := "signer"
	if len(users) > 0 {
		group = groupName(users[0].gid)
	}
	if appendFile(r, path, "the audit log", "create it (README, Setting up a signing host) or fix the configuration", group, users) && verify != nil {
		if _, err := verify(path); err != nil {
			r.add(path, "the audit chain does not verify: "+oneLine(err.Error()), "run signstar audit verify, keep the log as evidence and start a new one (README, The audit log)")
		}
	}
	// Each request reads and appends to the side files too: a missing one
	// stops every request, and a writable one lets a signer who ran code
	// rewrite what the rate and the proofs are computed from.
	for _, side := range []struct{ path, what string }{
		{audit.IndexPath(path), "the audit log's index"},
		{audit.TreePath(path), "the audit log's tree"},
	} {
		appendFile(r, side.path, side.what, "run signstar audit rebuild as root, then chattr +a "+side.path, group, users)
	}
	r.checked("audit log")
}

// appendFile checks a file the signing users append to: it exists, root
// owns it, others have no access, every user can write it and it is
// append-only. It reports whether the file exists.
func appendFile(r *Report, path, what, missingFix, group string, users []*account) bool {
	fix := fmt.Sprintf("chown root:%s %s && chmod 0660 %s", group, path, path)
	fi, err := os.Stat(path)
	if err != nil {
		r.add(path, what+": "+errText(err), missingFix)
		return false
	}
	st := info(fi)
	rootOwned(r, path, st, fix)
	if st.mode&0o007 != 0 {
		r.add(path, fmt.Sprintf("mode %04o: open to others", st.mode), fix)
	}
	for _, u := range users {
		if !canWrite(st, u) {
			r.add(path, "user "+u.name+" cannot append to it, so every request fails", fix)
		}
	}
	switch on, err := AppendOnly(path); {
	case err == ErrNoAttributes:
		r.add(path, "its file system has no append-only attribute, so a signer who ran code could rewrite it", "put /var/log/signstar on ext4, xfs, btrfs or tmpfs and chattr +a "+path)
	case err != nil:
		r.add(path, "reading its attributes: "+oneLine(err.Error()), "check the file")
	case !on:
		r.add(path, "not append-only: a signer who ran code could rewrite it", "chattr +a "+path+" (as root)")
	}
	return true
}

// checkSyslog: when records go to a syslog socket ([audit] syslog), root
// owns its directories (Load's rule) and a daemon answers on it, as a
// signing process connects to it.
func checkSyslog(r *Report, cfg *config.Config, seen map[string]bool) {
	path := cfg.Audit.Syslog
	if path == "" {
		return
	}
	dirs(r, path, "the syslog socket", seen)
	fix := "start the syslog daemon (rsyslog or systemd-journald), or fix [audit] syslog in " + cfg.Path + " (README, Off the host)"
	if fi, err := os.Stat(path); err == nil && fi.Mode()&os.ModeSocket == 0 {
		r.add(path, "[audit] syslog is not a socket", fix)
	} else {
		s := audit.DialSyslog(path, cfg.Audit.SyslogRequired)
		s.Close()
		if err := s.Err(); err != nil {
			what := "the records stay on this host only"
			if cfg.Audit.SyslogRequired {
				what = "with syslog_required every sign request fails"
			}
			r.add(path, "no syslog daemon answers ("+oneLine(err.Error())+"): "+what, fix)
		}
	}
	r.checked("syslog")
}

// fileInfo is what the checks need of a stat.
type fileInfo struct {
	mode     os.FileMode // permission and sticky bits
	uid, gid int
	dir      bool
}

func statFile(r *Report, path, what string) *fileInfo {
	fi, err := os.Stat(path)
	if err != nil {
		fix := "create it (README, Setting up a signing host) or fix the configuration"
		r.add(path, what+": "+errText(err), fix)
		return nil
	}
	return info(fi)
}

func errText(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}

func rootOwned(r *Report, path string, st *fileInfo, fix string) {
	if st.uid != 0 {
		r.add(path, "owned by "+userName(st.uid)+", not root: its owner could change its mode or contents", fix)
	}
}

func canRead(st *fileInfo, u *account) bool {
	switch {
	case u.uid == 0:
		return true
	case st.uid == u.uid:
		return st.mode&0o400 != 0
	case u.groups[st.gid]:
		return st.mode&0o040 != 0
	}
	return st.mode&0o004 != 0
}

func canWrite(st *fileInfo, u *account) bool {
	switch {
	case u.uid == 0:
		return true
	case st.uid == u.uid:
		return st.mode&0o200 != 0
	case u.groups[st.gid]:
		return st.mode&0o020 != 0
	}
	return st.mode&0o002 != 0
}

func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return "uid " + strconv.Itoa(uid)
}

func groupName(gid int) string {
	if g, err := user.LookupGroupId(strconv.Itoa(gid)); err == nil {
		return g.Name
	}
	return strconv.Itoa(gid)
}
