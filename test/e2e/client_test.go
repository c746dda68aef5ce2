package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signstar/signstar/internal/backend"
	"github.com/signstar/signstar/internal/testsupport/pacmantest"
	"github.com/signstar/signstar/internal/testsupport/sshtest"
	"github.com/signstar/signstar/internal/testsupport/testenv"
)

// clientEnv is signstar-client set up for one Unix user against an
// enclave: a home with client.toml, the client key and known_hosts that
// user may read, and a directory whose gpg is the client.
type clientEnv struct {
	home, config, gpgDir, bin string
	e                         *enclave
}

// logEnclave gives the enclave a transparency log key (audit keygen) and
// the [audit] origin and checkpoint_key that serve checkpoint and proof,
// and returns its verifier key.
func logEnclave(t *testing.T, e *enclave) string {
	t.Helper()
	key := filepath.Join(filepath.Dir(e.config), "log.key")
	out, err := exec.Command(e.bin, "audit", "keygen", "--origin", "example.org/signstar", "--out", key).Output()
	if err != nil {
		t.Fatalf("audit keygen: %v", err)
	}
	if out, err := exec.Command("chown", e.User, key).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v: %s", err, out)
	}
	os.Chmod(key, 0o400)
	cfg, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	cfg = bytes.Replace(cfg, []byte("[audit]\n"), []byte(fmt.Sprintf("[audit]\norigin = \"example.org/signstar\"\ncheckpoint_key = %q\n", key)), 1)
	if err := os.WriteFile(e.config, cfg, 0o640); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// newClientEnv writes the configuration for owner ("" for root; else a
// user such as nobody, who gets copies of the key and known_hosts).
func newClientEnv(t *testing.T, e *enclave, owner, witness string, extraOptions ...string) *clientEnv {
	t.Helper()
	home, err := os.MkdirTemp("", "signstar-client-home-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	os.Chmod(home, 0o755)
	c := &clientEnv{home: home, e: e, bin: filepath.Join(binDir, "signstar-client"),
		config: filepath.Join(home, ".config", "signstar", "client.toml"), gpgDir: filepath.Join(home, "gpg-bin")}
	opts := append(extraOptions, e.ClientOptions("client")...)
	if owner != "" {
		// The key and known_hosts, readable by owner only.
		key, err := os.ReadFile(e.Key("client").Path)
		if err != nil {
			t.Fatal(err)
		}
		kh, err := os.ReadFile(filepath.Join(e.Dir, "client", "known_hosts"))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(home, "id"), key, 0o600)
		os.WriteFile(filepath.Join(home, "known_hosts"), kh, 0o600)
		for i, o := range opts {
			switch {
			case o == e.Key("client").Path:
				opts[i] = filepath.Join(home, "id")
			case strings.HasPrefix(o, "UserKnownHostsFile="):
				opts[i] = "UserKnownHostsFile=" + filepath.Join(home, "known_hosts")
			}
		}
	}
	var quoted []string
	for _, o := range opts {
		quoted = append(quoted, strconv.Quote(o))
	}
	cfg := fmt.Sprintf("host = %q\nuser = %q\nprofile = \"repo\"\nssh_options = [%s]\n%s\n", e.Host, e.User, strings.Join(quoted, ", "), witness)
	if err := os.MkdirAll(filepath.Dir(c.config), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(c.gpgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(c.bin, filepath.Join(c.gpgDir, "gpg")); err != nil {
		t.Fatal(err)
	}
	if owner != "" {
		if out, err := exec.Command("chown", "-R", owner, home).CombinedOutput(); err != nil {
			t.Fatalf("chown %s: %v\n%s", owner, err, out)
		}
	}
	return c
}

// env is the environment of a tool run with the client as gpg first on
// PATH.
func (c *clientEnv) env() []string {
	return []string{"PATH=" + c.gpgDir + ":/usr/bin:/bin:/usr/sbin:/sbin", "HOME=" + c.home, "LC_ALL=C"}
}

// run runs the client (args[0] "signstar-client" or a tool) and returns
// its exit code, stdout and stderr.
func (c *clientEnv) run(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// exec looks names up in this process's PATH: the client's own
	// names are given by path, the tools find gpg through env's PATH.
	name := args[0]
	switch name {
	case "signstar-client":
		name = c.bin
	case "gpg":
		name = filepath.Join(c.gpgDir, "gpg")
	}
	cmd := exec.CommandContext(ctx, name, args[1:]...)
	cmd.Dir, cmd.Env = dir, c.env()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return code, out.String(), errb.String()
}

func (c *clientEnv) ok(t *testing.T, dir string, args ...string) string {
	t.Helper()
	code, out, errs := c.run(t, dir, args...)
	if code != 0 {
		t.Fatalf("%v: exit %d\nstdout %s\nstderr %s", args, code, out, errs)
	}
	return out
}

// noSignatures fails when dir holds a .sig, .asc or temporary file.
func noSignatures(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		n := e.Name()
		if strings.HasSuffix(n, ".sig") || strings.HasSuffix(n, ".asc") || strings.Contains(n, ".tmp-") {
			t.Errorf("%s/%s exists after a failed batch", dir, n)
		}
	}
}

// TestClient drives signstar-client through the real sshd and enclave, as
// a repository server would: pin, sign, the gpg mode under repo-add -s
// and makepkg --sign (as nobody), pacman installing what they signed with
// SigLevel = Required TrustedOnly, and the faults: a connection killed
// mid-upload and a signature by another key leave no .sig. One sshd for
// all of it.
func TestClient(t *testing.T) {
	pacmantest.NeedTools(t)
	testenv.NeedTool(t, "makepkg", "makepkg")
	testenv.NeedTool(t, "setpriv", "util-linux")
	e := newEnclave(t, enclaveOptions{deployment: sshtest.ForceCommand})
	verifier := logEnclave(t, e)
	witness := fmt.Sprintf("log_key = %q", verifier)
	root := newClientEnv(t, e, "", witness+"\nproofs = true")
	work := t.TempDir()
	pub, err := os.ReadFile(e.pub)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := backend.ParseEntity(pub)
	if err != nil {
		t.Fatal(err)
	}
	fpr := backend.Fingerprint(cert.PrimaryKey)

	if out := root.ok(t, work, "signstar-client", "pin"); !strings.HasPrefix(out, "pinned: "+fpr+" ") {
		t.Fatalf("pin: %q", out)
	}
	pinned := filepath.Join(root.home, ".local", "state", "signstar", "certificate.asc")

	t.Run("sign", func(t *testing.T) {
		data := randomBytes(t, 100<<10)
		p := filepath.Join(work, "one.bin")
		os.WriteFile(p, data, 0o644)
		root.ok(t, work, "signstar-client", "sign", p)
		sig, err := os.ReadFile(p + ".sig")
		if err != nil {
			t.Fatal(err)
		}
		e.verifySig(t, data, sig)
		if proof, err := os.ReadFile(p + ".proof"); err != nil || !bytes.HasPrefix(proof, []byte("c2sp.org/tlog-proof@v1\n")) {
			t.Errorf("proofs = true wrote no proof file: %v", err)
		}
		if rec := e.last(t); rec.Digest != sha256Digest(data) || !strings.Contains(rec.Command, "--expect "+sha256Digest(data)) {
			t.Errorf("record %+v", rec)
		}
		// A batch: one sign --tar session, a signature and a proof each.
		sessions := strings.Count(e.Log(), "Starting session:")
		var files []string
		datas := map[string][]byte{}
		for i := 0; i < 5; i++ {
			f := filepath.Join(work, fmt.Sprintf("batch%d-1.0-1-any.pkg.tar.zst", i))
			datas[f] = randomBytes(t, 10<<10)
			os.WriteFile(f, datas[f], 0o644)
			files = append(files, f)
		}
		root.ok(t, work, append([]string{"signstar-client", "sign"}, files...)...)
		for _, f := range files {
			sig, err := os.ReadFile(f + ".sig")
			if err != nil {
				t.Fatal(err)
			}
			e.verifySig(t, datas[f], sig)
			if _, err := os.Stat(f + ".proof"); err != nil {
				t.Error(err)
			}
		}
		// sign --tar, checkpoint --from, and a proof per file.
		if got := strings.Count(e.Log(), "Starting session:") - sessions; got != 2+len(files) {
			t.Errorf("the batch took %d sessions, want %d", got, 2+len(files))
		}
		if rec := e.last(t); !strings.HasPrefix(rec.Command, "sign --tar --profile repo --expect sha256:") || rec.Name != filepath.Base(files[4]) {
			t.Errorf("last record of the batch: %+v", rec)
		}
	})

	t.Run("connection killed mid-batch", func(t *testing.T) {
		dir := filepath.Join(work, "killed")
		os.Mkdir(dir, 0o755)
		var batch []string
		for i := 0; i < 16; i++ {
			f := filepath.Join(dir, fmt.Sprintf("part%02d.iso", i))
			os.WriteFile(f, randomBytes(t, 1<<20), 0o644)
			batch = append(batch, f)
		}
		proxy := startKillProxy(t, e.Port, 8<<20)
		kh, _ := os.ReadFile(filepath.Join(e.Dir, "client", "known_hosts"))
		khProxy := filepath.Join(dir, "known_hosts.proxy")
		os.WriteFile(khProxy, bytes.Replace(kh, []byte("]:"+strconv.Itoa(e.Port)+" "), []byte("]:"+strconv.Itoa(proxy.port)+" "), 1), 0o600)
		c := newClientEnv(t, e, "", witness, "-o", "Port="+strconv.Itoa(proxy.port), "-o", "UserKnownHostsFile="+khProxy)
		os.MkdirAll(filepath.Dir(filepath.Join(c.home, ".local/state/signstar/certificate.asc")), 0o700)
		os.WriteFile(filepath.Join(c.home, ".local/state/signstar/certificate.asc"), pub, 0o644)
		code, _, errs := c.run(t, dir, append([]string{"signstar-client", "sign"}, batch...)...)
		if code != 1 || !strings.Contains(errs, "ssh failed") {
			t.Errorf("killed connection: exit %d, stderr %q; want 1 and ssh failed", code, errs)
		}
		if !proxy.killed.Load() {
			t.Error("the proxy never killed the connection")
		}
		noSignatures(t, dir)
	})

	t.Run("signature by another key", func(t *testing.T) {
		dir := filepath.Join(work, "other")
		os.Mkdir(dir, 0o755)
		p := filepath.Join(dir, "x.db")
		os.WriteFile(p, []byte("database"), 0o644)
		other, _ := os.ReadFile(repoFile(t, "testdata/keys/rsa3072.pub"))
		os.WriteFile(pinned, other, 0o644)
		defer os.WriteFile(pinned, pub, 0o644)
		code, _, errs := root.run(t, dir, "signstar-client", "sign", p)
		if code != 3 || !strings.Contains(errs, "which is not in the pinned certificate") {
			t.Errorf("another key: exit %d, stderr %q; want 3", code, errs)
		}
		noSignatures(t, dir)
		code, _, errs = root.run(t, dir, "gpg", "--detach-sign", "--use-agent", "--no-armor", p)
		if code != 3 {
			t.Errorf("gpg mode, another key: exit %d, stderr %q; want 3", code, errs)
		}
		noSignatures(t, dir)
	})

	// repo-add -s -k FPR with the client as gpg: the database and the
	// files database are signed; the package was signed by makepkg --sign
	// as nobody, with the client as its gpg too.
	build, err := os.MkdirTemp("", "signstar-client-makepkg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(build) })
	os.Chmod(build, 0o755)
	nobody := newClientEnv(t, e, "nobody:nogroup", witness)
	nobodyState := filepath.Join(nobody.home, ".local", "state", "signstar")
	os.MkdirAll(nobodyState, 0o700)
	os.WriteFile(filepath.Join(nobodyState, "certificate.asc"), pub, 0o644)
	os.WriteFile(filepath.Join(build, "PKGBUILD"), []byte(`pkgname=clienthello
pkgver=1.0
pkgrel=1
pkgdesc='signed by makepkg --sign through signstar-client'
arch=(any)
license=(MIT)
package() {
	mkdir -p "$pkgdir/usr/share/clienthello"
	echo "hello through signstar-client" > "$pkgdir/usr/share/clienthello/hello.txt"
}
`), 0o644)
	os.WriteFile(filepath.Join(build, "makepkg.conf"), []byte(fmt.Sprintf("source /etc/makepkg.conf\nPKGEXT='.pkg.tar.zst'\nOPTIONS=(!strip !debug !lto purge)\nPKGDEST=%s\nBUILDDIR=%s/build\nSRCDEST=%s\n", build, build, build)), 0o644)
	for _, cmd := range [][]string{{"chown", "-R", "nobody:nogroup", build, nobody.home}} {
		if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", cmd, err, out)
		}
	}
	mk := exec.Command("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
		"makepkg", "--config", filepath.Join(build, "makepkg.conf"), "-f", "--nodeps", "--noconfirm", "--sign", "--key", fpr)
	mk.Dir = build
	mk.Env = append(nobody.env(), "SOURCE_DATE_EPOCH=1700000000")
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("makepkg --sign as nobody: %v\n%s", err, out)
	}
	pkgFile := "clienthello-1.0-1-any.pkg.tar.zst"
	pkg, err := os.ReadFile(filepath.Join(build, pkgFile))
	if err != nil {
		t.Fatal(err)
	}
	pkgSig, err := os.ReadFile(filepath.Join(build, pkgFile+".sig"))
	if err != nil {
		t.Fatalf("makepkg --sign left no signature: %v", err)
	}
	e.verifySig(t, pkg, pkgSig)

	repo := filepath.Join(work, "repo")
	os.Mkdir(repo, 0o755)
	os.WriteFile(filepath.Join(repo, pkgFile), pkg, 0o644)
	os.WriteFile(filepath.Join(repo, pkgFile+".sig"), pkgSig, 0o644)
	out := root.ok(t, repo, "repo-add", "-s", "-k", fpr, filepath.Join(repo, "signstar.db.tar.gz"), filepath.Join(repo, pkgFile))
	for _, db := range []string{"signstar.db.tar.gz", "signstar.files.tar.gz"} {
		data, err := os.ReadFile(filepath.Join(repo, db))
		if err != nil {
			t.Fatal(err)
		}
		sig, err := os.ReadFile(filepath.Join(repo, db+".sig"))
		if err != nil {
			t.Fatalf("repo-add -s made no %s.sig: %v\n%s", db, err, out)
		}
		e.verifySig(t, data, sig)
	}
	// repo-add -v checks the database's signature with the client's
	// --verify.
	root.ok(t, repo, "repo-add", "-v", "-s", "-k", fpr, filepath.Join(repo, "signstar.db.tar.gz"), filepath.Join(repo, pkgFile))
	db, _ := os.ReadFile(filepath.Join(repo, "signstar.db.tar.gz"))
	dbSig, _ := os.ReadFile(filepath.Join(repo, "signstar.db.tar.gz.sig"))
	env := pacmantest.Install(t, pacmantest.Options{Certs: [][]byte{pub}, Name: "clienthello", PkgFile: pkgFile,
		Pkg: pkg, PkgSig: pkgSig, DB: db, DBSig: dbSig})
	t.Logf("pacman: %s", strings.Join(env.Info, "; "))

	// The enclave serves an older log (root cut it back): the witness
	// refuses; then that older log grown anew (a fork): refused too.
	t.Run("log rolled back, then forked", func(t *testing.T) {
		dir := filepath.Join(work, "fork")
		os.Mkdir(dir, 0o755)
		p := filepath.Join(dir, "x.db")
		os.WriteFile(p, []byte("after the rollback"), 0o644)
		sides := []string{e.log, e.log + ".idx", e.log + ".tree"}
		saved := map[string][]byte{}
		for _, f := range sides {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			saved[f] = b
		}
		root.ok(t, dir, "signstar-client", "sign", p)
		root.ok(t, dir, "signstar-client", "sign", p)
		os.Remove(p + ".sig")
		os.Remove(p + ".proof")
		for _, f := range sides {
			exec.Command("chattr", "-a", f).Run()
			if err := os.WriteFile(f, saved[f], 0o660); err != nil {
				t.Fatal(err)
			}
			if e.appendOnly {
				exec.Command("chattr", "+a", f).Run()
			}
		}
		code, _, errs := root.run(t, dir, "signstar-client", "sign", p)
		if code != 3 || !strings.Contains(errs, "the log was rolled back or replaced") {
			t.Errorf("rolled back log: exit %d, stderr %q; want 3 and a rollback", code, errs)
		}
		noSignatures(t, dir)
		for i := 0; i < 3; i++ {
			if r := e.ssh(t, "client", []byte("another history"), nil, "sign"); r.ExitCode != 0 {
				t.Fatalf("sign: %d %s", r.ExitCode, r.Stderr)
			}
		}
		code, _, errs = root.run(t, dir, "gpg", "--detach-sign", "--use-agent", "--no-armor", p)
		if code != 3 || !strings.Contains(errs, "the log forked") {
			t.Errorf("forked log: exit %d, stderr %q; want 3 and a fork", code, errs)
		}
		noSignatures(t, dir)
	})
}

// killProxy forwards one TCP connection to sshd and cuts it, both ways,
// once the client has sent limit bytes.
type killProxy struct {
	port   int
	killed atomic.Bool
}

func startKillProxy(t *testing.T, target, limit int) *killProxy {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &killProxy{port: l.Addr().(*net.TCPAddr).Port}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp4", "127.0.0.1:"+strconv.Itoa(target))
			if err != nil {
				in.Close()
				continue
			}
			kill := func() { in.Close(); out.Close() }
			wg.Add(2)
			go func() {
				defer wg.Done()
				defer kill()
				io.Copy(in, out)
			}()
			go func() {
				defer wg.Done()
				defer kill()
				n, _ := io.CopyN(out, in, int64(limit))
				if n == int64(limit) {
					p.killed.Store(true)
				}
			}()
		}
	}()
	return p
}
