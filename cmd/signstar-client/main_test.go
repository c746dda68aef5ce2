package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/signstar/signstar/internal/testsupport/testenv"
)

// enclaveBin is the real signstar binary, built once (as make build does)
// for the scripts' enclave.
var enclaveBin string

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"signstar-client": func() { os.Exit(Main()) },
		// The same binary under gpg's name: gpg mode by argv[0].
		"gpg":       func() { os.Exit(Main()) },
		"ssh-local": sshLocal,
	})
}

// sshLocal stands in for the OpenSSH client in the scripts: it takes ssh's
// command line as signstar-client writes it (options, "--", destination,
// command) and runs the command with the real signstar binary in local
// mode ($SIGNSTAR_BIN --config $ENCLAVE_CONFIG WORDS...), so the scripts
// reach a real enclave without sshd (test/e2e goes through sshd). Faults:
// SSH_LOCAL_CUT=N passes only N bytes of the enclave's answer and exits
// 255, as ssh does when the connection drops; SSH_LOCAL_LOG appends each
// command line to a file.
func sshLocal() {
	args := os.Args[1:]
	i := 0
	for i < len(args) && args[i] != "--" {
		i++
	}
	if i+2 >= len(args) {
		fmt.Fprintln(os.Stderr, "ssh-local: want OPTIONS -- DEST COMMAND")
		os.Exit(255)
	}
	words := strings.Fields(strings.Join(args[i+2:], " "))
	if log := os.Getenv("SSH_LOCAL_LOG"); log != "" {
		f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err == nil {
			fmt.Fprintf(f, "%s %s\n", args[i+1], strings.Join(words, " "))
			f.Close()
		}
	}
	cmd := exec.Command(os.Getenv("SIGNSTAR_BIN"), append([]string{"--config", os.Getenv("ENCLAVE_CONFIG")}, words...)...)
	cmd.Stdin, cmd.Stderr = os.Stdin, os.Stderr
	cut := -1
	if c := os.Getenv("SSH_LOCAL_CUT"); c != "" {
		cut, _ = strconv.Atoi(c)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	err := cmd.Run()
	if cut >= 0 {
		b := out.Bytes()
		if len(b) > cut {
			b = b[:cut]
		}
		os.Stdout.Write(b)
		fmt.Fprintln(os.Stderr, "Connection to signing-host closed by remote host.")
		os.Exit(255)
	}
	os.Stdout.Write(out.Bytes())
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		os.Exit(ee.ExitCode())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ssh-local:", err)
		os.Exit(255)
	}
	os.Exit(0)
}

func buildEnclave(t *testing.T) string {
	t.Helper()
	if enclaveBin != "" {
		return enclaveBin
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "signstar")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "../signstar")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ../signstar: %v\n%s", err, out)
	}
	enclaveBin = bin
	return bin
}

var keysDir, _ = filepath.Abs("../../testdata/keys")

func TestScripts(t *testing.T) {
	testenv.NeedTool(t, "gpgv", "gpgv")
	bin := buildEnclave(t)
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
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
			env.Setenv("SIGNSTAR_BIN", bin)
			env.Setenv("ENCLAVE_CONFIG", filepath.Join(env.WorkDir, "enclave.toml"))
			env.Setenv("HOME", filepath.Join(env.WorkDir, "home"))
			env.Setenv("XDG_CONFIG_HOME", "")
			env.Setenv("XDG_STATE_HOME", "")
			return os.MkdirAll(filepath.Join(env.WorkDir, "home"), 0o755)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"subst":      cmdSubst,
			"verifysig":  cmdVerifySig,
			"nofiles":    cmdNoFiles,
			"flipbyte":   cmdFlipByte,
			"exits":      cmdExits,
			"setenvfile": cmdSetenvFile,
		},
	})
}

// subst IN OUT: copy IN to OUT expanding $WORK, $KEYS and friends.
func cmdSubst(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: subst IN OUT")
	}
	out := os.Expand(ts.ReadFile(args[0]), ts.Getenv)
	ts.Check(os.MkdirAll(filepath.Dir(ts.MkAbs(args[1])), 0o755))
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(out), 0o644))
}

// verifysig SIG DATA CERT: gpgv accepts the detached signature (with !,
// refuses it).
func cmdVerifySig(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: verifysig SIG DATA CERT")
	}
	sig, data, cert := ts.MkAbs(args[0]), ts.MkAbs(args[1]), ts.MkAbs(args[2])
	f, err := os.Open(cert)
	ts.Check(err)
	block, err := armor.Decode(f)
	ts.Check(err)
	ring, err := io.ReadAll(block.Body)
	ts.Check(err)
	f.Close()
	ringPath := ts.MkAbs("verifysig.gpg")
	ts.Check(os.WriteFile(ringPath, ring, 0o644))
	home := ts.MkAbs("gnupg-home")
	os.MkdirAll(home, 0o700)
	out, err := exec.Command("gpgv", "--homedir", home, "--keyring", ringPath, sig, data).CombinedOutput()
	if neg {
		if err == nil {
			ts.Fatalf("gpgv accepted %s:\n%s", args[0], out)
		}
		return
	}
	if err != nil || !bytes.Contains(out, []byte("Good signature")) {
		ts.Fatalf("gpgv refused %s: %v\n%s", args[0], err, out)
	}
}

// nofiles DIR GLOB: no file in DIR matches GLOB (hidden ones included),
// so a refused batch left neither a signature nor a temporary file.
func cmdNoFiles(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: nofiles DIR GLOB")
	}
	ents, err := os.ReadDir(ts.MkAbs(args[0]))
	ts.Check(err)
	for _, e := range ents {
		if ok, _ := filepath.Match(args[1], e.Name()); ok {
			ts.Fatalf("%s/%s exists", args[0], e.Name())
		}
		if strings.Contains(e.Name(), ".tmp-") {
			ts.Fatalf("temporary file %s/%s left behind", args[0], e.Name())
		}
	}
}

// flipbyte FILE N: flip the low bit of byte N.
func cmdFlipByte(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: flipbyte FILE N")
	}
	n, err := strconv.Atoi(args[1])
	ts.Check(err)
	b, err := os.ReadFile(ts.MkAbs(args[0]))
	ts.Check(err)
	b[n] ^= 1
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), b, 0o644))
}

// exits N PROG ARGS...: run PROG and check that it exits with status N
// (its stdout and stderr are kept for the next stdout and stderr lines).
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits N PROG ARGS...")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		got = ee.ExitCode()
	} else if err != nil {
		ts.Fatalf("%s: %v", args[1], err)
	}
	if got != want {
		ts.Fatalf("%s exited %d, want %d", args[1], got, want)
	}
}

// setenvfile VAR FILE: set VAR to FILE's content without its trailing
// newline (FILE may be stdout).
func cmdSetenvFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: setenvfile VAR FILE")
	}
	ts.Setenv(args[0], strings.TrimRight(ts.ReadFile(args[1]), "\n"))
}
