package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/sys/unix"

	"github.com/signstar/signstar/internal/request"
	"github.com/signstar/signstar/internal/testsupport/testenv"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"signstar": func() { os.Exit(Main()) },
	})
}

// keysDir holds the test keys (made with GnuPG; see testdata/keys/README).
var keysDir, _ = filepath.Abs("../../testdata/keys")

func TestScripts(t *testing.T) {
	testenv.NeedTool(t, "gpgv", "gpgv")
	testenv.NeedTool(t, "sqv", "sqv")
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup:               setupScript,
		// [need:PROG] and [needroot] are true when the peer is there, and
		// always in CI, so that a missing peer fails there instead of
		// skipping: `[!need:pacman] skip 'apt-get install ...'`.
		Condition: func(cond string) (bool, error) {
			if prog, ok := strings.CutPrefix(cond, "need:"); ok {
				_, err := exec.LookPath(prog)
				return err == nil || testenv.InCI(), nil
			}
			if cond == "needroot" {
				return os.Geteuid() == 0 || testenv.InCI(), nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"subst":        cmdSubst,
			"verifysig":    cmdVerifySig,
			"setenvq":      cmdSetenvQ,
			"repeat":       cmdRepeat,
			"pty":          cmdPty,
			"auditfield":   cmdAuditField,
			"flipbyte":     cmdFlipByte,
			"chmod":        cmdChmod,
			"appendfile":   cmdAppendFile,
			"auditrecord":  cmdAuditRecord,
			"editline":     cmdEditLine,
			"dropline":     cmdDropLine,
			"swaplines":    cmdSwapLines,
			"dupline":      cmdDupLine,
			"truncate":     cmdTruncate,
			"filemode":     cmdFileMode,
			"parallelsign": cmdParallelSign,
			"gpgagent":     cmdGPGAgent,
			"chown":        cmdChown,
			"mkfifo":       cmdMkfifo,
			"sticky":       cmdSticky,
			"sshauth":      cmdSSHAuth,
			"exitis":       cmdExitIs,
			"v1response":   cmdV1Response,
		},
	})
}

// setupScript copies the test keys into $WORK/keys with the modes signstar
// insists on, and names the current user for configs.
func setupScript(env *testscript.Env) error {
	dst := filepath.Join(env.WorkDir, "keys")
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	ents, err := os.ReadDir(keysDir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(keysDir, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o600); err != nil {
			return err
		}
	}
	u, err := user.Current()
	if err != nil {
		return err
	}
	env.Setenv("ME", u.Username)
	env.Setenv("KEYS", dst)
	env.Setenv("UPSTREAM", upstreamDir)
	return nil
}

// upstreamDir holds Arch Linux Signstar's request fixtures.
var upstreamDir, _ = filepath.Abs("../../internal/archreq/testdata/upstream")

// v1response RESPONSE SIG: RESPONSE is upstream's signing response (exactly
// version "1.0.0" and an armored signature); write the signature to SIG.
func cmdV1Response(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: v1response RESPONSE SIG")
	}
	dec := json.NewDecoder(strings.NewReader(ts.ReadFile(args[0])))
	dec.DisallowUnknownFields()
	var resp struct {
		Version   *string `json:"version"`
		Signature *string `json:"signature"`
	}
	ts.Check(dec.Decode(&resp))
	if dec.More() || resp.Version == nil || *resp.Version != "1.0.0" || resp.Signature == nil ||
		!strings.HasPrefix(*resp.Signature, "-----BEGIN PGP SIGNATURE-----\n") || !strings.HasSuffix(*resp.Signature, "-----END PGP SIGNATURE-----") {
		ts.Fatalf("not a signstar-v1 response: %s", ts.ReadFile(args[0]))
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(*resp.Signature+"\n"), 0o644))
}

// subst IN OUT: copy IN to OUT expanding $WORK, $ME, $KEYS and friends.
func cmdSubst(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: subst IN OUT")
	}
	in := ts.ReadFile(args[0])
	out := os.Expand(in, ts.Getenv)
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(out), 0o644))
}

// verifysig SIG DATA CERT: verify a detached signature with gpgv and sqv.
// With !, both must reject it.
func cmdVerifySig(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: verifysig SIG DATA CERT")
	}
	sig, data, cert := ts.MkAbs(args[0]), ts.MkAbs(args[1]), ts.MkAbs(args[2])
	// gpgv wants a binary keyring.
	ring := cert + ".gpg"
	if _, err := os.Stat(ring); err != nil {
		f, err := os.Open(cert)
		ts.Check(err)
		block, err := armor.Decode(f)
		ts.Check(err)
		var buf bytes.Buffer
		_, err = buf.ReadFrom(block.Body)
		ts.Check(err)
		f.Close()
		ts.Check(os.WriteFile(ring, buf.Bytes(), 0o644))
	}
	home := ts.MkAbs("gnupg-home")
	os.MkdirAll(home, 0o700)
	gpgv := exec.Command("gpgv", "--homedir", home, "--keyring", ring, sig, data)
	gout, gerr := gpgv.CombinedOutput()
	sqv := exec.Command("sqv", "--keyring", cert, sig, data)
	sout, serr := sqv.CombinedOutput()
	if neg {
		if gerr == nil {
			ts.Fatalf("gpgv accepted a signature it should reject:\n%s", gout)
		}
		if serr == nil {
			ts.Fatalf("sqv accepted a signature it should reject:\n%s", sout)
		}
		return
	}
	if gerr != nil {
		ts.Fatalf("gpgv rejected the signature: %v\n%s", gerr, gout)
	}
	if serr != nil {
		ts.Fatalf("sqv rejected the signature: %v\n%s", serr, sout)
	}
	if !strings.Contains(string(gout), "Good signature") {
		ts.Fatalf("gpgv said no Good signature:\n%s", gout)
	}
}

// setenvq VAR QUOTED: set VAR to a Go-quoted string, for control bytes.
func cmdSetenvQ(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: setenvq VAR \"quoted\"")
	}
	v, err := strconv.Unquote(args[1])
	ts.Check(err)
	ts.Setenv(args[0], v)
}

// repeat VAR PREFIX WORD N: set VAR to PREFIX followed by WORD N times.
func cmdRepeat(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 4 {
		ts.Fatalf("usage: repeat VAR PREFIX WORD N")
	}
	n, err := strconv.Atoi(args[3])
	ts.Check(err)
	ts.Setenv(args[0], args[1]+strings.Repeat(args[2], n))
}

// pty PROG ARGS...: run PROG with a pseudo-terminal as stdin; stdout and
// stderr go to the usual buffers.
func cmdPty(ts *testscript.TestScript, neg bool, args []string) {
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	ts.Check(err)
	defer ptmx.Close()
	ts.Check(unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0))
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	ts.Check(err)
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	ts.Check(err)
	defer tty.Close()
	path, err := exec.LookPath(args[0])
	ts.Check(err)
	cmd := exec.Command(path, args[1:]...)
	cmd.Dir = ts.MkAbs(".")
	cmd.Env = envList(ts)
	cmd.Stdin = tty
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	ts.Logf("[stdout]\n%s[stderr]\n%s", stdout.String(), stderr.String())
	ts.Check(os.WriteFile(ts.MkAbs("pty.stdout"), stdout.Bytes(), 0o644))
	ts.Check(os.WriteFile(ts.MkAbs("pty.stderr"), stderr.Bytes(), 0o644))
	if neg != (err != nil) {
		ts.Fatalf("unexpected result: %v", err)
	}
}

func envList(ts *testscript.TestScript) []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "SSH_CONNECTION", "SSH_ORIGINAL_COMMAND", "SSH_CLIENT", "SSH_USER_AUTH"} {
		if v := ts.Getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// auditfield LOG N FIELD VALUE: record N (1-based, or "last") of LOG has
// FIELD equal to VALUE (compared as JSON text for numbers).
func cmdAuditField(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 4 {
		ts.Fatalf("usage: auditfield LOG N|last FIELD VALUE")
	}
	rec := auditRecord(ts, args[0], args[1])
	got, ok := rec[args[2]]
	if !ok {
		ts.Fatalf("record has no field %q", args[2])
	}
	s := fmt.Sprint(got)
	if (s == args[3]) == neg {
		ts.Fatalf("field %s is %q, want %s%q", args[2], s, map[bool]string{true: "not ", false: ""}[neg], args[3])
	}
}

// auditrecord LOG COUNT: the log has exactly COUNT lines.
func cmdAuditRecord(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: auditrecord LOG COUNT")
	}
	lines := strings.Split(strings.TrimSuffix(ts.ReadFile(args[0]), "\n"), "\n")
	if args[1] == "0" && lines[0] == "" {
		return
	}
	if strconv.Itoa(len(lines)) != args[1] {
		ts.Fatalf("audit log has %d records, want %s", len(lines), args[1])
	}
}

// flipbyte FILE OFFSET: invert one byte.
func cmdFlipByte(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: flipbyte FILE OFFSET")
	}
	p := ts.MkAbs(args[0])
	data, err := os.ReadFile(p)
	ts.Check(err)
	off, err := strconv.Atoi(args[1])
	ts.Check(err)
	if off < 0 {
		off += len(data)
	}
	data[off] ^= 0xff
	ts.Check(os.WriteFile(p, data, 0o644))
}

// chmod MODE FILE
func cmdChmod(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: chmod MODE FILE")
	}
	m, err := strconv.ParseUint(args[0], 8, 32)
	ts.Check(err)
	ts.Check(os.Chmod(ts.MkAbs(args[1]), os.FileMode(m)))
}

// appendfile FILE TEXT: append TEXT (Go-quoted) to FILE.
func cmdAppendFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: appendfile FILE \"quoted\"")
	}
	v, err := strconv.Unquote(args[1])
	ts.Check(err)
	f, err := os.OpenFile(ts.MkAbs(args[0]), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	ts.Check(err)
	_, err = f.WriteString(v)
	ts.Check(err)
	ts.Check(f.Close())
}

func auditRecord(ts *testscript.TestScript, log, which string) map[string]any {
	lines := strings.Split(strings.TrimSuffix(ts.ReadFile(log), "\n"), "\n")
	i := len(lines) - 1
	if which != "last" {
		n, err := strconv.Atoi(which)
		ts.Check(err)
		i = n - 1
	}
	if i < 0 || i >= len(lines) || lines[i] == "" {
		ts.Fatalf("audit log has no record %s", which)
	}
	dec := json.NewDecoder(strings.NewReader(lines[i]))
	dec.UseNumber()
	var rec map[string]any
	ts.Check(dec.Decode(&rec))
	return rec
}

func readLines(ts *testscript.TestScript, name string) []string {
	return strings.SplitAfter(ts.ReadFile(name), "\n")
}

func writeLines(ts *testscript.TestScript, name string, lines []string) {
	ts.Check(os.WriteFile(ts.MkAbs(name), []byte(strings.Join(lines, "")), 0o644))
}

func lineIndex(ts *testscript.TestScript, lines []string, s string) int {
	n, err := strconv.Atoi(s)
	ts.Check(err)
	if n < 1 || n > len(lines) {
		ts.Fatalf("no line %d", n)
	}
	return n - 1
}

// editline FILE N OLD NEW: replace OLD by NEW in line N.
func cmdEditLine(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 4 {
		ts.Fatalf("usage: editline FILE N OLD NEW")
	}
	lines := readLines(ts, args[0])
	i := lineIndex(ts, lines, args[1])
	if !strings.Contains(lines[i], args[2]) {
		ts.Fatalf("line %s has no %q", args[1], args[2])
	}
	lines[i] = strings.Replace(lines[i], args[2], args[3], 1)
	writeLines(ts, args[0], lines)
}

// dropline FILE N
func cmdDropLine(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: dropline FILE N")
	}
	lines := readLines(ts, args[0])
	i := lineIndex(ts, lines, args[1])
	writeLines(ts, args[0], append(lines[:i], lines[i+1:]...))
}

// dupline FILE N: append a copy of line N.
func cmdDupLine(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: dupline FILE N")
	}
	lines := readLines(ts, args[0])
	i := lineIndex(ts, lines, args[1])
	writeLines(ts, args[0], append(lines, lines[i]))
}

// swaplines FILE N M
func cmdSwapLines(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: swaplines FILE N M")
	}
	lines := readLines(ts, args[0])
	i, j := lineIndex(ts, lines, args[1]), lineIndex(ts, lines, args[2])
	lines[i], lines[j] = lines[j], lines[i]
	writeLines(ts, args[0], lines)
}

// truncate FILE SIZE: a negative SIZE cuts that many bytes off the end.
func cmdTruncate(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: truncate FILE SIZE")
	}
	p := ts.MkAbs(args[0])
	n, err := strconv.ParseInt(args[1], 10, 64)
	ts.Check(err)
	if n < 0 {
		fi, err := os.Stat(p)
		ts.Check(err)
		n += fi.Size()
	}
	ts.Check(os.Truncate(p, n))
}

// filemode FILE MODE: FILE has exactly permission bits MODE.
func cmdFileMode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: filemode FILE MODE")
	}
	fi, err := os.Stat(ts.MkAbs(args[0]))
	ts.Check(err)
	if got := fmt.Sprintf("%04o", fi.Mode().Perm()); got != args[1] {
		ts.Fatalf("%s has mode %s, want %s", args[0], got, args[1])
	}
}

// parallelsign N CONFIG CERT: start N signstar processes at once, each
// signing its own input; all must succeed and verify with gpgv.
func cmdParallelSign(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: parallelsign N CONFIG CERT")
	}
	n, err := strconv.Atoi(args[0])
	ts.Check(err)
	path, err := exec.LookPath("signstar")
	ts.Check(err)
	type result struct {
		i   int
		err error
		out []byte
	}
	results := make(chan result, n)
	for i := 0; i < n; i++ {
		data := []byte(fmt.Sprintf("artifact number %d\n", i))
		ts.Check(os.WriteFile(ts.MkAbs(fmt.Sprintf("in-%d", i)), data, 0o644))
		go func(i int, data []byte) {
			cmd := exec.Command(path, "--config", ts.MkAbs(args[1]), "sign")
			cmd.Env = envList(ts)
			cmd.Stdin = bytes.NewReader(data)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				err = fmt.Errorf("%v: %s", err, stderr.String())
			}
			results <- result{i, err, out}
		}(i, data)
	}
	for k := 0; k < n; k++ {
		r := <-results
		if r.err != nil {
			ts.Fatalf("signer %d: %v", r.i, r.err)
		}
		ts.Check(os.WriteFile(ts.MkAbs(fmt.Sprintf("in-%d.sig", r.i)), r.out, 0o644))
	}
	for i := 0; i < n; i++ {
		cmdVerifySig(ts, false, []string{fmt.Sprintf("in-%d.sig", i), fmt.Sprintf("in-%d", i), args[2]})
	}
}

// gpgagent HOME: start a real gpg-agent for GnuPG home HOME (allowing
// loopback pinentry, caching nothing), set $AGENT_SOCKET to its socket, and
// stop it when the script ends, failed or not.
func cmdGPGAgent(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: gpgagent HOME")
	}
	home := ts.MkAbs(args[0])
	ts.Check(os.MkdirAll(home, 0o700))
	ts.Check(os.WriteFile(filepath.Join(home, "gpg-agent.conf"),
		[]byte("allow-loopback-pinentry\ndefault-cache-ttl 0\nmax-cache-ttl 0\n"), 0o600))
	ts.Defer(func() {
		exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
	})
	if out, err := exec.Command("gpgconf", "--homedir", home, "--launch", "gpg-agent").CombinedOutput(); err != nil {
		ts.Fatalf("gpgconf --launch gpg-agent: %v: %s", err, out)
	}
	out, err := exec.Command("gpgconf", "--homedir", home, "--list-dirs", "agent-socket").Output()
	ts.Check(err)
	ts.Setenv("AGENT_SOCKET", strings.TrimSpace(string(out)))
}

// chown UID FILE: give FILE (not following a symbolic link) to UID, group
// unchanged.
func cmdChown(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: chown UID FILE")
	}
	uid, err := strconv.Atoi(args[0])
	ts.Check(err)
	ts.Check(os.Lchown(ts.MkAbs(args[1]), uid, -1))
}

// mkfifo FILE
func cmdMkfifo(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: mkfifo FILE")
	}
	ts.Check(unix.Mkfifo(ts.MkAbs(args[0]), 0o644))
}

// sticky DIR: make DIR mode 1777, as /tmp (testscript's chmod takes
// permission bits only).
func cmdSticky(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: sticky DIR")
	}
	ts.Check(unix.Chmod(ts.MkAbs(args[0]), 0o1777))
}

// testUser names the user the tests run as, for configs' users.
func testUser() string { return request.CurrentCaller(func(string) string { return "" }).User }

// sshauth NAME: write an ExposeAuthInfo file as sshd does
// (/tmp/sshauth.XXXXXXXXXXXXXXX, mode 0600, "publickey ssh-ed25519 KEY")
// for a new random Ed25519 key, set $NAME to its path and $NAME_FP to the
// key's fingerprint (as ssh-keygen -lf prints it), and remove the file when
// the script ends. With SSH_USER_AUTH=$NAME a local signstar is that key's
// caller, as one started by sshd would be.
func cmdSSHAuth(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: sshauth NAME")
	}
	pub := make([]byte, 32)
	_, err := rand.Read(pub)
	ts.Check(err)
	var blob []byte
	for _, f := range [][]byte{[]byte("ssh-ed25519"), pub} {
		blob = binary.BigEndian.AppendUint32(blob, uint32(len(f)))
		blob = append(blob, f...)
	}
	const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	name := make([]byte, 15)
	_, err = rand.Read(name)
	ts.Check(err)
	for i := range name {
		name[i] = alnum[int(name[i])%len(alnum)]
	}
	path := "/tmp/sshauth." + string(name)
	ts.Check(os.WriteFile(path, []byte("publickey ssh-ed25519 "+base64.StdEncoding.EncodeToString(blob)+"\n"), 0o600))
	ts.Defer(func() { os.Remove(path) })
	sum := sha256.Sum256(blob)
	ts.Setenv(args[0], path)
	ts.Setenv(args[0]+"_FP", "SHA256:"+base64.RawStdEncoding.EncodeToString(sum[:]))
}

// exitis CODE STDIN PROG ARGS...: run PROG with STDIN and the script's
// environment, and fail unless it exits CODE; its stdout and stderr go to
// the files exitis.stdout and exitis.stderr, for grep.
func cmdExitIs(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 3 {
		ts.Fatalf("usage: exitis CODE STDIN PROG ARGS...")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	in, err := os.Open(ts.MkAbs(args[1]))
	ts.Check(err)
	defer in.Close()
	path, err := exec.LookPath(args[2])
	ts.Check(err)
	cmd := exec.Command(path, args[3:]...)
	cmd.Dir = ts.MkAbs(".")
	cmd.Env = envList(ts)
	cmd.Stdin = in
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else {
		ts.Check(err)
	}
	ts.Check(os.WriteFile(ts.MkAbs("exitis.stdout"), stdout.Bytes(), 0o644))
	ts.Check(os.WriteFile(ts.MkAbs("exitis.stderr"), stderr.Bytes(), 0o644))
	if code != want {
		ts.Fatalf("%s exited %d, want %d; stderr: %s", args[2], code, want, stderr.String())
	}
}
