package doctor

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// DropIn is where the README installs the sshd drop-in.
const DropIn = "/etc/ssh/sshd_config.d/signstar.conf"

// sshdWant are the settings the drop-in makes for the signing user, as
// sshd -T prints them: no terminal, no forwarding of any kind, no user rc,
// and the client's key exposed for the audit record.
var sshdWant = []struct{ key, value, name string }{
	{"permittty", "no", "PermitTTY"},
	{"allowtcpforwarding", "no", "AllowTcpForwarding"},
	{"allowstreamlocalforwarding", "no", "AllowStreamLocalForwarding"},
	{"x11forwarding", "no", "X11Forwarding"},
	{"allowagentforwarding", "no", "AllowAgentForwarding"},
	{"permittunnel", "no", "PermitTunnel"},
	{"permituserrc", "no", "PermitUserRC"},
	{"exposeauthinfo", "yes", "ExposeAuthInfo"},
}

// SSHDSettings runs sshd -T for a connection of user and returns the
// settings in force, keys in lower case as sshd prints them.
func SSHDSettings(sshd, config, user string) (map[string]string, error) {
	args := []string{"-T"}
	if config != "" {
		args = append(args, "-f", config)
	}
	args = append(args, "-C", "user="+user+",host=localhost,addr=127.0.0.1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sshd, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		return nil, fmt.Errorf("sshd -T: %v: %s", err, msg)
	}
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		if _, dup := m[k]; !dup {
			m[k] = v
		}
	}
	return m, sc.Err()
}

func checkSSHD(r *Report, o Options, users []*account, seen map[string]bool) {
	sshd := o.SSHD
	if sshd == "" {
		sshd = "/usr/sbin/sshd"
	}
	if _, err := os.Stat(sshd); err != nil {
		r.add(sshd, "sshd not found, so the drop-in cannot be checked", "apt-get install openssh-server")
		return
	}
	dropFix := "install the drop-in (/usr/share/doc/signstar/examples/sshd_config.d/signstar.conf, configs/sshd_config.d/ in the source) as " + DropIn + ", then sshd -t && systemctl reload ssh"
	for _, u := range users {
		subject := "sshd for user " + u.name
		m, err := SSHDSettings(sshd, o.SSHDConfig, u.name)
		if err != nil {
			r.add(subject, oneLine(err.Error()), "fix the sshd configuration (sshd -t)")
			continue
		}
		var wrong []string
		for _, w := range sshdWant {
			if m[w.key] != w.value {
				wrong = append(wrong, w.name)
			}
		}
		shell := loginShell(u.name)
		shellIsSignstar := filepath.Base(shell) == "signstar"
		fc := m["forcecommand"]
		switch {
		case fc == "" || fc == "none":
			// One finding: the rest of the drop-in is missing too.
			msg := "no ForceCommand in force: the drop-in is missing or does not match the user"
			if shellIsSignstar {
				msg = "signstar is the login shell but no ForceCommand is in force: a session that never starts the shell (Subsystem sftp internal-sftp, scp) reaches the key files"
			}
			if len(wrong) > 0 {
				msg += " (not in force either: " + strings.Join(wrong, ", ") + ")"
			}
			r.add(subject, msg, dropFix)
			continue
		default:
			words := strings.Fields(fc)
			prog := strings.Trim(words[0], `'"`)
			if filepath.Base(prog) != "signstar" {
				r.add(subject, "ForceCommand runs "+prog+", not signstar", "set ForceCommand /usr/bin/signstar in "+DropIn)
				break
			}
			checkProgram(r, prog, seen)
			checkForcedConfig(r, subject, words[1:], o.Config.Path)
			switch {
			case shellIsSignstar && !onlyProfile(words[1:]):
				r.add(subject, "with signstar as the login shell, the ForceCommand may add only --profile NAME, and it has "+strings.Join(words[1:], " "), "remove the other options from the ForceCommand in "+DropIn+", or usermod -s /bin/sh "+u.name)
			case shellIsSignstar:
			case shell == "" || strings.HasSuffix(shell, "nologin") || strings.HasSuffix(shell, "/false"):
				r.add(subject, "login shell "+orNone(shell)+" cannot start the ForceCommand (sshd runs it through the shell)", "usermod -s /bin/sh "+u.name+" (or -s /usr/bin/signstar)")
			}
		}
		for _, w := range sshdWant {
			if got := m[w.key]; got != w.value {
				r.add(subject, fmt.Sprintf("%s is %s", w.name, orNone(got)), fmt.Sprintf("set %s %s in the Match User %s block of %s", w.name, w.value, u.name, DropIn))
			}
		}
	}
	r.checked("sshd")
}

// onlyProfile reports whether the ForceCommand's arguments are at most
// --profile NAME, all a login-shell signstar accepts after its own path.
func onlyProfile(args []string) bool {
	switch len(args) {
	case 0:
		return true
	case 1:
		return strings.HasPrefix(strings.Trim(args[0], `'"`), "--profile=")
	case 2:
		return strings.Trim(args[0], `'"`) == "--profile"
	}
	return false
}

func orNone(s string) string {
	if s == "" {
		return "unset"
	}
	return s
}

// checkProgram: the program sshd runs belongs to root and only root can
// change it or the directories above it.
func checkProgram(r *Report, prog string, seen map[string]bool) {
	fi, err := os.Stat(prog)
	if err != nil {
		r.add(prog, "the ForceCommand program: "+errText(err), "install signstar there")
		return
	}
	st := info(fi)
	rootOwned(r, prog, st, "chown root:root "+prog+" && chmod 0755 "+prog)
	if st.mode&0o022 != 0 {
		r.add(prog, fmt.Sprintf("mode %04o: writable by group or others", st.mode), "chown root:root "+prog+" && chmod 0755 "+prog)
	}
	dirs(r, prog, "the ForceCommand program", seen)
}

// checkForcedConfig: the ForceCommand reads the configuration doctor
// checked.
func checkForcedConfig(r *Report, subject string, args []string, checked string) {
	used := "/etc/signstar/config.toml"
	for i := 0; i < len(args); i++ {
		a := strings.Trim(args[i], `'"`)
		if v, ok := strings.CutPrefix(a, "--config="); ok {
			used = v
		} else if a == "--config" && i+1 < len(args) {
			used = strings.Trim(args[i+1], `'"`)
			i++
		}
	}
	if abs, err := filepath.Abs(checked); err == nil {
		checked = abs
	}
	if filepath.Clean(used) != checked {
		r.add(subject, "the ForceCommand reads "+used+", not the configuration checked here ("+checked+")", "run signstar --config "+used+" doctor, or fix the ForceCommand")
	}
}

// loginShell is the user's shell from /etc/passwd.
func loginShell(name string) string {
	f, err := os.Open("/etc/passwd")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) == 7 && fields[0] == name {
			return fields[6]
		}
	}
	return ""
}
