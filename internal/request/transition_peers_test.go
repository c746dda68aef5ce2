package request

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"

	"github.com/signstar/signstar/internal/testsupport/pacmantest"
	"github.com/signstar/signstar/internal/testsupport/testenv"
)

// The README's table of what each peer does with the signatures of a key
// transition; TestTransitionPeers makes every cell again and fails when a
// peer answers otherwise, or the table changed.
const (
	readme      = "../../README.md"
	tableMarker = "<!-- transition table: TestTransitionPeers -->"
)

// transitionPhases are the table's columns: the period relative to the
// signing time, as next_key_from and old_key_until.
var transitionPhases = []struct {
	name        string
	from, until time.Duration
}{
	{"before", time.Hour, 2 * time.Hour},
	{"during", -time.Hour, time.Hour},
	{"after", -2 * time.Hour, -time.Hour},
	{"switch: before", time.Hour, time.Hour},
	{"switch: after", -time.Hour, -time.Hour},
}

// Peer answers, as the table words them.
const (
	peerOK     = "ok"
	peerNoKey  = "no key"
	gpgvPartly = "exit 2, 1 good"
)

func TestTransitionPeers(t *testing.T) {
	gpgv := testenv.NeedTool(t, "gpgv", "gpgv")
	sqv := testenv.NeedTool(t, "sqv", "sqv")
	aptGet := testenv.NeedTool(t, "apt-get", "apt")
	pacmantest.NeedTools(t)
	testenv.NeedRoot(t)
	want := readTable(t)

	dir, err := os.MkdirTemp("", "transition-") // short: GnuPG's sockets live below it
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	pkg, err := pacmantest.Build(dir, pacmantest.Hello)
	if err != nil {
		t.Fatal(err)
	}
	release := []byte(fmt.Sprintf("Origin: signstar\nLabel: signstar\nSuite: test\nCodename: test\nDate: %s\nArchitectures: all\nComponents: main\nSHA256:\n e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 0 Packages\n",
		time.Now().UTC().Format(time.RFC1123Z)))

	// The signatures: the package's (binary) and the Release file's
	// (armored, as apt wants Release.gpg), in each phase.
	type sigs struct{ pkg, release []byte }
	made := map[string]sigs{}
	for _, ph := range transitionPhases {
		f, _ := transitionFixture(t, "ed25519", "rsa3072", ph.from, ph.until)
		var s sigs
		for _, in := range []struct {
			data  []byte
			out   *[]byte
			extra []string
		}{{pkg, &s.pkg, nil}, {release, &s.release, []string{"--armor"}}} {
			f.input(in.data)
			f.stdout.Reset()
			if res := f.rq.Sign(sign(in.extra...)); res.Exit != ExitOK {
				t.Fatalf("%s: %+v", ph.name, res)
			}
			*in.out = bytes.Clone(f.stdout.Bytes())
		}
		made[ph.name] = s
	}

	old, next := readFile(t, filepath.Join(keysDir, "ed25519.pub")), readFile(t, filepath.Join(keysDir, "rsa3072.pub"))
	keyrings := []struct {
		name  string
		certs [][]byte
	}{{"old", [][]byte{old}}, {"new", [][]byte{next}}, {"both", [][]byte{old, next}}}

	got := map[string]string{}
	cell := func(peer, ring, phase, answer string) { got[peer+"|"+ring+"|"+phase] = answer }
	for _, kr := range keyrings {
		rdir := filepath.Join(dir, kr.name)
		os.MkdirAll(rdir, 0o755)
		ring := filepath.Join(rdir, "ring.gpg")
		var bin []byte
		for _, c := range kr.certs {
			bin = append(bin, dearmor(t, c)...)
		}
		if err := os.WriteFile(ring, bin, 0o644); err != nil {
			t.Fatal(err)
		}
		pm, err := pacmantest.Keyring(filepath.Join(rdir, "pacman"), kr.certs)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pm.Close() })
		for _, ph := range transitionPhases {
			s := made[ph.name]
			data, sig := filepath.Join(rdir, "data"), filepath.Join(rdir, "data.sig")
			os.WriteFile(data, pkg, 0o644)
			os.WriteFile(sig, s.pkg, 0o644)
			cell("gpgv", kr.name, ph.name, gpgvAnswer(t, exec.Command(gpgv, "--homedir", rdir, "--keyring", ring, sig, data)))
			cell("sqv", kr.name, ph.name, sqvAnswer(t, exec.Command(sqv, "--keyring", ring, sig, data)))
			switch err := pm.InstallFile(pacmantest.Hello.FileName(), pkg, s.pkg); {
			case err == nil:
				cell("pacman", kr.name, ph.name, peerOK)
			case errors.Is(err, pacmantest.ErrKeyMissing):
				cell("pacman", kr.name, ph.name, peerNoKey)
			default:
				t.Fatalf("pacman, keyring %s, %s: %v", kr.name, ph.name, err)
			}
			cell("apt", kr.name, ph.name, aptAnswer(t, aptGet, filepath.Join(rdir, "apt-"+strings.ReplaceAll(ph.name, ": ", "-")), bin, release, s.release))
		}
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: the peer answers %q, the README says %q", strings.ReplaceAll(k, "|", ", "), got[k], w)
		}
	}
	if len(want) != len(got) {
		t.Errorf("the README's table has %d cells, the test made %d", len(want), len(got))
	}
}

// readTable reads the README's table below tableMarker into
// "peer|keyring|phase" cells.
func readTable(t *testing.T) map[string]string {
	t.Helper()
	text := string(readFile(t, readme))
	_, rest, ok := strings.Cut(text, tableMarker)
	if !ok {
		t.Fatalf("%s has no %s", readme, tableMarker)
	}
	var header []string
	cells := map[string]string{}
	for _, l := range strings.Split(strings.TrimLeft(rest, "\n"), "\n") {
		if !strings.HasPrefix(l, "|") {
			break
		}
		fields := strings.Split(strings.Trim(l, "|"), "|")
		for i := range fields {
			fields[i] = strings.Trim(strings.TrimSpace(fields[i]), "`")
		}
		switch {
		case header == nil:
			header = fields
			if len(header) != 2+len(transitionPhases) {
				t.Fatalf("table header %q: want peer, keyring and the %d phases", l, len(transitionPhases))
			}
			for i, ph := range transitionPhases {
				if header[2+i] != ph.name {
					t.Fatalf("table column %d is %q, want %q", 3+i, header[2+i], ph.name)
				}
			}
		case strings.HasPrefix(fields[0], "---"):
		default:
			if len(fields) != len(header) {
				t.Fatalf("table row %q has %d cells", l, len(fields))
			}
			for i := 2; i < len(fields); i++ {
				cells[fields[0]+"|"+fields[1]+"|"+header[i]] = fields[i]
			}
		}
	}
	return cells
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func dearmor(t *testing.T, armored []byte) []byte {
	t.Helper()
	block, err := armor.Decode(bytes.NewReader(armored))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := b.ReadFrom(block.Body); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// gpgvAnswer: exit 0; exit 2 with one good signature and one by a key it
// lacks; or no good signature, each key missing.
func gpgvAnswer(t *testing.T, cmd *exec.Cmd) string {
	out, err := cmd.CombinedOutput()
	good := strings.Count(string(out), "Good signature from")
	missing := strings.Count(string(out), "No public key")
	var ee *exec.ExitError
	switch {
	case err == nil && missing == 0:
		return peerOK
	case errors.As(err, &ee) && ee.ExitCode() == 2 && good == 1 && missing == 1:
		return gpgvPartly
	case errors.As(err, &ee) && good == 0 && missing > 0:
		return peerNoKey
	}
	t.Fatalf("gpgv: %v\n%s", err, out)
	return ""
}

func sqvAnswer(t *testing.T, cmd *exec.Cmd) string {
	out, err := cmd.CombinedOutput()
	switch {
	case err == nil:
		return peerOK
	case bytes.Contains(out, []byte("Missing key")):
		return peerNoKey
	}
	t.Fatalf("sqv: %v\n%s", err, out)
	return ""
}

// aptAnswer runs apt-get update in a root of its own below dir (-o Dir,
// APT_CONFIG: nothing of the system's apt state is read or written) on a
// flat file: repository of release, signed by sig (Release.gpg), trusting
// only the binary keyring ring (signed-by).
func aptAnswer(t *testing.T, aptGet, dir string, ring, release, sig []byte) string {
	t.Helper()
	repo := filepath.Join(dir, "repo")
	for _, d := range []string{"repo", "etc/apt/apt.conf.d", "etc/apt/preferences.d", "etc/apt/sources.list.d", "etc/apt/trusted.gpg.d",
		"var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/lib/dpkg", "var/log/apt"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil && !os.IsExist(err) {
			t.Fatal(err)
		}
	}
	files := map[string][]byte{
		"repo/Packages": nil, "repo/Release": release, "repo/Release.gpg": sig, "keyring.gpg": ring, "var/lib/dpkg/status": nil,
		"etc/apt/sources.list": []byte(fmt.Sprintf("deb [signed-by=%s] file:%s ./\n", filepath.Join(dir, "keyring.gpg"), repo)),
		"apt.conf": []byte(fmt.Sprintf("Dir %q;\nDir::State::status %q;\nDebug::NoLocking \"1\";\nAPT::Sandbox::User \"root\";\n",
			dir+"/", filepath.Join(dir, "var/lib/dpkg/status"))),
	}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(aptGet, "-o", "Dir="+dir+"/", "update")
	cmd.Env = append(os.Environ(), "APT_CONFIG="+filepath.Join(dir, "apt.conf"), "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	switch {
	case err == nil && !bytes.Contains(out, []byte("W: ")):
		return peerOK
	case err != nil && bytes.Contains(out, []byte("NO_PUBKEY")) && bytes.Contains(out, []byte("is not signed")):
		return peerNoKey
	}
	t.Fatalf("apt-get update: %v\n%s", err, out)
	return ""
}
